//! The search extension: `GET /v1/search`, the endpoint that
//! `docker search HOST:PORT/TERM` calls, over an index kept in memory.
//!
//! The index contains every repository of the registry and, for each, a
//! description: the `org.opencontainers.image.description` annotation of
//! the image manifest or image index that a tag points at. When several
//! tags have one, the most recently pushed tag wins. A repository whose
//! tags have none has an empty description. After a restart the order of
//! earlier pushes is unknown, and tags count as pushed in name order.
//!
//! A background task builds the index from storage at startup, through the
//! registry's read-only view, and rebuilds it every `rebuildinterval`.
//! Between builds, receivers of `repository_created`, `repository_deleted`,
//! `tag_created`, `tag_deleted` and `manifest_pushed` queue updates that
//! the task applies in order, reading each new tag's manifest for its
//! description. The task applies a change after the response to the push,
//! so a search right after a push may still return the previous state.
//!
//! # Requests
//!
//! `GET /v1/search?q=TEXT&n=SIZE&page=NUMBER`:
//!
//! - `q` matches repository names, and descriptions unless
//!   `matchdescriptions` is off, as a substring regardless of case. A
//!   missing or empty `q` matches every repository.
//! - Results sort by rank, then by name. The ranks, best first, are:
//!   1. the name equals `q`,
//!   2. the last component of the name equals `q`,
//!   3. the name contains `q`,
//!   4. only the description contains `q`.
//! - `n` is the page size, from 1 to `maxpagesize` (`defaultpagesize` when
//!   missing), and `page` the page number from 1. A page past the last one
//!   is empty. An invalid `n` or `page`, or a repeated parameter, gets 400
//!   with `{"errors":[{"code","message","detail":{"parameter"}}]}`.
//! - While the first build runs, a request waits up to `readytimeout` and
//!   then gets 503 with `Retry-After`.
//!
//! The response is what docker 20.10 decodes, with Docker Hub's pagination
//! fields:
//!
//! ```json
//! {"num_pages": 1, "num_results": 1, "page_size": 25, "query": "web", "page": 1,
//!  "results": [{"name": "e2e/web", "description": "The web shop",
//!                "star_count": 0, "is_official": false, "is_automated": false}]}
//! ```
//!
//! docker 20.10 first sends `GET /v1/_ping`, over HTTPS and then over plain
//! HTTP for an insecure registry such as one on 127.0.0.1. The extension
//! returns `true` with `X-Docker-Registry-Standalone: true` to it. docker
//! prints results in the order received and cuts descriptions to 45
//! characters unless it gets `--no-trunc`.
//!
//! # Configuration
//!
//! Link it with `cargo build --features ext-search`. It is enabled by
//! default, and `enabled: false` turns it off, so that `/v1/search`
//! returns 404. Every key is optional:
//!
//! ```yaml
//! extensions:
//!   search:
//!     # Results per page when a request has no n; 1 to maxpagesize.
//!     defaultpagesize: 25
//!     # Largest n accepted; docker search sends up to 100 (--limit).
//!     maxpagesize: 100
//!     # Whether q also matches descriptions.
//!     matchdescriptions: true
//!     # How long a request waits for the first build after startup.
//!     readytimeout: 10s
//!     # Time between rebuilds from storage; 0s turns them off.
//!     rebuildinterval: 1h
//! ```
//!
//! # Metrics
//!
//! `registry_search_repositories` (gauge), `registry_search_requests_total`
//! by `outcome` (`ok`, `rejected`, `unavailable`),
//! `registry_search_index_builds_total` by `outcome` (`ok`, `failed`) and
//! `registry_search_updates_dropped_total`.
//!
//! # Limits
//!
//! The index is not stored: each start reads every repository, tag and
//! tagged manifest once. Matching scans every repository, which takes time
//! in proportion to their number on each request. Events dropped because
//! the extension's queue was full (`signals.queuesize`) are missing from
//! the index until the next rebuild. Stars, official and automated images
//! do not exist here, so those fields are always 0 and `false`.

mod config;
mod description;
mod http;
mod index;
mod query;
mod receivers;
mod state;
mod updater;

use std::sync::Arc;

use registry_signals::ExtensionContext;

pub use config::{DEFAULT_MAX_PAGE_SIZE, DEFAULT_PAGE_SIZE, SearchConfig};
pub use description::{DESCRIPTION_ANNOTATION, MAX_DESCRIPTION_CHARS, manifest_description};
pub use index::{Hit, Index, Rank, SearchPage};
pub use query::{QueryError, SearchRequest};

registry_signals::extension!(name: "search", config: SearchConfig, enabled_by_default: true);

registry_signals::receiver!("search", receivers::repository_created);
registry_signals::receiver!("search", receivers::repository_deleted);
registry_signals::receiver!("search", receivers::tag_created);
registry_signals::receiver!("search", receivers::tag_deleted);
registry_signals::receiver!("search", receivers::manifest_pushed);

registry_signals::setup!("search", register_metrics);
registry_signals::routes!("search", http::routes);
registry_signals::task!("search", updater::maintain_index_apart);

/// Publishes the extension's metrics to the registry's telemetry.
fn register_metrics(config: &SearchConfig, context: &ExtensionContext) -> Result<(), String> {
    let state = Arc::clone(&config.state);
    context
        .telemetry()
        .register(Arc::new(move || state.metrics()));
    Ok(())
}
