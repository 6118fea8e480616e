//! `GET /v2/<name>/tags/list` and `GET /v2/_catalog`, with pagination.

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::support::{OCI_MANIFEST, Registry, Reply, sha256};

/// Pushes one image in `repo` and points every tag of `tags` at it.
async fn push_tags(registry: &Registry, repo: &str, tags: &[&str]) {
    let manifest = registry.push_image_blobs(repo, "tagged").await;
    let query: Vec<String> = tags.iter().map(|tag| format!("tag={tag}")).collect();
    let reference = format!("{}?{}", sha256(&manifest), query.join("&"));
    let reply = registry
        .put_manifest(repo, &reference, OCI_MANIFEST, &manifest)
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
}

/// Returns the target of a `Link: <target>; rel="next"` header.
fn next_link(reply: &Reply) -> Option<String> {
    let link = reply.header("link")?;
    assert!(link.ends_with("; rel=\"next\""), "Link: {link}");
    let start = link.find('<')? + 1;
    let end = link.find('>')?;
    Some(link[start..end].to_owned())
}

/// Follows `Link` headers from `uri` and returns each page's `field`.
async fn walk_pages(registry: &Registry, uri: &str, field: &str) -> Vec<Value> {
    let mut pages = Vec::new();
    let mut next = Some(uri.to_owned());
    while let Some(uri) = next {
        let reply = registry.get(&uri).await;
        assert_eq!(reply.status, StatusCode::OK, "{uri}: {}", reply.text());
        pages.push(reply.json()[field].clone());
        next = next_link(&reply);
        assert!(pages.len() <= 10, "pagination does not end");
    }
    pages
}

#[tokio::test]
async fn tags_are_in_lexical_order() {
    let registry = Registry::new();
    push_tags(&registry, "a", &["b", "a", "C", "10", "9"]).await;

    let reply = registry.get("/v2/a/tags/list").await;

    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(
        reply.json(),
        json!({ "name": "a", "tags": ["10", "9", "C", "a", "b"] })
    );
    assert_eq!(reply.header("link"), None);
}

#[tokio::test]
async fn tags_of_nested_repository_are_listed() {
    let registry = Registry::new();
    push_tags(&registry, "team/app/web", &["v1"]).await;

    let reply = registry.get("/v2/team/app/web/tags/list").await;

    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.json(),
        json!({ "name": "team/app/web", "tags": ["v1"] })
    );
}

#[tokio::test]
async fn tags_page_links_to_next() {
    let registry = Registry::new();
    push_tags(&registry, "a", &["t1", "t2", "t3", "t4", "t5"]).await;

    let reply = registry.get("/v2/a/tags/list?n=2").await;

    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json()["tags"], json!(["t1", "t2"]));
    assert_eq!(
        reply.header("link"),
        Some("</v2/a/tags/list?n=2&last=t2>; rel=\"next\"")
    );
}

#[tokio::test]
async fn tags_resume_after_last() {
    let registry = Registry::new();
    push_tags(&registry, "a", &["t1", "t2", "t3", "t4", "t5"]).await;

    let middle = registry.get("/v2/a/tags/list?n=2&last=t2").await;
    let end = registry.get("/v2/a/tags/list?n=2&last=t4").await;
    let unbounded = registry.get("/v2/a/tags/list?last=t3").await;

    assert_eq!(middle.json()["tags"], json!(["t3", "t4"]));
    assert!(middle.header("link").is_some());
    assert_eq!(end.json()["tags"], json!(["t5"]));
    assert_eq!(end.header("link"), None);
    assert_eq!(unbounded.json()["tags"], json!(["t4", "t5"]));
    assert_eq!(unbounded.header("link"), None);
}

#[tokio::test]
async fn tags_page_of_exact_size_has_no_link() {
    let registry = Registry::new();
    push_tags(&registry, "a", &["t1", "t2", "t3"]).await;

    let reply = registry.get("/v2/a/tags/list?n=3").await;

    assert_eq!(reply.json()["tags"], json!(["t1", "t2", "t3"]));
    assert_eq!(reply.header("link"), None);
}

#[tokio::test]
async fn tags_pages_cover_every_tag() {
    let registry = Registry::new();
    let tags = ["a", "b", "c", "d", "e", "f", "g"];
    push_tags(&registry, "a", &tags).await;

    let pages = walk_pages(&registry, "/v2/a/tags/list?n=3", "tags").await;

    assert_eq!(
        pages,
        vec![json!(["a", "b", "c"]), json!(["d", "e", "f"]), json!(["g"])]
    );
}

#[tokio::test]
async fn tags_with_zero_n_are_empty() {
    let registry = Registry::new();
    push_tags(&registry, "a", &["t1", "t2"]).await;

    let reply = registry.get("/v2/a/tags/list?n=0").await;

    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json()["tags"], json!([]));
    assert_eq!(reply.header("link"), None);
}

#[tokio::test]
async fn tags_of_untagged_repository_are_empty() {
    let registry = Registry::new();
    let manifest = registry.push_image_blobs("a", "one").await;
    registry
        .put_manifest("a", &sha256(&manifest), OCI_MANIFEST, &manifest)
        .await;

    let reply = registry.get("/v2/a/tags/list").await;

    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json()["tags"], json!([]));
}

#[tokio::test]
async fn tags_of_unknown_repository_is_name_unknown() {
    let registry = Registry::new();
    // Blobs alone do not make a repository.
    registry.push_blob("blobs-only", b"layer").await;

    for repo in ["missing", "blobs-only"] {
        let reply = registry.get(&format!("/v2/{repo}/tags/list")).await;

        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{repo}");
        assert_eq!(reply.error_code(), "NAME_UNKNOWN", "{repo}");
    }
}

#[tokio::test]
async fn invalid_n_is_rejected() {
    let registry = Registry::new();
    push_tags(&registry, "a", &["t1"]).await;

    for n in ["abc", "-1", "1.5", ""] {
        let tags = registry.get(&format!("/v2/a/tags/list?n={n}")).await;
        let catalog = registry.get(&format!("/v2/_catalog?n={n}")).await;

        assert_eq!(tags.status, StatusCode::BAD_REQUEST, "tags n={n}");
        assert_eq!(tags.error_code(), "UNSUPPORTED", "tags n={n}");
        assert_eq!(catalog.status, StatusCode::BAD_REQUEST, "catalog n={n}");
        assert_eq!(catalog.error_code(), "UNSUPPORTED", "catalog n={n}");
    }
}

#[tokio::test]
async fn empty_catalog_lists_nothing() {
    let registry = Registry::new();

    let reply = registry.get("/v2/_catalog").await;

    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json(), json!({ "repositories": [] }));
}

#[tokio::test]
async fn catalog_lists_nested_repositories_in_order() {
    let registry = Registry::new();
    for repo in ["b", "a/c/d", "a", "a-b", "a/c"] {
        registry.push_image(repo, "latest", repo).await;
    }

    let reply = registry.get("/v2/_catalog").await;

    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.json(),
        json!({ "repositories": ["a", "a-b", "a/c", "a/c/d", "b"] })
    );
    assert_eq!(reply.header("link"), None);
}

#[tokio::test]
async fn catalog_page_links_to_next() {
    let registry = Registry::new();
    for repo in ["a", "b/c", "d"] {
        registry.push_image(repo, "latest", repo).await;
    }

    let first = registry.get("/v2/_catalog?n=2").await;
    let last = registry.get("/v2/_catalog?n=2&last=b%2Fc").await;

    assert_eq!(first.json()["repositories"], json!(["a", "b/c"]));
    assert_eq!(
        first.header("link"),
        Some("</v2/_catalog?n=2&last=b%2Fc>; rel=\"next\"")
    );
    assert_eq!(last.json()["repositories"], json!(["d"]));
    assert_eq!(last.header("link"), None);
}

#[tokio::test]
async fn catalog_pages_cover_every_repository() {
    let registry = Registry::new();
    for repo in ["a", "a/b", "c", "c/d/e"] {
        registry.push_image(repo, "latest", repo).await;
    }

    let pages = walk_pages(&registry, "/v2/_catalog?n=1", "repositories").await;

    assert_eq!(
        pages,
        vec![json!(["a"]), json!(["a/b"]), json!(["c"]), json!(["c/d/e"])]
    );
}

#[tokio::test]
async fn catalog_with_zero_n_is_empty() {
    let registry = Registry::new();
    registry.push_image("a", "latest", "one").await;

    let reply = registry.get("/v2/_catalog?n=0").await;

    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json()["repositories"], json!([]));
    assert_eq!(reply.header("link"), None);
}

#[tokio::test]
async fn tags_without_n_get_default_page() {
    let registry = Registry::new();
    let names: Vec<String> = (0..1_001).map(|i| format!("t{i:04}")).collect();
    // Query strings stay short: 100 tags per PUT.
    for chunk in names.chunks(100) {
        let tags: Vec<&str> = chunk.iter().map(String::as_str).collect();
        push_tags(&registry, "many", &tags).await;
    }

    let reply = registry.get("/v2/many/tags/list").await;
    assert_eq!(reply.status, StatusCode::OK);
    let tags = reply.json()["tags"].as_array().unwrap().len();
    assert_eq!(tags, 1_000);
    assert_eq!(
        next_link(&reply).as_deref(),
        Some("/v2/many/tags/list?n=1000&last=t0999")
    );

    let pages = walk_pages(&registry, "/v2/many/tags/list", "tags").await;
    let total: usize = pages.iter().map(|p| p.as_array().unwrap().len()).sum();
    assert_eq!(total, 1_001);
}

#[tokio::test]
async fn tag_list_follows_new_tags() {
    let registry = Registry::new();
    push_tags(&registry, "fresh", &["one"]).await;
    assert_eq!(
        registry.get("/v2/fresh/tags/list").await.json()["tags"],
        json!(["one"])
    );

    push_tags(&registry, "fresh", &["two"]).await;
    let reply = registry.get("/v2/fresh/tags/list").await;
    assert_eq!(reply.json()["tags"], json!(["one", "two"]));

    let reply = registry.delete("/v2/fresh/manifests/one").await;
    assert_eq!(reply.status, StatusCode::ACCEPTED);
    let reply = registry.get("/v2/fresh/tags/list").await;
    assert_eq!(reply.json()["tags"], json!(["two"]));
}

#[tokio::test]
async fn head_of_lists_is_served() {
    let registry = Registry::new();
    push_tags(&registry, "heads", &["v1"]).await;
    let digest = format!("sha256:{}", "c".repeat(64));

    for uri in [
        "/v2/heads/tags/list".to_owned(),
        "/v2/_catalog".to_owned(),
        format!("/v2/heads/referrers/{digest}"),
    ] {
        let reply = registry.head(&uri).await;
        assert_eq!(reply.status, StatusCode::OK, "{uri}");
    }
}

#[tokio::test]
async fn catalog_follows_created_and_deleted_repositories() {
    let registry = Registry::new();
    push_tags(&registry, "first", &["v1"]).await;
    assert_eq!(
        registry.get("/v2/_catalog").await.json()["repositories"],
        json!(["first"])
    );

    // A push to an existing repository keeps the list; a new one extends it.
    push_tags(&registry, "first", &["v2"]).await;
    push_tags(&registry, "second", &["v1"]).await;
    let reply = registry.get("/v2/_catalog").await;
    assert_eq!(reply.json()["repositories"], json!(["first", "second"]));

    let digest = sha256(&registry.push_image_blobs("second", "tagged").await);
    let reply = registry
        .delete(&format!("/v2/second/manifests/{digest}"))
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED);
    let reply = registry.get("/v2/_catalog").await;
    assert_eq!(reply.json()["repositories"], json!(["first"]));
}
