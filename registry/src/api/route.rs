//! Splitting a path under `/v2/` into a route.
//!
//! The path is matched from its end, because the repository name in front
//! may itself contain `blobs`, `manifests` or `tags` as components. The
//! pieces are returned as raw text; handlers validate them, so that a bad
//! name is answered `NAME_INVALID` rather than 404.

/// An endpoint of the API with the raw path pieces it carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Catalog,
    Tags { name: String },
    Referrers { name: String, digest: String },
    Blob { name: String, digest: String },
    UploadStart { name: String },
    Upload { name: String, id: String },
    Manifest { name: String, reference: String },
}

impl Route {
    /// Returns the repository name the route names, if any.
    pub fn repository(&self) -> Option<&str> {
        match self {
            Self::Catalog => None,
            Self::Tags { name }
            | Self::Referrers { name, .. }
            | Self::Blob { name, .. }
            | Self::UploadStart { name }
            | Self::Upload { name, .. }
            | Self::Manifest { name, .. } => Some(name),
        }
    }

    /// Returns the route's name in metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Catalog => "catalog",
            Self::Tags { .. } => "tags",
            Self::Referrers { .. } => "referrers",
            Self::Blob { .. } => "blob",
            Self::UploadStart { .. } => "blob_upload",
            Self::Upload { .. } => "blob_upload_session",
            Self::Manifest { .. } => "manifest",
        }
    }

    /// Returns whether a request streams a blob body of unbounded length:
    /// a blob download or an upload request that carries bytes.
    pub fn streams_body(&self, method: &axum::http::Method) -> bool {
        use axum::http::Method;
        match self {
            Self::Blob { .. } => method == Method::GET,
            Self::UploadStart { .. } => method == Method::POST,
            Self::Upload { .. } => method == Method::PATCH || method == Method::PUT,
            _ => false,
        }
    }

    /// Returns the methods the route serves, for the `Allow` header.
    pub fn allowed_methods(&self) -> &'static str {
        match self {
            Self::Catalog | Self::Tags { .. } | Self::Referrers { .. } => "GET, HEAD",
            Self::Blob { .. } => "GET, HEAD, DELETE",
            Self::UploadStart { .. } => "POST",
            Self::Upload { .. } => "GET, PATCH, PUT, DELETE",
            Self::Manifest { .. } => "GET, HEAD, PUT, DELETE",
        }
    }
}

/// Parses a request path such as `/v2/library/alpine/manifests/latest`.
/// Returns `None` for paths that are no endpoint.
pub fn parse(path: &str) -> Option<Route> {
    let rest = path.strip_prefix("/v2/")?;
    if rest == "_catalog" {
        return Some(Route::Catalog);
    }

    let segments: Vec<&str> = rest.split('/').collect();
    let n = segments.len();
    let name =
        |count: usize| -> Option<String> { (n > count).then(|| segments[..n - count].join("/")) };
    let tail = |k: usize| -> &str { if n >= k { segments[n - k] } else { "" } };

    // `<name>/tags/list`
    if tail(2) == "tags" && tail(1) == "list" {
        return Some(Route::Tags { name: name(2)? });
    }
    // `<name>/blobs/uploads/` and, leniently, `<name>/blobs/uploads`
    if tail(3) == "blobs" && tail(2) == "uploads" && tail(1).is_empty() {
        return Some(Route::UploadStart { name: name(3)? });
    }
    if tail(2) == "blobs" && tail(1) == "uploads" {
        return Some(Route::UploadStart { name: name(2)? });
    }
    // `<name>/blobs/uploads/<id>`
    if tail(3) == "blobs" && tail(2) == "uploads" {
        return Some(Route::Upload {
            name: name(3)?,
            id: tail(1).to_owned(),
        });
    }

    // `<name>/{blobs,manifests,referrers}/<value>`
    let value = tail(1).to_owned();
    let name = name(2)?;
    match tail(2) {
        "blobs" => Some(Route::Blob {
            name,
            digest: value,
        }),
        "manifests" => Some(Route::Manifest {
            name,
            reference: value,
        }),
        "referrers" => Some(Route::Referrers {
            name,
            digest: value,
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(text: &str) -> String {
        text.to_owned()
    }

    #[test]
    fn paths_map_to_routes() {
        let cases = [
            ("/v2/_catalog", Some(Route::Catalog)),
            ("/v2/a/b/tags/list", Some(Route::Tags { name: s("a/b") })),
            (
                "/v2/a/blobs/uploads/",
                Some(Route::UploadStart { name: s("a") }),
            ),
            (
                "/v2/a/blobs/uploads",
                Some(Route::UploadStart { name: s("a") }),
            ),
            (
                "/v2/a/blobs/uploads/123",
                Some(Route::Upload {
                    name: s("a"),
                    id: s("123"),
                }),
            ),
            (
                "/v2/a/blobs/sha256:x",
                Some(Route::Blob {
                    name: s("a"),
                    digest: s("sha256:x"),
                }),
            ),
            (
                "/v2/blobs/manifests/latest",
                Some(Route::Manifest {
                    name: s("blobs"),
                    reference: s("latest"),
                }),
            ),
            (
                "/v2/x/manifests/blobs/sha256:y",
                Some(Route::Blob {
                    name: s("x/manifests"),
                    digest: s("sha256:y"),
                }),
            ),
            (
                "/v2/a/referrers/sha256:z",
                Some(Route::Referrers {
                    name: s("a"),
                    digest: s("sha256:z"),
                }),
            ),
            ("/v2/manifests/latest", None),
            ("/v2/a/unknown/x", None),
            ("/v3/a/manifests/x", None),
            ("/v2/tags/list", None),
        ];
        for (path, expected) in cases {
            assert_eq!(parse(path), expected, "{path}");
        }
    }
}
