//! Masking of values under keys that may hold secrets, for output that an
//! operator or a log may see.

use serde_yaml::Value;

/// The text that replaces a secret value.
pub(crate) const MASK: &str = "********";

/// Parts of a key name, lowercased, that mark its value as a secret.
const SECRET_KEY_PARTS: [&str; 10] = [
    "secret",
    "password",
    "token",
    "accesskey",
    "secretkey",
    "credential",
    "authorization",
    "apikey",
    "api-key",
    "api_key",
];

/// Returns whether a key's value may be a secret, judged by its name alone.
pub(crate) fn is_secret_key(key: &str) -> bool {
    let key = key.to_lowercase();
    SECRET_KEY_PARTS.iter().any(|part| key.contains(part))
}

/// Replaces, anywhere in `value`, each non-null value under a secret key with
/// [`MASK`]. A mapping or sequence under such a key is replaced whole.
pub(crate) fn mask_secrets(value: &mut Value) {
    match value {
        Value::Mapping(entries) => {
            for (key, item) in entries.iter_mut() {
                let secret = key.as_str().is_some_and(is_secret_key);
                if secret && !item.is_null() {
                    *item = Value::String(MASK.to_owned());
                } else {
                    mask_secrets(item);
                }
            }
        }
        Value::Sequence(items) => items.iter_mut().for_each(mask_secrets),
        Value::Tagged(tagged) => mask_secrets(&mut tagged.value),
        Value::String(text) => {
            if let Some(masked) = mask_url_password(text) {
                *text = masked;
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// Returns `text` with the password of a URL (`scheme://user:password@host`)
/// replaced by [`MASK`], or `None` when it has none.
fn mask_url_password(text: &str) -> Option<String> {
    let (scheme, rest) = text.split_once("://")?;
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (userinfo, host) = rest[..authority_end].rsplit_once('@')?;
    let (user, _password) = userinfo.split_once(':')?;
    Some(format!(
        "{scheme}://{user}:{MASK}@{host}{}",
        &rest[authority_end..]
    ))
}

/// Removes a secret scalar from an error message by replacing the forms in
/// which serde quotes a value: `"text"` and `` `text` ``.
pub(crate) fn mask_in_message(message: &str, secret: &Value) -> String {
    let text = match secret {
        Value::String(text) if !text.is_empty() => text.clone(),
        Value::Number(number) => number.to_string(),
        Value::Bool(flag) => flag.to_string(),
        _ => return message.to_owned(),
    };
    message
        .replace(&format!("{text:?}"), &format!("{MASK:?}"))
        .replace(&format!("`{text}`"), &format!("`{MASK}`"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_password_is_masked() {
        assert_eq!(
            mask_url_password("http://user:pw@127.0.0.1:1/x?a=b").as_deref(),
            Some("http://user:********@127.0.0.1:1/x?a=b")
        );
        assert_eq!(mask_url_password("http://127.0.0.1/a@b"), None);
        assert_eq!(mask_url_password("http://user@host/"), None);
        assert_eq!(mask_url_password("not a url"), None);
    }

    #[test]
    fn secret_key_names_are_recognized() {
        let secret = [
            "password",
            "dbPassword",
            "clientsecret",
            "token",
            "AccessKey",
            "secretkey",
            "credentials",
        ];
        for key in secret {
            assert!(is_secret_key(key), "{key} should be secret");
        }
        for key in ["username", "url", "enabled", "passage"] {
            assert!(!is_secret_key(key), "{key} should not be secret");
        }
    }

    #[test]
    fn masking_replaces_nested_secrets() {
        let mut value: Value = serde_yaml::from_str(
            "user: alice\npassword: hunter2\nempty_token: ~\nendpoints:\n  - url: http://a\n    token: abc\ncredentials: {key: 1}\n",
        )
        .unwrap();
        mask_secrets(&mut value);
        let expected: Value = serde_yaml::from_str(
            "user: alice\npassword: '********'\nempty_token: ~\nendpoints:\n  - url: http://a\n    token: '********'\ncredentials: '********'\n",
        )
        .unwrap();
        assert_eq!(value, expected);
    }

    #[test]
    fn message_masking_hides_quoted_forms() {
        let debug_form = "invalid type: string \"hunter2\", expected u16";
        let backtick_form = "unknown variant `hunter2`, expected `a`";
        let number_form = "invalid type: integer `1234`, expected a string";
        let secret = Value::from("hunter2");
        assert!(!mask_in_message(debug_form, &secret).contains("hunter2"));
        assert!(!mask_in_message(backtick_form, &secret).contains("hunter2"));
        assert_eq!(
            mask_in_message(number_form, &Value::from(1234)),
            "invalid type: integer `********`, expected a string"
        );
    }
}
