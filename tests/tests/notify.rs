//! Webhooks of the notify extension, received by a real HTTP server in the
//! test: bodies and signatures, events that outlive a SIGKILL right after
//! pushes were acknowledged, and a receiver that is down for a while.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use registry_e2e::{Launch, Registry, sha256_digest, workspace_binary};
use serde_json::{Value, json};
use sha2::Sha256;

const SECRET: &str = "webhook-secret";

/// One POST that the receiver accepted.
#[derive(Debug, Clone)]
struct Delivery {
    path: String,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

/// A webhook receiver on a fixed port of 127.0.0.1 that can be stopped and
/// started again on that port.
struct Receiver {
    address: SocketAddr,
    /// The server side of HTTPS; `None` serves plain HTTP.
    tls: Option<Arc<rustls::ServerConfig>>,
    received: Arc<Mutex<Vec<Delivery>>>,
    running: Option<(Arc<AtomicBool>, JoinHandle<()>)>,
}

impl Receiver {
    /// Reserves a port without listening on it yet.
    fn reserve() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding a receiver port");
        let address = listener.local_addr().unwrap();
        drop(listener);
        Receiver {
            address,
            tls: None,
            received: Arc::default(),
            running: None,
        }
    }

    /// Reserves a port for a receiver that serves HTTPS with `tls`.
    fn reserve_https(tls: Arc<rustls::ServerConfig>) -> Receiver {
        let mut receiver = Receiver::reserve();
        receiver.tls = Some(tls);
        receiver
    }

    fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}/events", self.address)
    }

    fn start(&mut self) {
        let listener = TcpListener::bind(self.address).expect("binding the receiver again");
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let received = self.received.clone();
        let stopping = stop.clone();
        let tls = self.tls.clone();
        let thread = std::thread::spawn(move || {
            while !stopping.load(Ordering::Relaxed) {
                let stream = match listener.accept() {
                    Ok((stream, _)) => stream,
                    Err(_) => {
                        std::thread::sleep(Duration::from_millis(10));
                        continue;
                    }
                };
                stream.set_nonblocking(false).unwrap();
                stream
                    .set_read_timeout(Some(Duration::from_secs(5)))
                    .unwrap();
                match &tls {
                    Some(config) => {
                        let connection = rustls::ServerConnection::new(config.clone()).unwrap();
                        serve(rustls::StreamOwned::new(connection, stream), &received);
                    }
                    None => serve(stream, &received),
                }
            }
        });
        self.running = Some((stop, thread));
    }

    fn stop(&mut self) {
        if let Some((stop, thread)) = self.running.take() {
            stop.store(true, Ordering::Relaxed);
            thread.join().unwrap();
        }
    }

    fn deliveries(&self) -> Vec<Delivery> {
        self.received.lock().unwrap().clone()
    }

    /// Returns the events received so far, without duplicates by id, in
    /// the order they first arrived.
    fn events(&self) -> Vec<Value> {
        let mut seen = std::collections::HashSet::new();
        let mut events = Vec::new();
        for delivery in self.deliveries() {
            let body: Value = serde_json::from_slice(&delivery.body).unwrap();
            let batch = match body.get("events") {
                Some(Value::Array(batch)) => batch.clone(),
                _ => vec![body["data"].clone()],
            };
            for event in batch {
                if seen.insert(event["id"].as_str().unwrap().to_owned()) {
                    events.push(event);
                }
            }
        }
        events
    }

    /// Waits until `count` distinct events arrived, and returns them.
    fn wait_for(&self, count: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let events = self.events();
            if events.len() >= count || Instant::now() > deadline {
                return events;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Reads one HTTP/1.1 request, records it and returns 200. A TLS handshake
/// that fails ends the first read, so nothing is recorded.
fn serve(stream: impl Read + Write, received: &Mutex<Vec<Delivery>>) {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let mut headers = HashMap::new();
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).is_err() {
            return;
        }
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
        }
    }

    let length: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let path = line
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    // A path under /moved/ gets a redirect, which the registry must not
    // follow.
    let reply: &[u8] = if path.starts_with("/moved/") {
        b"HTTP/1.1 301 Moved Permanently\r\nlocation: /events\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
    } else {
        b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
    };
    received.lock().unwrap().push(Delivery {
        path,
        headers,
        body,
    });
    let mut stream = reader.into_inner();
    let _ = stream.write_all(reply);
    let _ = stream.flush();
}

/// Returns a private CA in PEM and the server side of HTTPS for
/// 127.0.0.1, with a certificate that the CA signed.
fn private_ca() -> (String, Arc<rustls::ServerConfig>) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "notify test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();

    let server_key = rcgen::KeyPair::generate().unwrap();
    let server_params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
    let server = server_params.signed_by(&server_key, &ca, &ca_key).unwrap();

    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(server_key.serialize_der().into());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![server.der().clone()], key)
        .unwrap();
    (ca.pem(), Arc::new(config))
}

fn notify_binary() -> PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY
        .get_or_init(|| workspace_binary("registry", "registry", &["ext-notify"]))
        .clone()
}

fn start_registry(endpoints: &str) -> Registry {
    start_registry_with("", endpoints)
}

/// Starts the registry with `settings` (lines of the notify section at
/// its indent) before the endpoints.
fn start_registry_with(settings: &str, endpoints: &str) -> Registry {
    Registry::start_with(Launch {
        binary: Some(notify_binary()),
        extra_config: format!("extensions:\n  notify:\n{settings}    endpoints:\n{endpoints}"),
        env: Vec::new(),
    })
}

/// Returns an endpoint in the docker format with a signature and short
/// retries.
fn docker_endpoint(receiver: &Receiver) -> String {
    format!(
        "      - name: docker\n        url: {}\n        secret: {SECRET}\n        backoff: 50ms\n        maxbackoff: 300ms\n        headers:\n          X-Test: [one]\n",
        receiver.url()
    )
}

fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
}

/// Pushes a blob with one monolithic POST and returns its digest.
fn push_blob(registry: &Registry, repository: &str, content: &[u8]) -> String {
    let digest = sha256_digest(content);
    let url = registry.url(&format!("/v2/{repository}/blobs/uploads/?digest={digest}"));
    let response = client()
        .post(url)
        .header("content-type", "application/octet-stream")
        .body(content.to_vec())
        .send()
        .unwrap();
    assert_eq!(response.status(), 201, "blob push failed");
    digest
}

/// Pushes a config and an image manifest under `tag`, and returns the
/// manifest's digest once the registry acknowledged it.
fn push_image(registry: &Registry, repository: &str, tag: &str) -> String {
    let config = format!("{{\"architecture\":\"amd64\",\"os\":\"linux\",\"tag\":\"{tag}\"}}");
    push_manifest(registry, repository, config.as_bytes(), Some(tag), "")
}

/// Pushes `config` and an image manifest that references it, by `tag`, or
/// by its digest when `tag` is `None`, with `query` after the path. Returns
/// the manifest's digest once the registry acknowledged it.
fn push_manifest(
    registry: &Registry,
    repository: &str,
    config: &[u8],
    tag: Option<&str>,
    query: &str,
) -> String {
    let config_digest = push_blob(registry, repository, config);
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest,
            "size": config.len(),
        },
        "layers": [],
    });
    let bytes = serde_json::to_vec(&manifest).unwrap();
    let digest = sha256_digest(&bytes);
    let reference = tag.unwrap_or(&digest);
    let url = registry.url(&format!("/v2/{repository}/manifests/{reference}{query}"));
    let response = client()
        .put(url)
        .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        .body(bytes)
        .send()
        .unwrap();
    assert_eq!(response.status(), 201, "manifest push failed");
    digest
}

/// Returns the manifest push events as (repository, tag) in arrival order.
fn manifest_pushes(events: &[Value]) -> Vec<(String, String)> {
    events
        .iter()
        .filter(|e| e["action"] == "push" && e["target"]["tag"].is_string())
        .map(|e| {
            (
                e["target"]["repository"].as_str().unwrap().to_owned(),
                e["target"]["tag"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn webhooks_carry_envelope_and_signature() {
    let mut receiver = Receiver::reserve();
    receiver.start();
    let mut cloud = Receiver::reserve();
    cloud.start();
    let endpoints = docker_endpoint(&receiver)
        + &format!(
            "      - name: cloud\n        url: {}\n        format: cloudevents\n        ignore:\n          actions: [pull]\n",
            cloud.url()
        );
    let registry = start_registry(&endpoints);

    let digest = push_image(&registry, "hooks/app", "v1");
    let pulled = client()
        .get(registry.url("/v2/hooks/app/manifests/v1"))
        .header("accept", "application/vnd.oci.image.manifest.v1+json")
        .send()
        .unwrap();
    assert_eq!(pulled.status(), 200);

    // Config blob push, manifest push, manifest pull.
    let events = receiver.wait_for(3);
    assert_eq!(events.len(), 3, "events: {events:#?}");
    for delivery in receiver.deliveries() {
        assert_eq!(
            delivery.headers["content-type"],
            "application/vnd.docker.distribution.events.v2+json"
        );
        assert_eq!(delivery.headers["x-test"], "one");
        let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
        mac.update(&delivery.body);
        let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        assert_eq!(delivery.headers["x-registry-signature-256"], expected);
    }

    let blob = &events[0];
    assert_eq!(blob["action"], "push");
    assert_eq!(blob["target"]["mediaType"], "application/octet-stream");
    let push = &events[1];
    assert_eq!(push["action"], "push");
    assert_eq!(push["target"]["digest"], digest.as_str());
    assert_eq!(push["target"]["tag"], "v1");
    assert_eq!(push["target"]["repository"], "hooks/app");
    assert_eq!(
        push["target"]["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(
        push["target"]["url"],
        format!("http://{}/v2/hooks/app/manifests/{digest}", registry.host())
    );
    assert!(push["target"]["size"].as_u64().unwrap() > 0);
    assert_eq!(push["request"]["method"], "PUT");
    assert!(push["source"]["instanceID"].is_string());
    assert!(push["timestamp"].as_str().unwrap().ends_with('Z'));
    let pull = &events[2];
    assert_eq!(pull["action"], "pull");
    assert_eq!(pull["target"]["tag"], "v1");

    // The CloudEvents endpoint ignores pulls: two events, one per POST.
    let cloud_events = cloud.wait_for(2);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(cloud.deliveries().len(), 2);
    let first: Value = serde_json::from_slice(&cloud.deliveries()[1].body).unwrap();
    assert_eq!(first["specversion"], "1.0");
    assert_eq!(first["type"], "dev.registry.push");
    assert_eq!(first["subject"], "hooks/app");
    assert_eq!(first["id"], cloud_events[1]["id"]);
    assert_eq!(
        cloud.deliveries()[0].headers["content-type"],
        "application/cloudevents+json"
    );
}

#[test]
fn events_survive_kill_after_acknowledged_pushes() {
    // The default syncs each change's events before the response;
    // `interval` writes them before the response and syncs them later.
    for settings in ["", "    outbox:\n      sync: interval\n"] {
        let mut receiver = Receiver::reserve();
        // The receiver is down, so every event is still pending when the
        // registry dies.
        let mut registry = start_registry_with(settings, &docker_endpoint(&receiver));
        let mut pushed = Vec::new();
        for n in 0..5 {
            let tag = format!("t{n}");
            push_image(&registry, "durable/app", &tag);
            pushed.push(("durable/app".to_owned(), tag));
        }
        registry.kill();

        receiver.start();
        registry.restart();
        let events = receiver.wait_for(10);
        assert_eq!(
            manifest_pushes(&events),
            pushed,
            "settings {settings:?}, events: {events:#?}"
        );
        assert_eq!(events.len(), 10, "a config blob and a manifest per push");
    }
}

#[test]
fn receiver_outage_keeps_every_event_in_order() {
    let mut receiver = Receiver::reserve();
    receiver.start();
    let registry = start_registry(&docker_endpoint(&receiver));
    push_image(&registry, "order/a", "first");
    receiver.wait_for(2);

    receiver.stop();
    let mut expected = vec![("order/a".to_owned(), "first".to_owned())];
    for n in 0..4 {
        for repository in ["order/a", "order/b"] {
            let tag = format!("v{n}");
            push_image(&registry, repository, &tag);
            expected.push((repository.to_owned(), tag));
        }
    }
    // Long enough for several failed attempts with backoff.
    std::thread::sleep(Duration::from_secs(2));
    receiver.start();

    let events = receiver.wait_for(2 * expected.len());
    assert_eq!(events.len(), 2 * expected.len(), "events: {events:#?}");
    let pushes = manifest_pushes(&events);
    for repository in ["order/a", "order/b"] {
        let arrived: Vec<_> = pushes.iter().filter(|(r, _)| r == repository).collect();
        let pushed: Vec<_> = expected.iter().filter(|(r, _)| r == repository).collect();
        assert_eq!(arrived, pushed, "order in {repository}");
    }
    let log = registry.log();
    assert!(log.contains("delivery failed; retrying"), "no retry logged");
}

#[test]
fn push_by_digest_and_redirect_are_handled() {
    let mut receiver = Receiver::reserve();
    receiver.start();
    let mut moved = Receiver::reserve();
    moved.start();
    let endpoints = docker_endpoint(&receiver)
        + &format!(
            "      - name: moved\n        url: http://{}/moved/here\n        backoff: 50ms\n        maxbackoff: 100ms\n",
            moved.address
        );
    let registry = start_registry(&endpoints);

    // A push by digest with two tag parameters gives one push event per tag.
    let config = b"{\"architecture\":\"amd64\",\"os\":\"linux\"}";
    push_manifest(&registry, "hooks/digest", config, None, "?tag=a1&tag=b1");

    let events = receiver.wait_for(3);
    assert_eq!(
        manifest_pushes(&events),
        [
            ("hooks/digest".to_owned(), "a1".to_owned()),
            ("hooks/digest".to_owned(), "b1".to_owned())
        ]
    );

    // The redirecting endpoint is retried, never followed to /events.
    let deadline = Instant::now() + Duration::from_secs(10);
    while moved.deliveries().len() < 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let attempts = moved.deliveries();
    assert!(attempts.len() >= 3, "{} attempts", attempts.len());
    assert!(attempts.iter().all(|d| d.path == "/moved/here"));
    assert!(registry.log().contains("returned 301"), "no failure logged");
}

#[test]
fn https_endpoint_trusts_its_ca() {
    let (ca_pem, tls) = private_ca();
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca_pem).unwrap();
    let mut private = Receiver::reserve_https(tls.clone());
    private.start();
    let mut unknown = Receiver::reserve_https(tls);
    unknown.start();
    let endpoints = format!(
        "      - name: private\n        url: {}\n        ca: {}\n      - name: unknown\n        url: {}\n        backoff: 50ms\n        maxbackoff: 100ms\n",
        private.url(),
        ca_file.display(),
        unknown.url()
    );
    let registry = start_registry(&endpoints);

    let digest = push_blob(&registry, "hooks/tls", b"sent over https");
    let events = private.wait_for(1);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["action"], "push");
    assert_eq!(events[0]["target"]["digest"], digest.as_str());

    // Without the CA, the certificate is rejected and the POST is retried:
    // the receiver never gets a request.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !registry.log().contains("UnknownIssuer") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = registry.log();
    assert!(log.contains("UnknownIssuer"), "no certificate error logged");
    assert!(unknown.deliveries().is_empty());
}

#[test]
fn unreadable_ca_stops_startup() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.pem");
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "not a certificate\n").unwrap();
    for (file, message) in [
        (&missing, "cannot read the ca file"),
        (&empty, "contains no PEM certificate"),
    ] {
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "http:\n  addr: 127.0.0.1:0\nstorage:\n  filesystem:\n    rootdirectory: {}\nextensions:\n  notify:\n    endpoints:\n      - name: private\n        url: https://127.0.0.1:9/events\n        ca: {}\n",
                dir.path().join("data").display(),
                file.display()
            ),
        )
        .unwrap();
        let output = std::process::Command::new(notify_binary())
            .args(["serve", "--config"])
            .arg(&config)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{}", file.display());
        assert!(stderr.contains(message), "{stderr}");
    }
}
