#![cfg(feature = "ext-search")]
//! The search extension in a binary built with `--features ext-search`:
//! `docker search HOST:PORT/TERM` lists exactly the matching repositories
//! with the description annotation, `/v1/search` paginates and rejects
//! invalid parameters, and the index follows deletes, pushes after startup
//! and restarts on the same storage.
//!
//! Images are built with umoci, the description set with
//! `umoci config --manifest.annotation`, and pushed with skopeo.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use registry_e2e::api::Api;
use registry_e2e::command::{UMOCI, output};
use registry_e2e::docker::Dockerd;
use registry_e2e::layout::OciLayout;
use registry_e2e::skopeo::Skopeo;
use registry_e2e::umoci::Umoci;
use registry_e2e::{Launch, Registry, workspace_binary};
use reqwest::StatusCode;
use reqwest::blocking::Client;
use serde_json::Value;

/// The annotation whose value the extension returns as the description.
const DESCRIPTION: &str = "org.opencontainers.image.description";

/// The description of the `described` image, shorter than the 45
/// characters that docker's table shows without `--no-trunc`.
const FRONTEND_DESCRIPTION: &str = "Storefront of the web shop";

/// The description of the `described-2` image.
const FRONTEND_DESCRIPTION_2: &str = "Storefront of the web shop, second edition";

/// The maximum time for a change to reach the index: the receiver runs on
/// a worker thread and the index task applies the update after it.
const INDEX_TIMEOUT: Duration = Duration::from_secs(20);

/// Returns the registry binary with the search extension, built once per
/// test process into its own target directory.
fn search_binary() -> PathBuf {
    workspace_binary("registry", "registry", &["ext-search"])
}

/// Starts a registry with the search extension and `extra_config`.
fn start_registry(extra_config: &str) -> Registry {
    Registry::start_with(Launch {
        binary: Some(search_binary()),
        extra_config: extra_config.to_owned(),
        env: Vec::new(),
    })
}

/// Builds a layout with three images: `plain` without annotations, and
/// `described` and `described-2`, each `plain` with a description
/// annotation on its manifest.
fn build_images(dir: &Path) -> OciLayout {
    let layout = Umoci.one_layer_image(
        &dir.join("layout"),
        "plain",
        &[("etc/e2e/search.txt", b"search\n")],
    );
    for (tag, description) in [
        ("described", FRONTEND_DESCRIPTION),
        ("described-2", FRONTEND_DESCRIPTION_2),
    ] {
        UMOCI.run([
            "config",
            "--image",
            &format!("{}:plain", layout.dir().display()),
            "--tag",
            tag,
            "--manifest.annotation",
            &format!("{DESCRIPTION}={description}"),
        ]);
    }
    layout
}

/// Copies `tag` of the layout to `repository:remote_tag` on the registry.
fn push(registry: &Registry, layout: &OciLayout, tag: &str, repository: &str, remote_tag: &str) {
    let destination = format!("docker://{}/{repository}:{remote_tag}", registry.host());
    Skopeo::new().copy(&layout.reference(tag), &destination, &[]);
}

/// Builds a blocking HTTP client for `/v1/` requests that ignores proxy
/// variables.
fn client() -> Client {
    Client::builder()
        .no_proxy()
        .build()
        .expect("building an HTTP client")
}

/// Sends `GET path` and returns the status and the body as JSON.
fn get_json(registry: &Registry, path: &str) -> (StatusCode, Value) {
    let response = client()
        .get(registry.url(path))
        .send()
        .unwrap_or_else(|e| panic!("GET {path} failed: {e}"));
    let status = response.status();
    let body = response
        .text()
        .unwrap_or_else(|e| panic!("GET {path}: reading the body failed: {e}"));
    let json = serde_json::from_str(&body)
        .unwrap_or_else(|e| panic!("GET {path}: the body is not JSON ({e}): {body}"));
    (status, json)
}

/// Returns the search response for `query`, which is already encoded.
fn search(registry: &Registry, query: &str) -> Value {
    let path = format!("/v1/search?{query}");
    let (status, body) = get_json(registry, &path);
    assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
    body
}

/// Returns the repository names of a search response, in order.
fn result_names(response: &Value) -> Vec<String> {
    response["results"]
        .as_array()
        .unwrap_or_else(|| panic!("the response has no results array: {response}"))
        .iter()
        .map(|result| {
            result["name"]
                .as_str()
                .expect("a name is a string")
                .to_owned()
        })
        .collect()
}

/// Returns the description of `name` in a search response.
fn description_of<'a>(response: &'a Value, name: &str) -> &'a str {
    response["results"]
        .as_array()
        .and_then(|results| results.iter().find(|result| result["name"] == name))
        .and_then(|result| result["description"].as_str())
        .unwrap_or_else(|| panic!("no result {name} with a description: {response}"))
}

/// Polls the search for `q` (the first page of 100) until it returns
/// exactly `expected`, and returns that response.
fn wait_for_names(registry: &Registry, q: &str, expected: &[&str]) -> Value {
    let deadline = Instant::now() + INDEX_TIMEOUT;
    loop {
        let response = search(registry, &format!("q={q}&n=100"));
        if result_names(&response) == expected || Instant::now() > deadline {
            assert_eq!(
                result_names(&response),
                expected,
                "search for {q:?} after {INDEX_TIMEOUT:?}: {response}"
            );
            return response;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs `docker search` for `TERM` on the registry with `args` and returns
/// its output.
fn docker_search(docker: &Dockerd, registry: &Registry, term: &str, args: &[&str]) -> String {
    let mut command = vec!["search"];
    command.extend_from_slice(args);
    let reference = format!("{}/{term}", registry.host());
    command.push(&reference);
    docker.run(command)
}

#[test]
fn docker_search_lists_matching_repositories() {
    let work = tempfile::tempdir().expect("creating a temporary directory");
    let layout = build_images(work.path());
    let registry = start_registry("");
    for (tag, repository) in [
        ("plain", "web"),
        ("plain", "e2e/web-backend"),
        ("described", "e2e/web-frontend"),
        ("plain", "e2e/database"),
    ] {
        push(&registry, &layout, tag, repository, "v1");
    }
    wait_for_names(
        &registry,
        "web",
        &["web", "e2e/web-backend", "e2e/web-frontend"],
    );
    // dockerd trusts 127.0.0.0/8 over plain HTTP without
    // --insecure-registry, and after a restart the registry's port changes.
    let docker = Dockerd::start(&[]);

    // The exact name first, then by name; e2e/database does not match.
    let listing = docker_search(
        &docker,
        &registry,
        "web",
        &["--no-trunc", "--format", "{{.Name}}|{{.Description}}"],
    );
    let lines: Vec<&str> = listing.lines().collect();
    let frontend_line = format!("e2e/web-frontend|{FRONTEND_DESCRIPTION}");
    assert_eq!(
        lines,
        ["web|", "e2e/web-backend|", frontend_line.as_str()],
        "docker search printed:\n{listing}"
    );

    // The default table: a header and one row per repository, with the
    // description, 0 stars and no official or automated mark.
    let table = docker_search(&docker, &registry, "WEB-front", &[]);
    let rows: Vec<Vec<&str>> = table
        .lines()
        .map(|line| line.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows.len(),
        2,
        "docker search printed a header and one row? {table}"
    );
    assert_eq!(
        rows[0],
        ["NAME", "DESCRIPTION", "STARS", "OFFICIAL", "AUTOMATED"],
        "{table}"
    );
    let mut expected_row = vec!["e2e/web-frontend"];
    expected_row.extend(FRONTEND_DESCRIPTION.split(' '));
    expected_row.push("0");
    assert_eq!(rows[1], expected_row, "{table}");

    // A term found only in a description matches too.
    let listing = docker_search(&docker, &registry, "storefront", &["--format", "{{.Name}}"]);
    assert_eq!(listing, "e2e/web-frontend\n");

    // A term that matches nothing prints only the header.
    let table = docker_search(&docker, &registry, "nothing-here", &[]);
    assert_eq!(table.lines().count(), 1, "docker search printed:\n{table}");

    // --limit is the page size, and docker shows the first page.
    let listing = docker_search(
        &docker,
        &registry,
        "e2e",
        &["--limit", "2", "--format", "{{.Name}}"],
    );
    assert_eq!(listing, "e2e/database\ne2e/web-backend\n");
}

#[test]
fn search_json_paginates_and_rejects_invalid_parameters() {
    let work = tempfile::tempdir().expect("creating a temporary directory");
    let layout = build_images(work.path());
    let registry = start_registry("extensions:\n  search:\n    defaultpagesize: 2\n");
    for (tag, repository) in [
        ("plain", "web"),
        ("plain", "e2e/web-backend"),
        ("described", "e2e/web-frontend"),
        ("plain", "e2e/database"),
    ] {
        push(&registry, &layout, tag, repository, "v1");
    }
    wait_for_names(
        &registry,
        "web",
        &["web", "e2e/web-backend", "e2e/web-frontend"],
    );

    // docker's ping before a search.
    let response = client()
        .get(registry.url("/v1/_ping"))
        .send()
        .expect("GET /v1/_ping");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["x-docker-registry-standalone"],
        "true",
        "GET /v1/_ping headers: {:?}",
        response.headers()
    );

    // Without n, the configured default of 2 applies.
    let first = search(&registry, "q=web");
    assert_eq!(first["num_results"], 3, "{first}");
    assert_eq!(first["num_pages"], 2, "{first}");
    assert_eq!(first["page_size"], 2, "{first}");
    assert_eq!(first["page"], 1, "{first}");
    assert_eq!(first["query"], "web", "{first}");
    assert_eq!(result_names(&first), ["web", "e2e/web-backend"]);
    let web = &first["results"][0];
    assert_eq!(web["description"], "", "{first}");
    assert_eq!(web["star_count"], 0, "{first}");
    assert_eq!(web["is_official"], false, "{first}");
    assert_eq!(web["is_automated"], false, "{first}");

    let second = search(&registry, "q=web&page=2");
    assert_eq!(second["page"], 2, "{second}");
    assert_eq!(result_names(&second), ["e2e/web-frontend"]);
    assert_eq!(
        description_of(&second, "e2e/web-frontend"),
        FRONTEND_DESCRIPTION
    );

    let past_the_end = search(&registry, "q=web&page=3");
    assert_eq!(past_the_end["num_results"], 3, "{past_the_end}");
    assert_eq!(result_names(&past_the_end), Vec::<String>::new());

    // An empty query lists every repository; n=100 is the default maximum.
    let everything = search(&registry, "q=&n=100");
    assert_eq!(
        result_names(&everything),
        ["e2e/database", "e2e/web-backend", "e2e/web-frontend", "web"]
    );

    // Invalid parameters get 400 with an error that names the value.
    let cases = [
        ("q=web&n=0", "PAGINATION_NUMBER_INVALID", "invalid n \"0\""),
        (
            "q=web&n=101",
            "PAGINATION_NUMBER_INVALID",
            "invalid n \"101\"",
        ),
        (
            "q=web&n=ten",
            "PAGINATION_NUMBER_INVALID",
            "invalid n \"ten\"",
        ),
        ("q=web&page=0", "PAGE_NUMBER_INVALID", "invalid page \"0\""),
        (
            "q=web&page=-1",
            "PAGE_NUMBER_INVALID",
            "invalid page \"-1\"",
        ),
    ];
    for (query, code, message) in cases {
        let (status, body) = get_json(&registry, &format!("/v1/search?{query}"));
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        let error = &body["errors"][0];
        assert_eq!(error["code"], code, "{query}: {body}");
        let text = error["message"].as_str().unwrap_or_default();
        assert!(text.starts_with(message), "{query}: {body}");
    }
}

#[test]
fn index_follows_deletes_pushes_and_restarts() {
    let work = tempfile::tempdir().expect("creating a temporary directory");
    let layout = build_images(work.path());
    let mut registry = start_registry("");
    let api = Api::new(&registry);
    push(&registry, &layout, "plain", "web", "v1");
    push(&registry, &layout, "plain", "e2e/web-backend", "v1");
    push(&registry, &layout, "described", "e2e/web-frontend", "1");
    wait_for_names(
        &registry,
        "web",
        &["web", "e2e/web-backend", "e2e/web-frontend"],
    );

    // A later tag with another description replaces the description.
    push(&registry, &layout, "described-2", "e2e/web-frontend", "2");
    let deadline = Instant::now() + INDEX_TIMEOUT;
    let mut response = search(&registry, "q=web-frontend");
    while description_of(&response, "e2e/web-frontend") != FRONTEND_DESCRIPTION_2
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(50));
        response = search(&registry, "q=web-frontend");
    }
    assert_eq!(
        description_of(&response, "e2e/web-frontend"),
        FRONTEND_DESCRIPTION_2
    );

    // Deleting the only manifest of e2e/web-backend deletes the repository.
    let digest = layout.descriptor("plain").digest;
    let path = format!("/v2/e2e/web-backend/manifests/{digest}");
    let deleted = client()
        .delete(registry.url(&path))
        .send()
        .unwrap_or_else(|e| panic!("DELETE {path} failed: {e}"));
    assert_eq!(deleted.status(), StatusCode::ACCEPTED, "DELETE {path}");
    assert!(
        !api.catalog().contains(&"e2e/web-backend".to_owned()),
        "the catalog still lists e2e/web-backend"
    );
    wait_for_names(&registry, "web", &["web", "e2e/web-frontend"]);

    // A repository pushed now appears.
    push(&registry, &layout, "plain", "e2e/web-late", "v1");
    wait_for_names(
        &registry,
        "web",
        &["web", "e2e/web-frontend", "e2e/web-late"],
    );

    // A new process on the same storage builds the same index. Storage
    // keeps no push order, so the tag that sorts last, 2, gives the
    // description, as the push order did.
    registry.restart();
    let response = search(&registry, "q=web");
    assert_eq!(
        result_names(&response),
        ["web", "e2e/web-frontend", "e2e/web-late"],
        "after the restart: {response}"
    );
    assert_eq!(
        description_of(&response, "e2e/web-frontend"),
        FRONTEND_DESCRIPTION_2
    );
    let builds = registry
        .log()
        .lines()
        .filter(|line| line.contains("search: index built from storage"))
        .count();
    assert_eq!(builds, 2, "one build per process; log:\n{}", registry.log());

    // And keeps following pushes after the build.
    push(&registry, &layout, "plain", "e2e/web-after-restart", "v1");
    wait_for_names(
        &registry,
        "web",
        &[
            "web",
            "e2e/web-after-restart",
            "e2e/web-frontend",
            "e2e/web-late",
        ],
    );
}

#[test]
fn disabled_search_has_no_route() {
    let registry = start_registry("extensions:\n  search:\n    enabled: false\n");
    let response = client()
        .get(registry.url("/v1/search?q=web"))
        .send()
        .expect("GET /v1/search");
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

#[test]
fn invalid_search_section_is_rejected() {
    let dir = tempfile::tempdir().expect("creating a temporary directory");
    let cases = [
        ("maxpagesize: 0", "invalid maxpagesize 0"),
        (
            "defaultpagesize: 200",
            "invalid defaultpagesize 200: must be from 1 to maxpagesize (100)",
        ),
        ("pagesize: 10", "pagesize"),
        ("readytimeout: 10", "expected a duration with a unit"),
        ("rebuildinterval: soon", "invalid duration \"soon\""),
    ];
    for (setting, message) in cases {
        let path = dir.path().join("config.yml");
        std::fs::write(&path, format!("extensions:\n  search:\n    {setting}\n"))
            .expect("writing the configuration");
        let result = output(
            Command::new(search_binary())
                .arg("check-config")
                .arg("--config")
                .arg(&path),
        );
        let stderr = String::from_utf8_lossy(&result.stderr);
        assert_eq!(result.status.code(), Some(2), "{setting}: {stderr}");
        assert!(stderr.contains("extensions.search"), "{setting}: {stderr}");
        assert!(stderr.contains(message), "{setting}: {stderr}");
    }
}
