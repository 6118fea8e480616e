//! Events in the Go registry's notification format, and the bodies sent to
//! endpoints.

use registry_signals::{Event, Signal};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The media type of the Go registry's envelope.
pub const ENVELOPE_MEDIA_TYPE: &str = "application/vnd.docker.distribution.events.v2+json";

/// The media type of a structured CloudEvent.
pub const CLOUDEVENTS_MEDIA_TYPE: &str = "application/cloudevents+json";

/// The media type the Go registry gives blob targets.
const BLOB_MEDIA_TYPE: &str = "application/octet-stream";

/// One event as the outbox keeps it: the Go registry's event object, with
/// the fields that endpoint filters read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub action: String,
    #[serde(rename = "mediaType")]
    pub media_type: String,
    pub event: Value,
}

/// Builds the records of an event: none for a signal that has no
/// notification (repository and tag state signals other than tag deletes),
/// one per tag for a push by digest with `tag` parameters, and one
/// otherwise. The second and later records of one event get the event's id
/// with `-1`, `-2`, ... appended.
pub fn records(event: &Event, url_base: Option<&str>) -> Vec<Record> {
    let Some(record) = record(event, url_base) else {
        return Vec::new();
    };
    let tags = match &event.signal {
        Signal::ManifestPushed(p) if p.tag.is_none() && !p.tags.is_empty() => &p.tags,
        _ => return vec![record],
    };
    tags.iter()
        .enumerate()
        .map(|(index, tag)| {
            let mut tagged = record.clone();
            tagged.event["target"]["tag"] = json!(tag);
            if index > 0 {
                tagged.event["id"] = json!(format!("{}-{index}", event.id));
            }
            tagged
        })
        .collect()
}

/// Builds the record of an event, or `None` for a signal that has no
/// notification.
fn record(event: &Event, url_base: Option<&str>) -> Option<Record> {
    let context = &event.context;
    let base = match url_base {
        Some(base) => base.trim_end_matches('/').to_owned(),
        None => format!("http://{}", context.host.as_deref().unwrap_or("localhost")),
    };

    let (action, target) = match &event.signal {
        Signal::ManifestPushed(p) => (
            "push",
            Target::manifest(
                &p.repository,
                &p.digest,
                &p.media_type,
                Some(p.size),
                p.tag.as_deref(),
            ),
        ),
        Signal::ManifestPulled(p) => (
            "pull",
            Target::manifest(
                &p.repository,
                &p.digest,
                &p.media_type,
                Some(p.size),
                p.tag.as_deref(),
            ),
        ),
        Signal::ManifestDeleted(p) => (
            "delete",
            Target::manifest(&p.repository, &p.digest, "", None, None),
        ),
        Signal::TagDeleted(p) => (
            "delete",
            Target::manifest(&p.repository, &p.digest, "", None, Some(&p.tag)),
        ),
        Signal::BlobPushed(p) => ("push", Target::blob(&p.repository, &p.digest, Some(p.size))),
        Signal::BlobPulled(p) => ("pull", Target::blob(&p.repository, &p.digest, Some(p.size))),
        Signal::BlobMounted(p) => (
            "mount",
            Target::blob(&p.repository, &p.digest, Some(p.size)),
        ),
        Signal::BlobDeleted(p) => ("delete", Target::blob(&p.repository, &p.digest, None)),
        _ => return None,
    };
    let media_type = target.media_type.to_owned();
    let mut target = target.to_json(&base);
    if let Signal::BlobMounted(p) = &event.signal
        && let Some(from) = &p.source_repository
    {
        target["fromRepository"] = json!(from);
    }

    let timestamp = humantime::format_rfc3339_nanos(event.timestamp).to_string();
    let mut request = json!({
        "id": context.request_id,
        "method": context.method,
    });
    if let Some(addr) = context.remote_addr {
        request["addr"] = json!(addr.to_string());
    }
    if let Some(host) = &context.host {
        request["host"] = json!(host);
    }
    if let Some(agent) = &context.user_agent {
        request["useragent"] = json!(agent);
    }
    let mut actor = json!({});
    if let Some(name) = &context.actor {
        actor["name"] = json!(name);
    }
    let mut source = json!({ "instanceID": context.instance_id });
    if let Some(host) = &context.host {
        source["addr"] = json!(host);
    }

    Some(Record {
        action: action.to_owned(),
        media_type,
        event: json!({
            "id": event.id,
            "timestamp": timestamp,
            "action": action,
            "target": target,
            "request": request,
            "actor": actor,
            "source": source,
        }),
    })
}

/// The object an event is about, as the `target` of the Go registry's
/// event.
struct Target<'a> {
    /// `manifests` or `blobs`, the path segment of its URL.
    collection: &'static str,
    repository: &'a str,
    digest: &'a str,
    /// Empty when the event does not know it (deletes of manifests).
    media_type: &'a str,
    size: Option<u64>,
    tag: Option<&'a str>,
}

impl<'a> Target<'a> {
    fn manifest(
        repository: &'a str,
        digest: &'a str,
        media_type: &'a str,
        size: Option<u64>,
        tag: Option<&'a str>,
    ) -> Self {
        Self {
            collection: "manifests",
            repository,
            digest,
            media_type,
            size,
            tag,
        }
    }

    fn blob(repository: &'a str, digest: &'a str, size: Option<u64>) -> Self {
        Self {
            collection: "blobs",
            repository,
            digest,
            media_type: BLOB_MEDIA_TYPE,
            size,
            tag: None,
        }
    }

    /// Returns the target object, with its URL under `base`.
    fn to_json(&self, base: &str) -> Value {
        let url = format!(
            "{base}/v2/{}/{}/{}",
            self.repository, self.collection, self.digest
        );
        let mut target = json!({
            "digest": self.digest,
            "repository": self.repository,
            "url": url,
        });
        if !self.media_type.is_empty() {
            target["mediaType"] = json!(self.media_type);
        }
        if let Some(size) = self.size {
            // `length` repeats `size`, as in the Go registry.
            target["size"] = json!(size);
            target["length"] = json!(size);
        }
        if let Some(tag) = self.tag {
            target["tag"] = json!(tag);
        }
        target
    }
}

/// Builds the Go registry's envelope of a batch of events.
pub fn docker_body(records: &[&Record]) -> Vec<u8> {
    let events: Vec<&Value> = records.iter().map(|r| &r.event).collect();
    serde_json::to_vec(&json!({ "events": events })).expect("JSON values serialize")
}

/// Builds a structured CloudEvent of one event. The type is
/// `dev.registry.<action>`, the subject the repository, and the data the
/// Go registry's event object.
pub fn cloudevent_body(record: &Record) -> Vec<u8> {
    let event = &record.event;
    let source = event["source"]["instanceID"].as_str().unwrap_or_default();
    let body = json!({
        "specversion": "1.0",
        "id": event["id"],
        "source": format!("/registry/{source}"),
        "type": format!("dev.registry.{}", record.action),
        "subject": event["target"]["repository"],
        "time": event["timestamp"],
        "datacontenttype": "application/json",
        "data": event,
    });
    serde_json::to_vec(&body).expect("JSON values serialize")
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::SystemTime;

    use registry_signals::{BlobMounted, ManifestPushed, RequestContext, TagCreated};

    use super::*;

    fn event(signal: Signal) -> Event {
        Event {
            id: "e1".to_owned(),
            timestamp: SystemTime::UNIX_EPOCH,
            context: Arc::new(RequestContext {
                request_id: "r1".to_owned(),
                method: "PUT".to_owned(),
                host: Some("127.0.0.1:5000".to_owned()),
                user_agent: Some("docker/28".to_owned()),
                remote_addr: Some("127.0.0.1:4000".parse().unwrap()),
                instance_id: "i1".to_owned(),
                actor: None,
            }),
            signal,
        }
    }

    #[test]
    fn manifest_push_has_go_fields() {
        let pushed = ManifestPushed {
            repository: "a/b".to_owned(),
            digest: "sha256:00".to_owned(),
            media_type: "application/vnd.oci.image.manifest.v1+json".to_owned(),
            size: 7,
            tag: Some("v1".to_owned()),
            tags: vec!["v1".to_owned()],
            subject: None,
            bytes: Default::default(),
        };
        let record = record(&event(Signal::from(pushed)), None).unwrap();
        let target = &record.event["target"];
        assert_eq!(record.action, "push");
        assert_eq!(record.event["id"], "e1");
        assert_eq!(record.event["timestamp"], "1970-01-01T00:00:00.000000000Z");
        assert_eq!(
            target["mediaType"],
            "application/vnd.oci.image.manifest.v1+json"
        );
        assert_eq!(target["size"], 7);
        assert_eq!(target["length"], 7);
        assert_eq!(target["tag"], "v1");
        assert_eq!(
            target["url"],
            "http://127.0.0.1:5000/v2/a/b/manifests/sha256:00"
        );
        assert_eq!(record.event["request"]["useragent"], "docker/28");
        assert_eq!(record.event["source"]["instanceID"], "i1");
    }

    #[test]
    fn mount_names_source_repository() {
        let mounted = BlobMounted {
            repository: "b".to_owned(),
            digest: "sha256:01".to_owned(),
            size: 3,
            source_repository: Some("a".to_owned()),
        };
        let record = record(&event(Signal::from(mounted)), Some("https://r.example/")).unwrap();
        assert_eq!(record.action, "mount");
        assert_eq!(record.event["target"]["fromRepository"], "a");
        assert_eq!(
            record.event["target"]["url"],
            "https://r.example/v2/b/blobs/sha256:01"
        );
    }

    #[test]
    fn tag_created_has_no_record() {
        let created = TagCreated {
            repository: "a".to_owned(),
            tag: "t".to_owned(),
            digest: "sha256:02".to_owned(),
            media_type: String::new(),
            previous_digest: None,
        };
        assert!(record(&event(Signal::from(created)), None).is_none());
    }

    #[test]
    fn push_by_digest_gives_one_record_per_tag() {
        let pushed = ManifestPushed {
            repository: "a".to_owned(),
            digest: "sha256:03".to_owned(),
            media_type: "application/vnd.oci.image.manifest.v1+json".to_owned(),
            size: 7,
            tag: None,
            tags: vec!["x".to_owned(), "y".to_owned()],
            subject: None,
            bytes: Default::default(),
        };
        let records = records(&event(Signal::from(pushed)), None);
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].event["target"]["tag"], "x");
        assert_eq!(records[1].event["target"]["tag"], "y");
        assert_eq!(records[0].event["id"], "e1");
        assert_eq!(records[1].event["id"], "e1-1");
    }
}
