//! The listing endpoints: tags, the catalog and referrers.

use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::blobs::{header_value, parse_target};
use super::uploads::url_pairs;
use super::{ApiError, AppState, ErrorCode};
use crate::manifest::OCI_INDEX;
use crate::reference::RepoName;

/// Most entries one page of the tags list or the catalog returns, whatever
/// `n` requests. A longer list continues through the `Link` header.
pub const MAX_PAGE: usize = 10_000;

/// Entries on a page when the request gives no `n`. The spec allows a
/// shorter page when a `Link` header points at the rest, and a bounded page
/// keeps the cost of a request independent of the number of tags.
pub const DEFAULT_PAGE: usize = 1_000;

/// `n` and `last` of a paginated request.
#[derive(Debug, Default)]
struct Page {
    n: Option<usize>,
    last: Option<String>,
}

impl Page {
    /// Returns the number of entries this page may hold.
    fn limit(&self) -> usize {
        self.n.unwrap_or(DEFAULT_PAGE).min(MAX_PAGE)
    }
}

fn page(parts: &Parts) -> Result<Page, ApiError> {
    let mut page = Page::default();
    for (key, value) in url_pairs(parts.uri.query().unwrap_or_default()) {
        match key.as_str() {
            "n" => {
                let n = value.parse().map_err(|_| {
                    ApiError::new(
                        StatusCode::BAD_REQUEST,
                        ErrorCode::Unsupported,
                        format!("invalid n {value:?}: expected a non-negative integer"),
                    )
                })?;
                page.n = Some(n);
            }
            "last" => page.last = Some(value),
            _ => {}
        }
    }
    Ok(page)
}

/// Cuts one page out of a sorted list. Returns the entries and, when more
/// follow, the last entry of the page for the `Link` header.
fn paginate(all: &[String], page: &Page) -> (Vec<String>, Option<String>) {
    let start = match &page.last {
        Some(last) => all.partition_point(|entry| entry.as_str() <= last.as_str()),
        None => 0,
    };
    let limit = page.limit();
    let end = start.saturating_add(limit).min(all.len());

    let entries: Vec<String> = all[start..end].to_vec();
    // `n=0` returns an empty list and, as the spec requires, no Link.
    let more = end < all.len() && limit > 0;
    let next = more.then(|| entries.last().cloned()).flatten();
    (entries, next)
}

fn link_header(path: &str, n: usize, last: &str) -> HeaderValue {
    header_value(&format!(
        "<{path}?n={n}&last={}>; rel=\"next\"",
        encode_query_value(last)
    ))
}

/// Escapes what a tag or repository name may contain and a query value may
/// not. Names and tags use only `[a-zA-Z0-9._/-]`, so only `/` is escaped
/// for safety.
fn encode_query_value(value: &str) -> String {
    value.replace('/', "%2F")
}

/// `GET /v2/<name>/tags/list`.
pub async fn tags(state: &AppState, name: &str, parts: &Parts) -> Result<Response, ApiError> {
    let repo = RepoName::parse(name).map_err(ApiError::name_invalid)?;
    let page = page(parts)?;
    let all = state.storage.tags(&repo).await?;
    let (tags, next) = paginate(&all, &page);

    let body = json!({ "name": repo.as_str(), "tags": tags });
    let mut response = axum::Json(body).into_response();
    if let Some(last) = next {
        let link = link_header(&format!("/v2/{repo}/tags/list"), page.limit(), &last);
        response.headers_mut().insert(header::LINK, link);
    }
    Ok(response)
}

/// `GET /v2/_catalog`.
pub async fn catalog(state: &AppState, parts: &Parts) -> Result<Response, ApiError> {
    let page = page(parts)?;
    let all = state.storage.repositories().await?;
    let (repositories, next) = paginate(&all, &page);

    let body = json!({ "repositories": repositories });
    let mut response = axum::Json(body).into_response();
    if let Some(last) = next {
        let link = link_header("/v2/_catalog", page.limit(), &last);
        response.headers_mut().insert(header::LINK, link);
    }
    Ok(response)
}

/// `GET /v2/<name>/referrers/<digest>`, with the optional `artifactType`
/// filter. An unknown repository or subject has no referrers and gets an
/// empty index, because the spec forbids a 404 from a registry that
/// supports this API.
pub async fn referrers(
    state: &AppState,
    name: &str,
    digest: &str,
    parts: &Parts,
) -> Result<Response, ApiError> {
    let (repo, digest) = parse_target(name, digest)?;
    let artifact_type = url_pairs(parts.uri.query().unwrap_or_default())
        .find(|(key, _)| key == "artifactType")
        .map(|(_, value)| value);

    let mut descriptors = state.storage.referrers(&repo, &digest).await?;
    if let Some(wanted) = &artifact_type {
        descriptors.retain(|d| d.artifact_type.as_deref() == Some(wanted.as_str()));
    }

    let body = json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": descriptors,
    });
    let body = serde_json::to_vec(&body).map_err(ApiError::internal)?;
    let mut response = (
        StatusCode::OK,
        [(header::CONTENT_TYPE, HeaderValue::from_static(OCI_INDEX))],
        body,
    )
        .into_response();
    if artifact_type.is_some() {
        response.headers_mut().insert(
            "oci-filters-applied",
            HeaderValue::from_static("artifactType"),
        );
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn pages_follow_last_and_n() {
        let all = list(&["a", "b", "c", "d"]);
        let page = |n, last: Option<&str>| Page {
            n,
            last: last.map(str::to_owned),
        };

        let (entries, next) = paginate(&all, &page(Some(2), None));
        assert_eq!(entries, list(&["a", "b"]));
        assert_eq!(next.as_deref(), Some("b"));

        let (entries, next) = paginate(&all, &page(Some(2), Some("b")));
        assert_eq!(entries, list(&["c", "d"]));
        assert_eq!(next, None);

        let (entries, next) = paginate(&all, &page(None, Some("bb")));
        assert_eq!(entries, list(&["c", "d"]));
        assert_eq!(next, None);

        let (entries, next) = paginate(&all, &page(Some(0), None));
        assert!(entries.is_empty());
        assert_eq!(next, None);

        let (entries, _) = paginate(&all, &page(Some(10), Some("z")));
        assert!(entries.is_empty());
    }
}
