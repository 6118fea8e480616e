//! The query string of `GET /v1/search`: `q`, `n` and `page`.

use std::fmt;

/// A valid search request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchRequest {
    /// The text to find, as sent, without leading and trailing whitespace.
    /// Empty when `q` is missing, which matches every repository.
    pub query: String,
    /// The number of results per page, from `n`.
    pub page_size: usize,
    /// The page number, from 1.
    pub page: usize,
}

/// An invalid query string, which gets a 400 response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryError {
    /// `n` is not an integer from 1 to the maximum page size.
    InvalidPageSize { value: String, max: usize },
    /// `page` is not an integer of at least 1.
    InvalidPage { value: String },
    /// A parameter appears more than once.
    RepeatedParameter { parameter: &'static str },
}

impl QueryError {
    /// Returns the error code of the response body. `PAGINATION_NUMBER_INVALID`
    /// is the code the Go registry (distribution) uses for an invalid `n`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidPageSize { .. } => "PAGINATION_NUMBER_INVALID",
            Self::InvalidPage { .. } => "PAGE_NUMBER_INVALID",
            Self::RepeatedParameter { .. } => "PARAMETER_REPEATED",
        }
    }

    /// Returns the query parameter that is invalid.
    pub fn parameter(&self) -> &'static str {
        match self {
            Self::InvalidPageSize { .. } => "n",
            Self::InvalidPage { .. } => "page",
            Self::RepeatedParameter { parameter } => parameter,
        }
    }
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidPageSize { value, max } => write!(
                f,
                "invalid n {value:?}: expected an integer from 1 to {max}"
            ),
            Self::InvalidPage { value } => write!(
                f,
                "invalid page {value:?}: expected an integer of at least 1"
            ),
            Self::RepeatedParameter { parameter } => {
                write!(f, "the query parameter {parameter} is given more than once")
            }
        }
    }
}

impl std::error::Error for QueryError {}

impl SearchRequest {
    /// Parses a raw query string, such as `q=web&n=25&page=2`. A missing `n`
    /// is `default_page_size` and a missing `page` is 1. Other parameters are
    /// ignored. `+` and percent escapes decode as in an HTML form, which is
    /// how docker encodes `q`.
    ///
    /// # Errors
    ///
    /// [`QueryError`] for an `n` outside 1 to `max_page_size`, a `page` below
    /// 1, either of them not an integer, or a repeated `q`, `n` or `page`.
    pub fn parse(
        raw_query: &str,
        default_page_size: usize,
        max_page_size: usize,
    ) -> Result<SearchRequest, QueryError> {
        let mut query = None;
        let mut page_size = None;
        let mut page = None;
        for (key, value) in form_urlencoded::parse(raw_query.as_bytes()) {
            let (slot, parameter) = match key.as_ref() {
                "q" => (&mut query, "q"),
                "n" => (&mut page_size, "n"),
                "page" => (&mut page, "page"),
                _ => continue,
            };
            if slot.replace(value.into_owned()).is_some() {
                return Err(QueryError::RepeatedParameter { parameter });
            }
        }

        let page_size = match page_size {
            None => default_page_size,
            Some(value) => match value.parse::<usize>() {
                Ok(size) if (1..=max_page_size).contains(&size) => size,
                _ => {
                    return Err(QueryError::InvalidPageSize {
                        value,
                        max: max_page_size,
                    });
                }
            },
        };
        let page = match page {
            None => 1,
            Some(value) => match value.parse::<usize>() {
                Ok(number) if number >= 1 => number,
                _ => return Err(QueryError::InvalidPage { value }),
            },
        };

        Ok(SearchRequest {
            query: query.unwrap_or_default().trim().to_owned(),
            page_size,
            page,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &str) -> Result<SearchRequest, QueryError> {
        SearchRequest::parse(raw, 25, 100)
    }

    #[test]
    fn docker_query_parses() {
        let request = parse("q=web&n=25").unwrap();
        assert_eq!(request.query, "web");
        assert_eq!(request.page_size, 25);
        assert_eq!(request.page, 1);
    }

    #[test]
    fn missing_parameters_take_defaults() {
        let request = SearchRequest::parse("", 10, 100).unwrap();
        assert_eq!(request.query, "");
        assert_eq!(request.page_size, 10);
        assert_eq!(request.page, 1);
    }

    #[test]
    fn query_is_decoded_and_trimmed() {
        let cases = [
            ("q=a+b%26c", "a b&c"),
            ("q=e2e%2Fweb", "e2e/web"),
            ("q=%20web%20", "web"),
            ("q=", ""),
            ("q=caf%C3%A9", "café"),
        ];
        for (raw, expected) in cases {
            assert_eq!(parse(raw).unwrap().query, expected, "{raw}");
        }
    }

    #[test]
    fn page_and_size_are_read() {
        let request = parse("q=x&n=100&page=7&other=1").unwrap();
        assert_eq!(request.page_size, 100);
        assert_eq!(request.page, 7);
    }

    #[test]
    fn invalid_page_size_is_rejected() {
        for value in [
            "0",
            "101",
            "-1",
            "ten",
            "",
            "2.5",
            "99999999999999999999999",
        ] {
            let error = parse(&format!("q=x&n={value}")).unwrap_err();
            assert_eq!(
                error,
                QueryError::InvalidPageSize {
                    value: value.to_owned(),
                    max: 100
                },
                "n={value}"
            );
            assert_eq!(error.parameter(), "n");
            assert_eq!(error.code(), "PAGINATION_NUMBER_INVALID");
        }
    }

    #[test]
    fn invalid_page_is_rejected() {
        for value in ["0", "-2", "first", ""] {
            let error = parse(&format!("q=x&page={value}")).unwrap_err();
            assert_eq!(
                error,
                QueryError::InvalidPage {
                    value: value.to_owned()
                },
                "page={value}"
            );
            assert_eq!(error.parameter(), "page");
        }
    }

    #[test]
    fn repeated_parameter_is_rejected() {
        for (raw, parameter) in [
            ("q=a&q=b", "q"),
            ("n=1&n=1", "n"),
            ("page=1&page=2", "page"),
        ] {
            let error = parse(raw).unwrap_err();
            assert_eq!(error, QueryError::RepeatedParameter { parameter }, "{raw}");
        }
    }

    #[test]
    fn error_messages_name_the_value() {
        let error = parse("n=500").unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid n \"500\": expected an integer from 1 to 100"
        );
        let error = parse("page=0").unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid page \"0\": expected an integer of at least 1"
        );
    }
}
