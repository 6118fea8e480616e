//! Events in the Go registry's notification format, and the bodies sent to
//! endpoints.

use std::borrow::Cow;

use registry_signals::{Event, Signal};

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// The media type of the Go registry's envelope.
pub const ENVELOPE_MEDIA_TYPE: &str = "application/vnd.docker.distribution.events.v2+json";

/// The media type of a structured CloudEvent.
pub const CLOUDEVENTS_MEDIA_TYPE: &str = "application/cloudevents+json";

/// The media type the Go registry gives blob targets.
const BLOB_MEDIA_TYPE: &str = "application/octet-stream";

/// One event as the outbox keeps it: the Go registry's event object, as
/// the JSON text that endpoints receive, with the fields that endpoint
/// filters read.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub action: String,
    #[serde(rename = "mediaType")]
    pub media_type: String,
    pub event: Box<RawValue>,
}

impl Record {
    /// Returns the event's id, for logs.
    pub fn id(&self) -> String {
        serde_json::from_str::<Head>(self.event.get())
            .map(|head| head.id.into_owned())
            .unwrap_or_default()
    }
}

/// The Go registry's event object.
#[derive(Serialize)]
struct EventObject<'a> {
    id: &'a str,
    timestamp: &'a str,
    action: &'a str,
    target: TargetObject<'a>,
    request: RequestObject<'a>,
    actor: ActorObject<'a>,
    source: SourceObject<'a>,
}

/// The `target` of the Go registry's event.
#[derive(Serialize)]
struct TargetObject<'a> {
    #[serde(rename = "mediaType", skip_serializing_if = "str::is_empty")]
    media_type: &'a str,
    digest: &'a str,
    repository: &'a str,
    url: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    size: Option<u64>,
    /// Repeats `size`, as in the Go registry.
    #[serde(skip_serializing_if = "Option::is_none")]
    length: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tag: Option<&'a str>,
    #[serde(rename = "fromRepository", skip_serializing_if = "Option::is_none")]
    from_repository: Option<&'a str>,
}

#[derive(Serialize)]
struct RequestObject<'a> {
    id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    addr: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    host: Option<&'a str>,
    method: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    useragent: Option<&'a str>,
}

#[derive(Serialize)]
struct ActorObject<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
}

#[derive(Serialize)]
struct SourceObject<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    addr: Option<&'a str>,
    #[serde(rename = "instanceID")]
    instance_id: &'a str,
}

/// The fields of a stored event object that a CloudEvent repeats.
#[derive(Deserialize, Default)]
struct Head<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(borrow, default)]
    timestamp: Cow<'a, str>,
    #[serde(borrow, default)]
    target: HeadTarget<'a>,
    #[serde(borrow, default)]
    source: HeadSource<'a>,
}

#[derive(Deserialize, Default)]
struct HeadTarget<'a> {
    #[serde(borrow, default)]
    repository: Cow<'a, str>,
}

#[derive(Deserialize, Default)]
struct HeadSource<'a> {
    #[serde(rename = "instanceID", borrow, default)]
    instance_id: Cow<'a, str>,
}

/// Builds the records of an event: none for a signal that has no
/// notification (repository and tag state signals other than tag deletes),
/// one per tag for a push by digest with `tag` parameters, and one
/// otherwise. The second and later records of one event get the event's id
/// with `-1`, `-2`, ... appended.
pub fn records(event: &Event, url_base: Option<&str>) -> Vec<Record> {
    let Some((action, target)) = target(&event.signal) else {
        return Vec::new();
    };
    let context = &event.context;
    let url = {
        let base = match url_base {
            Some(base) => base.trim_end_matches('/').to_owned(),
            None => format!("http://{}", context.host.as_deref().unwrap_or("localhost")),
        };
        format!(
            "{base}/v2/{}/{}/{}",
            target.repository, target.collection, target.digest
        )
    };
    let timestamp = humantime::format_rfc3339_nanos(event.timestamp).to_string();
    let from_repository = match &event.signal {
        Signal::BlobMounted(p) => p.source_repository.as_deref(),
        _ => None,
    };
    let record = |id: &str, tag: Option<&str>| {
        let object = EventObject {
            id,
            timestamp: &timestamp,
            action,
            target: TargetObject {
                media_type: target.media_type,
                digest: target.digest,
                repository: target.repository,
                url: &url,
                size: target.size,
                length: target.size,
                tag,
                from_repository,
            },
            request: RequestObject {
                id: &context.request_id,
                addr: context.remote_addr.map(|addr| addr.to_string()),
                host: context.host.as_deref(),
                method: &context.method,
                useragent: context.user_agent.as_deref(),
            },
            actor: ActorObject {
                name: context.actor.as_deref(),
            },
            source: SourceObject {
                addr: context.host.as_deref(),
                instance_id: &context.instance_id,
            },
        };
        Record {
            action: action.to_owned(),
            media_type: target.media_type.to_owned(),
            event: serde_json::value::to_raw_value(&object).expect("event objects serialize"),
        }
    };

    match &event.signal {
        Signal::ManifestPushed(p) if p.tag.is_none() && !p.tags.is_empty() => p
            .tags
            .iter()
            .enumerate()
            .map(|(index, tag)| {
                let id = if index == 0 {
                    event.id.clone()
                } else {
                    format!("{}-{index}", event.id)
                };
                record(&id, Some(tag))
            })
            .collect(),
        _ => vec![record(&event.id, target.tag)],
    }
}

/// Returns the action and the target of a signal, or `None` for a signal
/// that has no notification.
fn target(signal: &Signal) -> Option<(&'static str, Target<'_>)> {
    Some(match signal {
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
}

/// Builds the Go registry's envelope of a batch of events.
pub fn docker_body(records: &[&Record]) -> Vec<u8> {
    #[derive(Serialize)]
    struct Envelope<'a> {
        events: Vec<&'a RawValue>,
    }
    let events = records.iter().map(|r| &*r.event).collect();
    serde_json::to_vec(&Envelope { events }).expect("raw JSON serializes")
}

/// Builds a structured CloudEvent of one event. The type is
/// `dev.registry.<action>`, the subject the repository, and the data the
/// Go registry's event object.
pub fn cloudevent_body(record: &Record) -> Vec<u8> {
    #[derive(Serialize)]
    struct CloudEvent<'a> {
        specversion: &'static str,
        id: &'a str,
        source: String,
        #[serde(rename = "type")]
        kind: String,
        subject: &'a str,
        time: &'a str,
        datacontenttype: &'static str,
        data: &'a RawValue,
    }
    // The outbox holds only event objects that this module wrote.
    let head: Head<'_> = serde_json::from_str(record.event.get()).unwrap_or_default();
    let body = CloudEvent {
        specversion: "1.0",
        id: &head.id,
        source: format!("/registry/{}", head.source.instance_id),
        kind: format!("dev.registry.{}", record.action),
        subject: &head.target.repository,
        time: &head.timestamp,
        datacontenttype: "application/json",
        data: &record.event,
    };
    serde_json::to_vec(&body).expect("CloudEvents serialize")
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::SystemTime;

    use registry_signals::{BlobMounted, ManifestPushed, RequestContext, TagCreated};

    use serde_json::Value;

    use super::*;

    /// Returns the one record of an event, with its event object parsed.
    fn one(event: &Event, url_base: Option<&str>) -> (Record, Value) {
        let mut records = records(event, url_base);
        assert_eq!(records.len(), 1);
        let record = records.remove(0);
        let object = serde_json::from_str(record.event.get()).unwrap();
        (record, object)
    }

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
        let (record, object) = one(&event(Signal::from(pushed)), None);
        let target = &object["target"];
        assert_eq!(record.action, "push");
        assert_eq!(object["id"], "e1");
        assert_eq!(object["timestamp"], "1970-01-01T00:00:00.000000000Z");
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
        assert_eq!(object["request"]["useragent"], "docker/28");
        assert_eq!(object["request"]["addr"], "127.0.0.1:4000");
        assert_eq!(object["source"]["instanceID"], "i1");
        assert_eq!(object["source"]["addr"], "127.0.0.1:5000");
        assert_eq!(object["actor"], serde_json::json!({}));
        assert_eq!(record.id(), "e1");
    }

    #[test]
    fn mount_names_source_repository() {
        let mounted = BlobMounted {
            repository: "b".to_owned(),
            digest: "sha256:01".to_owned(),
            size: 3,
            source_repository: Some("a".to_owned()),
        };
        let (record, object) = one(&event(Signal::from(mounted)), Some("https://r.example/"));
        assert_eq!(record.action, "mount");
        assert_eq!(object["target"]["fromRepository"], "a");
        assert_eq!(object["target"]["mediaType"], BLOB_MEDIA_TYPE);
        assert_eq!(object["target"]["length"], 3);
        assert_eq!(object["target"].get("tag"), None);
        assert_eq!(
            object["target"]["url"],
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
        assert!(records(&event(Signal::from(created)), None).is_empty());
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
        let objects: Vec<Value> = records
            .iter()
            .map(|r| serde_json::from_str(r.event.get()).unwrap())
            .collect();
        assert_eq!(objects.len(), 2);
        assert_eq!(objects[0]["target"]["tag"], "x");
        assert_eq!(objects[1]["target"]["tag"], "y");
        assert_eq!(objects[0]["id"], "e1");
        assert_eq!(objects[1]["id"], "e1-1");
    }

    #[test]
    fn bodies_carry_the_stored_event_objects() {
        let deleted = registry_signals::TagDeleted {
            repository: "a".to_owned(),
            tag: "t".to_owned(),
            digest: "sha256:04".to_owned(),
        };
        let (record, object) = one(&event(Signal::from(deleted)), None);
        assert_eq!(object["target"].get("mediaType"), None);
        assert_eq!(object["target"].get("size"), None);
        assert_eq!(object["target"]["tag"], "t");

        let docker: Value = serde_json::from_slice(&docker_body(&[&record, &record])).unwrap();
        assert_eq!(docker["events"], serde_json::json!([object, object]));

        let cloud: Value = serde_json::from_slice(&cloudevent_body(&record)).unwrap();
        assert_eq!(cloud["specversion"], "1.0");
        assert_eq!(cloud["id"], "e1");
        assert_eq!(cloud["source"], "/registry/i1");
        assert_eq!(cloud["type"], "dev.registry.delete");
        assert_eq!(cloud["subject"], "a");
        assert_eq!(cloud["time"], "1970-01-01T00:00:00.000000000Z");
        assert_eq!(cloud["data"], object);
    }
}
