//! `GET`, `HEAD`, `PUT` and `DELETE /v2/<name>/manifests/<reference>`.

use axum::body::Body;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};

use registry_signals::{
    ManifestDeleted, ManifestPulled, ManifestPushed, RepositoryCreated, RepositoryDeleted,
    RepositoryUpdated, Signal, SignalKind, TagCreated, TagDeleted,
};

use super::blobs::header_value;
use super::context::request_context;
use super::uploads::url_pairs;
use super::{ApiError, AppState, ErrorCode, body};
use crate::extensions::OwnedCandidate;
use crate::manifest;
use crate::reference::{Digest, Reference, RepoName, Tag};
use crate::storage::{ManifestDeleteOutcome, ManifestPut, ManifestPutOutcome, StoredManifest};

/// Most tags one PUT by digest may create with `?tag=`.
const MAX_QUERY_TAGS: usize = 100;

fn parse_target(name: &str, reference: &str) -> Result<(RepoName, Reference), ApiError> {
    let repo = RepoName::parse(name).map_err(ApiError::name_invalid)?;
    let reference = Reference::parse(reference).map_err(|e| match e {
        crate::reference::ReferenceError::InvalidTag(_) => ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::ManifestInvalid,
            e.to_string(),
        ),
        other => ApiError::digest_invalid(other),
    })?;
    Ok((repo, reference))
}

/// Serves a manifest by tag or digest, with the exact bytes and media type
/// it was pushed with.
pub async fn get(
    state: &AppState,
    name: &str,
    reference: &str,
    parts: &Parts,
) -> Result<Response, ApiError> {
    let (repo, reference) = parse_target(name, reference)?;
    let stored = match &reference {
        Reference::Tag(tag) => state.storage.manifest_by_tag(&repo, tag).await?,
        Reference::Digest(digest) => state.storage.manifest_by_digest(&repo, digest).await?,
    };
    check_accept(&parts.headers, &stored)?;

    // Media types are checked on push; one stored by an older version that
    // is not a valid header is a server fault, not a panic.
    let content_type = HeaderValue::from_str(&stored.media_type).map_err(|_| {
        ApiError::internal(format!(
            "stored media type {:?} of {} is not a valid header value",
            stored.media_type, stored.digest
        ))
    })?;
    let builder = Response::builder()
        .header(header::CONTENT_TYPE, content_type)
        .header(
            "docker-content-digest",
            header_value(&stored.digest.to_string()),
        )
        .header(
            header::ETAG,
            header_value(&format!("\"{}\"", stored.digest)),
        )
        .header(header::CONTENT_LENGTH, stored.bytes.len());
    if parts.method == Method::HEAD {
        return Ok(builder.body(Body::empty()).expect("valid response"));
    }
    if state.dispatcher.wants(SignalKind::ManifestPulled) {
        let signal = Signal::from(ManifestPulled {
            repository: repo.to_string(),
            digest: stored.digest.to_string(),
            media_type: stored.media_type.clone(),
            size: stored.bytes.len() as u64,
            tag: match &reference {
                Reference::Tag(tag) => Some(tag.to_string()),
                Reference::Digest(_) => None,
            },
        });
        state
            .dispatcher
            .emit(&request_context(state, parts), vec![signal])
            .await;
    } else {
        state.dispatcher.count(SignalKind::ManifestPulled);
    }
    let body = Body::from(stored.bytes);
    Ok(builder.body(body).expect("valid response"))
}

/// Rejects a GET whose `Accept` header lists manifest types but not the
/// stored one. A missing header, `*/*`, `application/*` or an Accept with no
/// manifest type at all accepts anything, because clients differ widely in
/// what they send and the bytes must still be served unchanged.
fn check_accept(headers: &HeaderMap, stored: &StoredManifest) -> Result<(), ApiError> {
    let accepted: Vec<&str> = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(|item| item.split(';').next().unwrap_or_default().trim())
        .filter(|item| !item.is_empty())
        .collect();

    let anything = accepted.is_empty()
        || accepted
            .iter()
            .any(|t| matches!(*t, "*/*" | "application/*") || *t == stored.media_type);
    let names_manifests = accepted.iter().any(|t| {
        matches!(
            *t,
            manifest::OCI_MANIFEST
                | manifest::OCI_INDEX
                | manifest::DOCKER_MANIFEST
                | manifest::DOCKER_MANIFEST_LIST
        )
    });
    if anything || !names_manifests {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::NOT_FOUND,
        ErrorCode::ManifestUnknown,
        format!(
            "manifest {} has media type {}, which the Accept header does not list",
            stored.digest, stored.media_type
        ),
    ))
}

/// Stores a manifest by tag, or by digest with optional `?tag=` parameters.
pub async fn put(
    state: &AppState,
    name: &str,
    reference: &str,
    parts: &Parts,
    request_body: Body,
) -> Result<Response, ApiError> {
    let (repo, reference) = parse_target(name, reference)?;
    let query_tags = query_tags(parts, &reference)?;
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .map(|value| {
            value
                .split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_owned()
        })
        .filter(|value| !value.is_empty());

    let bytes = body::read_limited(
        &parts.headers,
        request_body,
        state.settings.manifest_max_bytes,
        state.settings.idle_timeout,
    )
    .await?;
    let parsed = manifest::parse(content_type.as_deref(), &bytes)?;

    // A PUT by digest is checked against that digest, with its algorithm.
    let (digest, mut tags) = match reference {
        Reference::Digest(expected) => {
            let actual = Digest::of(expected.algorithm(), &bytes);
            if actual != expected {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    ErrorCode::DigestInvalid,
                    format!("manifest has digest {actual}, not {expected} as the URL says"),
                ));
            }
            (expected, Vec::new())
        }
        Reference::Tag(tag) => (
            Digest::of(crate::reference::Algorithm::Sha256, &bytes),
            vec![tag],
        ),
    };
    tags.extend(query_tags.iter().cloned());

    if state.dispatcher.has_guards() {
        let candidate = OwnedCandidate {
            repository: repo.to_string(),
            tag: tags.first().map(Tag::to_string),
            digest: digest.to_string(),
            media_type: parsed.media_type.clone(),
            bytes: bytes.clone(),
        };
        state
            .dispatcher
            .check(candidate)
            .await
            .map_err(|rejection| {
                ApiError::new(StatusCode::FORBIDDEN, ErrorCode::Denied, rejection.reason)
            })?;
    }

    let subject = parsed.subject.clone();
    let pushed = ManifestPushed {
        repository: repo.to_string(),
        digest: digest.to_string(),
        media_type: parsed.media_type.clone(),
        size: bytes.len() as u64,
        tag: match tags.first() {
            Some(tag) if query_tags.is_empty() => Some(tag.to_string()),
            _ => None,
        },
        tags: tags.iter().map(Tag::to_string).collect(),
        subject: subject.as_ref().map(Digest::to_string),
        bytes: bytes.clone(),
    };
    let put = ManifestPut {
        digest: digest.clone(),
        bytes,
        parsed,
        tags,
    };

    let order = state.order(&repo).await;
    let outcome = state.storage.manifest_put(&repo, put).await?;
    let signals = push_signals(pushed, &outcome);
    let pending = state
        .dispatcher
        .emit_ordered(&request_context(state, parts), signals);
    drop(order);
    pending.finish().await;
    tracing::debug!(
        %digest,
        repository_created = outcome.repository_created,
        tags_changed = outcome.tags.len(),
        "manifest stored"
    );

    let mut response = (
        StatusCode::CREATED,
        [
            (
                header::LOCATION,
                header_value(&format!("/v2/{repo}/manifests/{digest}")),
            ),
            (
                header::HeaderName::from_static("docker-content-digest"),
                header_value(&digest.to_string()),
            ),
            (header::CONTENT_LENGTH, HeaderValue::from_static("0")),
        ],
    )
        .into_response();
    let headers = response.headers_mut();
    if let Some(subject) = subject {
        headers.insert("oci-subject", header_value(&subject.to_string()));
    }
    for tag in &query_tags {
        headers.append("oci-tag", header_value(tag.as_str()));
    }
    Ok(response)
}

/// Reads the `tag` query parameters of a PUT by digest.
fn query_tags(parts: &Parts, reference: &Reference) -> Result<Vec<Tag>, ApiError> {
    let query = parts.uri.query().unwrap_or_default();
    let mut tags = Vec::new();
    for (key, value) in url_pairs(query) {
        if key != "tag" {
            continue;
        }
        if matches!(reference, Reference::Tag(_)) {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::ManifestInvalid,
                "tag query parameters are only allowed on a PUT by digest",
            ));
        }
        let tag = Tag::parse(&value).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::ManifestInvalid,
                e.to_string(),
            )
        })?;
        if !tags.contains(&tag) {
            tags.push(tag);
        }
    }
    if tags.len() > MAX_QUERY_TAGS {
        return Err(ApiError::new(
            StatusCode::URI_TOO_LONG,
            ErrorCode::ManifestInvalid,
            format!("at most {MAX_QUERY_TAGS} tag parameters are accepted in one request"),
        ));
    }
    Ok(tags)
}

/// Deletes a manifest by digest (with the tags that point at it), or only a
/// tag.
pub async fn delete(
    state: &AppState,
    name: &str,
    reference: &str,
    parts: &Parts,
) -> Result<Response, ApiError> {
    let (repo, reference) = parse_target(name, reference)?;
    if !state.settings.delete_enabled {
        return Err(ApiError::delete_disabled());
    }
    let order = state.order(&repo).await;
    let signals = match reference {
        Reference::Tag(tag) => {
            let digest = state.storage.tag_delete(&repo, &tag).await?;
            tracing::debug!(%tag, %digest, "tag deleted");
            vec![Signal::from(TagDeleted {
                repository: repo.to_string(),
                tag: tag.to_string(),
                digest: digest.to_string(),
            })]
        }
        Reference::Digest(digest) => {
            let outcome = state.storage.manifest_delete(&repo, &digest).await?;
            tracing::debug!(
                %digest,
                tags_removed = outcome.tags.len(),
                repository_deleted = outcome.repository_deleted,
                "manifest deleted"
            );
            delete_signals(&repo, &digest, &outcome)
        }
    };
    let pending = state
        .dispatcher
        .emit_ordered(&request_context(state, parts), signals);
    drop(order);
    pending.finish().await;
    Ok((StatusCode::ACCEPTED, [(header::CONTENT_LENGTH, "0")]).into_response())
}

/// Builds the signals of a stored manifest: `repository_created` for the first
/// manifest of a repository, `manifest_pushed` always, `tag_created` for each
/// tag that is new or moved, and `repository_updated` when the push changed
/// an existing repository. A repeated push changes no state and fires only
/// `manifest_pushed`.
fn push_signals(pushed: ManifestPushed, outcome: &ManifestPutOutcome) -> Vec<Signal> {
    let mut signals = Vec::with_capacity(outcome.tags.len() + 2);
    if outcome.repository_created {
        signals.push(Signal::from(RepositoryCreated {
            repository: pushed.repository.clone(),
        }));
    }
    for change in &outcome.tags {
        signals.push(Signal::from(TagCreated {
            repository: pushed.repository.clone(),
            tag: change.tag.to_string(),
            digest: pushed.digest.clone(),
            media_type: pushed.media_type.clone(),
            previous_digest: change.previous.as_ref().map(Digest::to_string),
        }));
    }
    let changed = outcome.manifest_created || !outcome.tags.is_empty();
    let updated = (!outcome.repository_created && changed).then(|| {
        Signal::from(RepositoryUpdated {
            repository: pushed.repository.clone(),
            digest: pushed.digest.clone(),
        })
    });
    signals.insert(
        usize::from(outcome.repository_created),
        Signal::from(pushed),
    );
    signals.extend(updated);
    signals
}

/// Builds the signals of a deleted manifest: `manifest_deleted`, `tag_deleted` for
/// each tag removed with it, then `repository_deleted` when nothing is left
/// or `repository_updated` otherwise.
fn delete_signals(
    repo: &RepoName,
    digest: &Digest,
    outcome: &ManifestDeleteOutcome,
) -> Vec<Signal> {
    let repository = repo.to_string();
    let mut signals = vec![Signal::from(ManifestDeleted {
        repository: repository.clone(),
        digest: digest.to_string(),
    })];
    for tag in &outcome.tags {
        signals.push(Signal::from(TagDeleted {
            repository: repository.clone(),
            tag: tag.to_string(),
            digest: digest.to_string(),
        }));
    }
    signals.push(if outcome.repository_deleted {
        Signal::from(RepositoryDeleted { repository })
    } else {
        Signal::from(RepositoryUpdated {
            repository,
            digest: digest.to_string(),
        })
    });
    signals
}
