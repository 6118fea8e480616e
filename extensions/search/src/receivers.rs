//! The receivers: each turns a signal into an [`Update`] for the index task
//! and returns at once.

use registry_signals::{
    Event, ManifestPushed, RepositoryCreated, RepositoryDeleted, TagCreated, TagDeleted,
};

use crate::config::SearchConfig;
use crate::description::manifest_description;
use crate::state::Update;

pub(crate) fn repository_created(
    _event: &Event,
    created: &RepositoryCreated,
    config: &SearchConfig,
) {
    config.state.send(Update::AddRepository {
        repository: created.repository.clone(),
    });
}

pub(crate) fn repository_deleted(
    _event: &Event,
    deleted: &RepositoryDeleted,
    config: &SearchConfig,
) {
    config.state.send(Update::RemoveRepository {
        repository: deleted.repository.clone(),
    });
}

pub(crate) fn tag_created(_event: &Event, tag: &TagCreated, config: &SearchConfig) {
    config.state.send(Update::SetTag {
        repository: tag.repository.clone(),
        tag: tag.tag.clone(),
        digest: tag.digest.clone(),
        description: None,
    });
}

pub(crate) fn tag_deleted(_event: &Event, tag: &TagDeleted, config: &SearchConfig) {
    config.state.send(Update::RemoveTag {
        repository: tag.repository.clone(),
        tag: tag.tag.clone(),
    });
}

/// Marks a tag as the most recently pushed also when the push did not move
/// it, which fires no `tag_created`. A push by digest only makes sure the
/// repository is indexed.
pub(crate) fn manifest_pushed(_event: &Event, pushed: &ManifestPushed, config: &SearchConfig) {
    let update = match &pushed.tag {
        // The event carries the manifest, so the description needs no
        // read from storage.
        Some(tag) => Update::SetTag {
            repository: pushed.repository.clone(),
            tag: tag.clone(),
            digest: pushed.digest.clone(),
            description: Some(manifest_description(&pushed.bytes)),
        },
        None => Update::AddRepository {
            repository: pushed.repository.clone(),
        },
    };
    config.state.send(update);
}
