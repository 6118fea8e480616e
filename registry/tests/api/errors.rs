//! What every endpoint rejects: invalid names, tags and digests, and paths
//! that try to reach outside the storage root.

use axum::body::Body;
use axum::http::{Method, StatusCode, header};
use tempfile::TempDir;

use crate::support::{OCI_MANIFEST, Registry, paths_outside, request, settings, sha256};

/// Sends `method uri` with a small body and returns the reply.
async fn send(registry: &Registry, method: Method, uri: &str) -> crate::support::Reply {
    let request = request(method, uri)
        .header(header::CONTENT_TYPE, OCI_MANIFEST)
        .body(Body::from("{}"))
        .unwrap();
    registry.send(request).await
}

/// Lists every endpoint that takes a repository name, with `{name}` in its path.
fn named_endpoints() -> Vec<(Method, String)> {
    let digest = sha256(b"x");
    let upload = "0b7e6b3a-3c2e-4f0e-9d8c-1a2b3c4d5e6f";
    vec![
        (Method::GET, "/v2/{name}/manifests/latest".to_owned()),
        (Method::HEAD, "/v2/{name}/manifests/latest".to_owned()),
        (Method::PUT, "/v2/{name}/manifests/latest".to_owned()),
        (Method::DELETE, format!("/v2/{{name}}/manifests/{digest}")),
        (Method::GET, format!("/v2/{{name}}/blobs/{digest}")),
        (Method::DELETE, format!("/v2/{{name}}/blobs/{digest}")),
        (Method::POST, "/v2/{name}/blobs/uploads/".to_owned()),
        (Method::GET, format!("/v2/{{name}}/blobs/uploads/{upload}")),
        (
            Method::PATCH,
            format!("/v2/{{name}}/blobs/uploads/{upload}"),
        ),
        (
            Method::PUT,
            format!("/v2/{{name}}/blobs/uploads/{upload}?digest={digest}"),
        ),
        (
            Method::DELETE,
            format!("/v2/{{name}}/blobs/uploads/{upload}"),
        ),
        (Method::GET, "/v2/{name}/tags/list".to_owned()),
        (Method::GET, format!("/v2/{{name}}/referrers/{digest}")),
    ]
}

#[tokio::test]
async fn invalid_names_are_name_invalid() {
    let registry = Registry::new();
    let too_long = "a".repeat(256);
    let names = [
        "A",
        "library/Alpine",
        "..",
        "a/..",
        "a/../b",
        "a/./b",
        "a//b",
        "-a",
        "a-",
        "a_",
        "a/_manifests",
        "a%2Fb",
        "a%2fb",
        "%2e%2e",
        too_long.as_str(),
    ];

    for name in names {
        for (method, pattern) in named_endpoints() {
            let uri = pattern.replace("{name}", name);
            let reply = send(&registry, method.clone(), &uri).await;

            assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{method} {uri}");
            // A HEAD response carries no body to read a code from.
            if method != Method::HEAD {
                assert_eq!(reply.error_code(), "NAME_INVALID", "{method} {uri}");
            }
        }
    }
}

#[tokio::test]
async fn longest_name_is_accepted() {
    let registry = Registry::new();
    let name = "a".repeat(255);

    let (digest, _) = registry.push_image(&name, "latest", "long").await;
    let reply = registry
        .get(&format!("/v2/{name}/manifests/{digest}"))
        .await;

    assert_eq!(reply.status, StatusCode::OK);
}

#[tokio::test]
async fn empty_name_is_name_invalid() {
    let registry = Registry::new();

    let reply = registry.get("/v2//manifests/latest").await;

    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.error_code(), "NAME_INVALID");
}

#[tokio::test]
async fn invalid_tags_are_rejected() {
    let registry = Registry::new();
    let too_long = "a".repeat(129);
    let tags = [".bad", "-bad", "..", "%2e%2e", "a%2Fb", too_long.as_str()];

    for tag in tags {
        let uri = format!("/v2/a/manifests/{tag}");
        for method in [Method::GET, Method::PUT, Method::DELETE] {
            let reply = send(&registry, method.clone(), &uri).await;

            assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{method} {uri}");
            assert_eq!(reply.error_code(), "MANIFEST_INVALID", "{method} {uri}");
        }
    }
}

#[tokio::test]
async fn invalid_digests_are_digest_invalid() {
    let registry = Registry::new();
    let short = format!("sha256:{}", "a".repeat(63));
    let upper = format!("sha256:{}", "A".repeat(64));
    let wrong_length = format!("sha512:{}", "a".repeat(64));
    let digests = [
        "sha256:zz",
        short.as_str(),
        upper.as_str(),
        wrong_length.as_str(),
        "sha256:..%2F..",
        "md5:5d41402abc4b2a76b9719d911017c592",
    ];

    for digest in digests {
        let uris = [
            (Method::GET, format!("/v2/a/blobs/{digest}")),
            (Method::DELETE, format!("/v2/a/blobs/{digest}")),
            (Method::GET, format!("/v2/a/manifests/{digest}")),
            (Method::PUT, format!("/v2/a/manifests/{digest}")),
            (Method::DELETE, format!("/v2/a/manifests/{digest}")),
            (Method::GET, format!("/v2/a/referrers/{digest}")),
            (
                Method::POST,
                format!("/v2/a/blobs/uploads/?digest={digest}"),
            ),
            (Method::POST, format!("/v2/a/blobs/uploads/?mount={digest}")),
        ];
        for (method, uri) in uris {
            let reply = send(&registry, method.clone(), &uri).await;

            assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{method} {uri}");
            assert_eq!(reply.error_code(), "DIGEST_INVALID", "{method} {uri}");
        }
    }
}

#[tokio::test]
async fn hostile_requests_stay_inside_root() {
    // The root sits three levels below the temporary folder, so that a
    // path climbing up to three levels out of it lands where the walk
    // below looks.
    let dir = TempDir::new().unwrap();
    let root = dir.path().join("one/two/root");
    let registry = Registry::open(dir, root, settings());
    let (digest, manifest) = registry.push_image("a", "latest", "one").await;
    let location = registry.start_upload("a").await;
    let before = paths_outside(registry.dir(), registry.root());

    let up = "..%2F..%2F..%2F..%2Fescape";
    let requests = [
        (
            Method::PUT,
            "/v2/../../../escape/manifests/latest".to_owned(),
        ),
        (Method::PUT, format!("/v2/{up}/manifests/latest")),
        (Method::PUT, format!("/v2/a/manifests/{up}")),
        (Method::PUT, "/v2/a/manifests/..".to_owned()),
        (Method::PUT, format!("/v2/a/manifests/{digest}?tag={up}")),
        (Method::PUT, format!("/v2/a/manifests/{digest}?tag=..")),
        (Method::DELETE, "/v2/a/manifests/..".to_owned()),
        (
            Method::POST,
            format!("/v2/../../../escape/blobs/uploads/?digest={digest}"),
        ),
        (
            Method::POST,
            format!("/v2/a/blobs/uploads/?digest=sha256:{up}"),
        ),
        (
            Method::POST,
            format!("/v2/a/blobs/uploads/?mount={digest}&from={up}"),
        ),
        (
            Method::POST,
            format!("/v2/a/blobs/uploads/?digest-algorithm={up}"),
        ),
        (Method::PATCH, format!("/v2/a/blobs/uploads/{up}")),
        (
            Method::PUT,
            format!("/v2/a/blobs/uploads/{up}?digest={digest}"),
        ),
        (Method::PATCH, "/v2/a/blobs/uploads/..".to_owned()),
        (Method::DELETE, "/v2/a/blobs/uploads/..%2F..".to_owned()),
        (Method::PUT, format!("{location}?digest=sha256:{up}")),
        (
            Method::DELETE,
            format!("/v2/../../../escape/blobs/{digest}"),
        ),
        (Method::GET, "/v2/../../../etc/tags/list".to_owned()),
        (Method::GET, format!("/v2/a/referrers/sha256:{up}")),
    ];

    for (method, uri) in requests {
        let request = request(method.clone(), &uri)
            .header(header::CONTENT_TYPE, OCI_MANIFEST)
            .header(header::CONTENT_LENGTH, manifest.len())
            .body(Body::from(manifest.clone()))
            .unwrap();
        let reply = registry.send(request).await;

        assert!(
            reply.status.is_client_error(),
            "{method} {uri}: {}",
            reply.status
        );
    }
    let after = paths_outside(registry.dir(), registry.root());
    let mut escaped = Vec::new();
    crate::support::walk(registry.dir(), &mut |path| {
        if path.to_string_lossy().contains("escape") {
            escaped.push(path.to_owned());
        }
    });

    assert_eq!(before, after);
    assert!(escaped.is_empty(), "{escaped:?}");
}
