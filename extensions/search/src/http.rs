//! The HTTP routes: `GET /v1/search` and the `GET /v1/_ping` that docker
//! sends first.

use std::sync::Arc;

use registry_signals::ExtensionContext;
use registry_signals::axum::extract::{RawQuery, State};
use registry_signals::axum::http::{HeaderValue, StatusCode, header};
use registry_signals::axum::response::{IntoResponse, Response};
use registry_signals::axum::routing::get;
use registry_signals::axum::{Json, Router};
use serde::Serialize;

use crate::config::SearchConfig;
use crate::query::{QueryError, SearchRequest};
use crate::state::Outcome;

/// The header by which a registry declares that it authenticates clients
/// itself instead of sending them to a separate index. docker 20.10 reads
/// it from `/v1/_ping` and assumes `true` when it is missing.
const STANDALONE_HEADER: &str = "x-docker-registry-standalone";

/// The body of a search response, in the form that docker's
/// `registry.SearchResults` decodes, with Docker Hub's pagination fields.
#[derive(Debug, Serialize)]
struct SearchResponse<'a> {
    num_pages: usize,
    num_results: usize,
    page_size: usize,
    query: &'a str,
    page: usize,
    results: Vec<SearchResult>,
}

/// One repository of a search response.
#[derive(Debug, Serialize)]
struct SearchResult {
    name: String,
    /// Empty when the repository has no description.
    description: String,
    /// Always 0, because the registry has no stars.
    star_count: u32,
    /// Always `false`: official images exist only on Docker Hub.
    is_official: bool,
    /// Always `false`: automated builds exist only on Docker Hub.
    is_automated: bool,
}

/// Builds the extension's router.
pub fn routes(config: Arc<SearchConfig>, _context: &ExtensionContext) -> Router {
    Router::new()
        .route("/v1/_ping", get(ping))
        .route("/v1/search", get(search))
        .with_state(config)
}

/// Returns `true` and the standalone header to the ping that docker sends
/// before a search. docker 20.10 accepts any response to it, even 404.
async fn ping() -> Response {
    let mut response = Json(true).into_response();
    response
        .headers_mut()
        .insert(STANDALONE_HEADER, HeaderValue::from_static("true"));
    response
}

/// Searches the index: `q` is the text to find, `n` the page size and
/// `page` the page number from 1.
async fn search(State(config): State<Arc<SearchConfig>>, RawQuery(raw): RawQuery) -> Response {
    let state = &config.state;
    let request = match SearchRequest::parse(
        raw.as_deref().unwrap_or_default(),
        config.default_page_size,
        config.max_page_size,
    ) {
        Ok(request) => request,
        Err(error) => {
            state.count_request(Outcome::Rejected);
            return invalid_query(&error);
        }
    };

    if !state.wait_until_ready(config.ready_timeout).await {
        state.count_request(Outcome::Unavailable);
        return unavailable();
    }

    let page = state.read_index().search(
        &request.query,
        config.match_descriptions,
        request.page,
        request.page_size,
    );
    state.count_request(Outcome::Ok);
    let results = page
        .hits
        .into_iter()
        .map(|hit| SearchResult {
            name: hit.name,
            description: hit.description,
            star_count: 0,
            is_official: false,
            is_automated: false,
        })
        .collect();
    Json(SearchResponse {
        num_pages: page.total.div_ceil(request.page_size),
        num_results: page.total,
        page_size: request.page_size,
        query: &request.query,
        page: request.page,
        results,
    })
    .into_response()
}

/// Returns 400 with the error body of the registry's API and the invalid
/// parameter in `detail`.
fn invalid_query(error: &QueryError) -> Response {
    tracing::debug!(
        target: "registry_ext_search",
        %error,
        "search: request rejected"
    );
    let body = serde_json::json!({
        "errors": [{
            "code": error.code(),
            "message": error.to_string(),
            "detail": { "parameter": error.parameter() },
        }]
    });
    (StatusCode::BAD_REQUEST, Json(body)).into_response()
}

/// Returns 503 while the index is still being built.
fn unavailable() -> Response {
    tracing::warn!(
        target: "registry_ext_search",
        "search: request failed because the index is still being built from storage"
    );
    let body = serde_json::json!({
        "errors": [{
            "code": "UNAVAILABLE",
            "message": "the search index is still being built from storage; retry shortly",
        }]
    });
    let mut response = (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    response
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use http_body_util::BodyExt as _;
    use registry_signals::axum::body::Body;
    use registry_signals::axum::http::Request;
    use registry_signals::{BoxFuture, RegistryView, StoredManifest, ViewError};
    use tower::ServiceExt as _;

    use super::*;

    /// A view of an empty registry; the tests fill the index directly.
    struct EmptyView;

    impl RegistryView for EmptyView {
        fn repositories(&self) -> BoxFuture<'_, Result<Vec<String>, ViewError>> {
            Box::pin(async { Ok(Vec::new()) })
        }

        fn tags<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<Vec<String>, ViewError>> {
            Box::pin(async { Ok(Vec::new()) })
        }

        fn manifest<'a>(
            &'a self,
            _: &'a str,
            _: &'a str,
        ) -> BoxFuture<'a, Result<Option<StoredManifest>, ViewError>> {
            Box::pin(async { Ok(None) })
        }
    }

    fn router(config: Arc<SearchConfig>) -> Router {
        let context = ExtensionContext::new(
            "search",
            Arc::new(EmptyView),
            Arc::default(),
            std::env::temp_dir(),
            "test",
        );
        routes(config, &context)
    }

    /// Returns a config whose index has `repositories` and is ready.
    fn ready_config(repositories: &[&str]) -> Arc<SearchConfig> {
        let config = Arc::new(SearchConfig::default());
        {
            let mut index = config.state.write_index();
            for repository in repositories {
                index.add_repository(repository);
            }
            index.set_tag("e2e/web", "v1", "sha256:1", Some("The web app".to_owned()));
        }
        config.state.mark_ready();
        config
    }

    async fn get(router: Router, uri: &str) -> (StatusCode, Response) {
        let request = Request::get(uri).body(Body::empty()).unwrap();
        let response = router.oneshot(request).await.unwrap();
        (response.status(), response)
    }

    async fn json(response: Response) -> serde_json::Value {
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn search_returns_docker_fields() {
        let config = ready_config(&["e2e/web", "e2e/db"]);
        let (status, response) = get(router(config), "/v1/search?q=web&n=25").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
        let body = json(response).await;
        assert_eq!(
            body,
            serde_json::json!({
                "num_pages": 1,
                "num_results": 1,
                "page_size": 25,
                "query": "web",
                "page": 1,
                "results": [{
                    "name": "e2e/web",
                    "description": "The web app",
                    "star_count": 0,
                    "is_official": false,
                    "is_automated": false,
                }],
            })
        );
    }

    #[tokio::test]
    async fn search_paginates() {
        let config = ready_config(&["x1", "x2", "x3"]);
        let (_, response) = get(router(config.clone()), "/v1/search?q=x&n=2&page=2").await;
        let body = json(response).await;
        assert_eq!(body["num_pages"], 2);
        assert_eq!(body["num_results"], 3);
        assert_eq!(body["page_size"], 2);
        assert_eq!(body["page"], 2);
        assert_eq!(body["results"][0]["name"], "x3");
        assert_eq!(body["results"].as_array().unwrap().len(), 1);

        // Without n, the configured default applies.
        let (_, response) = get(router(config), "/v1/search?q=x").await;
        let body = json(response).await;
        assert_eq!(body["page_size"], 25);
        assert_eq!(body["num_pages"], 1);
    }

    #[tokio::test]
    async fn no_result_has_zero_pages() {
        let config = ready_config(&[]);
        let (status, response) = get(router(config), "/v1/search?q=nothing").await;
        assert_eq!(status, StatusCode::OK);
        let body = json(response).await;
        assert_eq!(body["num_pages"], 0);
        assert_eq!(body["num_results"], 0);
        assert_eq!(body["results"], serde_json::json!([]));
    }

    #[tokio::test]
    async fn invalid_parameters_get_400() {
        let cases = [
            (
                "/v1/search?q=a&n=0",
                "PAGINATION_NUMBER_INVALID",
                "n",
                "invalid n \"0\": expected an integer from 1 to 100",
            ),
            (
                "/v1/search?q=a&n=101",
                "PAGINATION_NUMBER_INVALID",
                "n",
                "invalid n \"101\": expected an integer from 1 to 100",
            ),
            (
                "/v1/search?q=a&page=0",
                "PAGE_NUMBER_INVALID",
                "page",
                "invalid page \"0\": expected an integer of at least 1",
            ),
            (
                "/v1/search?q=a&page=x",
                "PAGE_NUMBER_INVALID",
                "page",
                "invalid page \"x\": expected an integer of at least 1",
            ),
            (
                "/v1/search?q=a&q=b",
                "PARAMETER_REPEATED",
                "q",
                "the query parameter q is given more than once",
            ),
        ];
        let config = ready_config(&["a"]);
        for (uri, code, parameter, message) in cases {
            let (status, response) = get(router(config.clone()), uri).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}");
            let body = json(response).await;
            let error = &body["errors"][0];
            assert_eq!(error["code"], code, "{uri}");
            assert_eq!(error["detail"]["parameter"], parameter, "{uri}");
            assert_eq!(error["message"], message, "{uri}");
        }
    }

    #[tokio::test]
    async fn search_before_first_build_gets_503() {
        let config = SearchConfig {
            ready_timeout: Duration::from_millis(10),
            ..SearchConfig::default()
        };
        let (status, response) = get(router(Arc::new(config)), "/v1/search?q=a").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "5");
        let body = json(response).await;
        assert_eq!(body["errors"][0]["code"], "UNAVAILABLE");
    }

    #[tokio::test]
    async fn ping_tells_docker_the_registry_is_standalone() {
        let (status, response) = get(router(ready_config(&[])), "/v1/_ping").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(response.headers()[STANDALONE_HEADER], "true");
        assert_eq!(json(response).await, serde_json::json!(true));
    }

    #[tokio::test]
    async fn requests_are_counted() {
        let config = ready_config(&["a"]);
        get(router(config.clone()), "/v1/search?q=a").await;
        get(router(config.clone()), "/v1/search?n=0").await;
        let metrics = config.state.metrics();
        let requests = metrics
            .iter()
            .find(|m| m.name == "registry_search_requests_total")
            .unwrap();
        let values: Vec<f64> = requests.samples.iter().map(|s| s.value).collect();
        assert_eq!(values, [1.0, 1.0, 0.0]);
    }
}
