//! The runtime stage of the repository's Dockerfile makes a working image:
//! the registry runs in a container as a non-root user, passes its health
//! check, and serves pushes and pulls, its own image among them.
//!
//! The test machines reach no image registry besides the one under test,
//! so neither `rust:1-bookworm` nor `debian:bookworm-slim` can be pulled.
//! The test builds a stand-in for the slim image with debootstrap, takes the
//! Dockerfile's last stage with only its FROM line and its
//! `COPY --from=builder` line replaced, and copies in the binary that cargo
//! built for this test run. The builder stage is not tested here.

use std::ffi::OsStr;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use registry_e2e::command::{Tool, output};
use registry_e2e::docker::{Dockerd, busybox_rootfs_tarball, pushed_digest};
use registry_e2e::{registry_binary, sha256_digest};
use serde_json::Value;

/// The stand-in for `debian:bookworm-slim`.
const BASE_IMAGE: &str = "registry-base:e2e";

/// The image built from the runtime stage.
const IMAGE: &str = "registry:e2e";

/// The name of the container that runs the image.
const CONTAINER: &str = "registry-e2e";

/// The variable that names the Debian mirror for debootstrap.
const MIRROR_VARIABLE: &str = "REGISTRY_E2E_DEBIAN_MIRROR";

/// The mirror that the apt sources of the CI machines name.
const DEFAULT_MIRROR: &str = "http://deb.debian.org/debian";

/// The maximum time from `docker run` until the health check reports
/// healthy. The test runs the check every second instead of the image's 30.
const HEALTHY_TIMEOUT: Duration = Duration::from_secs(60);

const DEBOOTSTRAP: Tool = Tool {
    program: "debootstrap",
    package: "debootstrap",
};

const STRIP: Tool = Tool {
    program: "strip",
    package: "binutils",
};

const TAR: Tool = Tool {
    program: "tar",
    package: "tar",
};

#[test]
fn runtime_image_serves_its_own_image() {
    let work = tempfile::tempdir().expect("creating a temporary directory");
    let address = format!("127.0.0.1:{}", free_port());

    // `builder` builds the image and runs the container. `puller` is a
    // second daemon with an empty image store, so every pull from the
    // containerised registry downloads all layers.
    let builder = Dockerd::start(&[&address]);
    let puller = Dockerd::start(&[&address]);

    builder.import(&debian_base_tarball(), BASE_IMAGE);
    let context = build_context(work.path());
    builder.build(&context, IMAGE);

    // The settings of the runtime stage reach the image configuration.
    let config = builder.inspect(IMAGE)["Config"].take();
    assert_eq!(config["User"], "10001:10001");
    assert!(
        config["ExposedPorts"].get("5000/tcp").is_some(),
        "ExposedPorts: {}",
        config["ExposedPorts"]
    );
    assert!(
        config["Volumes"].get("/var/lib/registry").is_some(),
        "Volumes: {}",
        config["Volumes"]
    );
    let env = strings(&config["Env"]);
    assert!(
        env.contains(&"REGISTRY_CONFIG=/etc/registry/config.yml".to_owned()),
        "Env: {env:?}"
    );
    assert_eq!(config["Healthcheck"]["Test"][0], "CMD");
    assert_eq!(strings(&config["Entrypoint"]), ["/usr/local/bin/registry"]);
    assert_eq!(strings(&config["Cmd"]), ["serve"]);

    // On the host's network, the variable moves the registry from
    // 0.0.0.0:5000 to a free port of 127.0.0.1.
    builder.run([
        "run",
        "--detach",
        "--name",
        CONTAINER,
        "--network=host",
        "--pull=never",
        "--health-interval=1s",
        "--env",
        &format!("REGISTRY_HTTP_ADDR={address}"),
        IMAGE,
    ]);
    wait_until_healthy(&builder, CONTAINER);
    let logs = container_logs(&builder, CONTAINER);
    assert!(
        logs.contains(&format!("registry listening address={address}")),
        "the registry does not listen on {address}:\n{logs}"
    );
    assert_eq!(builder.run(["exec", CONTAINER, "id", "-u"]), "10001\n");
    let mounts = builder.inspect(CONTAINER)["Mounts"].take();
    let storage_is_volume = mounts.as_array().is_some_and(|mounts| {
        mounts
            .iter()
            .any(|mount| mount["Destination"] == "/var/lib/registry" && mount["Type"] == "volume")
    });
    assert!(storage_is_volume, "Mounts: {mounts}");

    // A busybox image goes through the containerised registry and runs.
    let busybox = format!("{address}/e2e/busybox:1");
    let busybox_id = builder.import(&busybox_rootfs_tarball(work.path()), &busybox);
    let busybox_digest = pushed_digest(&builder.push(&busybox));
    assert_eq!(
        served_manifest_digest(&address, "e2e/busybox", "1"),
        busybox_digest
    );
    puller.pull(&busybox);
    assert_eq!(puller.image_id(&busybox), busybox_id);
    assert_eq!(
        puller.repo_digests(&busybox),
        [format!("{address}/e2e/busybox@{busybox_digest}")]
    );
    let hello = puller.run([
        "run",
        "--rm",
        "--network=none",
        "--pull=never",
        &busybox,
        "/bin/busybox",
        "echo",
        "hello",
    ]);
    assert_eq!(hello, "hello\n");

    // The registry serves its own image, which then runs from the pull.
    let own = format!("{address}/registry:e2e");
    builder.run(["tag", IMAGE, &own]);
    let own_digest = pushed_digest(&builder.push(&own));
    assert_eq!(
        served_manifest_digest(&address, "registry", "e2e"),
        own_digest
    );
    assert_eq!(
        builder.repo_digests(&own),
        [format!("{address}/registry@{own_digest}")]
    );
    puller.pull(&own);
    assert_eq!(puller.image_id(&own), builder.image_id(IMAGE));
    let version = puller.run([
        "run",
        "--rm",
        "--network=none",
        "--pull=never",
        &own,
        "--version",
    ]);
    assert!(
        version.starts_with("registry "),
        "`registry --version` printed {version:?}"
    );

    // SIGTERM from `docker stop` reaches the registry as process 1, which
    // drains and exits with status 0.
    builder.run(["stop", "--time=30", CONTAINER]);
    let state = builder.inspect(CONTAINER)["State"].take();
    assert_eq!(state["ExitCode"], 0, "State: {state}");
}

/// Returns a port of 127.0.0.1 that was free a moment ago.
///
/// The container on the host's network must know its port in advance, unlike
/// the registry harness, which listens on port 0. Another process may take
/// the port in between, a race that the test accepts.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding a free port of 127.0.0.1");
    listener
        .local_addr()
        .expect("reading the bound address")
        .port()
}

/// Returns a tarball of a minimal Debian bookworm root filesystem, a
/// stand-in for `debian:bookworm-slim`.
///
/// The Dockerfile of debuerreotype, which builds Debian's official images,
/// names `debootstrap --variant=minbase` as an alternative base for the slim
/// image. Like the slim image, the tarball leaves out the package cache, the
/// package lists, the manuals, the documentation and the translations. The
/// mirror is `REGISTRY_E2E_DEBIAN_MIRROR`, or deb.debian.org without it.
///
/// debootstrap takes about half a minute, so the tarball is kept as
/// `target/e2e-builds/debian-bookworm-minbase.tar` for later runs. Delete
/// it to rebuild from current packages.
fn debian_base_tarball() -> PathBuf {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let cache_dir = workspace.join("target/e2e-builds");
    let tarball = cache_dir.join("debian-bookworm-minbase.tar");
    if tarball.is_file() {
        return tarball;
    }

    let dir = tempfile::tempdir().expect("creating a temporary directory");
    let root = dir.path().join("rootfs");
    let mirror = std::env::var(MIRROR_VARIABLE).unwrap_or_else(|_| DEFAULT_MIRROR.to_owned());
    DEBOOTSTRAP.run([
        OsStr::new("--variant=minbase"),
        OsStr::new("bookworm"),
        root.as_os_str(),
        OsStr::new(&mirror),
    ]);
    for slimmed in [
        "var/cache/apt/archives",
        "var/lib/apt/lists",
        "usr/share/man",
        "usr/share/doc",
        "usr/share/locale",
    ] {
        remove_contents(&root.join(slimmed));
    }

    // Written under another name first, so that an interrupted run leaves
    // no partial tarball for the next one.
    std::fs::create_dir_all(&cache_dir)
        .unwrap_or_else(|e| panic!("creating {} failed: {e}", cache_dir.display()));
    let partial = cache_dir.join(format!(
        "debian-bookworm-minbase.{}.tmp",
        std::process::id()
    ));
    TAR.run([
        OsStr::new("--create"),
        OsStr::new("--numeric-owner"),
        OsStr::new("--file"),
        partial.as_os_str(),
        OsStr::new("--directory"),
        root.as_os_str(),
        OsStr::new("."),
    ]);
    std::fs::rename(&partial, &tarball)
        .unwrap_or_else(|e| panic!("renaming {} failed: {e}", partial.display()));
    tarball
}

/// Removes everything inside `dir`, which stays as an empty directory.
fn remove_contents(dir: &Path) {
    let entries =
        std::fs::read_dir(dir).unwrap_or_else(|e| panic!("listing {} failed: {e}", dir.display()));
    for entry in entries {
        let path = entry
            .unwrap_or_else(|e| panic!("listing {} failed: {e}", dir.display()))
            .path();
        let removed = if path.is_dir() && !path.is_symlink() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        removed.unwrap_or_else(|e| panic!("removing {} failed: {e}", path.display()));
    }
}

/// Writes a build context in `work` for the runtime stage: its Dockerfile,
/// the files that its COPY lines take from the repository, and the
/// registry binary as `registry`. Returns the context directory.
fn build_context(work: &Path) -> PathBuf {
    let repository = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dockerfile_path = repository.join("Dockerfile");
    let dockerfile = std::fs::read_to_string(&dockerfile_path)
        .unwrap_or_else(|e| panic!("reading {} failed: {e}", dockerfile_path.display()));
    let stage = runtime_stage(&dockerfile);

    let context = work.join("context");
    std::fs::create_dir(&context).expect("creating the build context");
    std::fs::write(context.join("Dockerfile"), &stage.dockerfile)
        .expect("writing the Dockerfile of the runtime stage");
    for file in &stage.copied_files {
        let target = context.join(file);
        std::fs::create_dir_all(target.parent().expect("a copied file has a parent"))
            .unwrap_or_else(|e| panic!("creating the directory of {file} failed: {e}"));
        std::fs::copy(repository.join(file), &target)
            .unwrap_or_else(|e| panic!("copying {file} into the build context failed: {e}"));
    }

    // Without debug information the debug build shrinks from about 80 MB
    // to 19 MB, which every layer copy of the vfs driver and every push of
    // the image carries.
    STRIP.run([
        OsStr::new("--strip-debug"),
        OsStr::new("-o"),
        context.join("registry").as_os_str(),
        registry_binary().as_os_str(),
    ]);
    context
}

/// The runtime stage of the Dockerfile, rewritten to build offline.
#[derive(Debug)]
struct RuntimeStage {
    /// The stage's instructions, from [`BASE_IMAGE`] and with the binary
    /// copied from the build context.
    dockerfile: String,
    /// The sources of its other COPY lines, relative to the repository.
    copied_files: Vec<String>,
}

/// Takes the last stage of `dockerfile` (from its last FROM line on) and
/// replaces the image of that FROM line with [`BASE_IMAGE`] and the source
/// of its one `COPY --from=builder` line with `registry`.
///
/// # Panics
///
/// When there is no FROM line, not exactly one `COPY --from=builder` line,
/// a COPY from another stage, a FROM or COPY line continued with a
/// backslash, or a COPY in the JSON form.
fn runtime_stage(dockerfile: &str) -> RuntimeStage {
    let lines: Vec<&str> = dockerfile.lines().collect();
    let keywords = keywords(&lines);
    let start = keywords
        .iter()
        .rposition(|keyword| keyword.as_deref() == Some("FROM"))
        .expect("the Dockerfile has no FROM line");

    let mut stage = RuntimeStage {
        dockerfile: String::new(),
        copied_files: Vec::new(),
    };
    let mut binary_copies = 0;
    for (line, keyword) in lines[start..].iter().zip(&keywords[start..]) {
        let rewritten = match keyword.as_deref() {
            Some(keyword @ ("FROM" | "COPY")) if line.trim_end().ends_with('\\') => {
                panic!("a continued {keyword} line is not supported here: {line}")
            }
            Some("FROM") => {
                let words: Vec<&str> = line.split_whitespace().collect();
                // The image is the first word after FROM that is no flag.
                let image = words[1..]
                    .iter()
                    .position(|word| !word.starts_with("--"))
                    .map(|index| index + 1)
                    .unwrap_or_else(|| panic!("FROM names no image: {line}"));
                let mut words = words;
                words[image] = BASE_IMAGE;
                words.join(" ")
            }
            Some("COPY") => {
                let words: Vec<&str> = line.split_whitespace().collect();
                let (flags, paths): (Vec<&str>, Vec<&str>) =
                    words[1..].iter().partition(|word| word.starts_with("--"));
                assert!(
                    !paths.iter().any(|path| path.starts_with('[')),
                    "a COPY in the JSON form is not supported here: {line}"
                );
                assert!(
                    paths.len() >= 2,
                    "COPY needs a source and a destination: {line}"
                );
                let destination = paths[paths.len() - 1];
                match flags.iter().find(|flag| flag.starts_with("--from=")) {
                    Some(&"--from=builder") => {
                        binary_copies += 1;
                        let other_flags = flags.iter().filter(|flag| !flag.starts_with("--from="));
                        let mut words = vec!["COPY"];
                        words.extend(other_flags);
                        words.extend(["registry", destination]);
                        words.join(" ")
                    }
                    Some(flag) => panic!("a COPY {flag} is not supported here: {line}"),
                    None => {
                        let sources = &paths[..paths.len() - 1];
                        stage
                            .copied_files
                            .extend(sources.iter().map(|source| (*source).to_owned()));
                        (*line).to_owned()
                    }
                }
            }
            _ => (*line).to_owned(),
        };
        stage.dockerfile.push_str(&rewritten);
        stage.dockerfile.push('\n');
    }
    assert_eq!(
        binary_copies, 1,
        "the runtime stage must have one `COPY --from=builder` line, for the binary"
    );
    stage
}

/// Returns the instruction keyword of each line in upper case, or `None`
/// for a blank line, a comment or the continuation of an instruction whose
/// line before ends with a backslash.
fn keywords(lines: &[&str]) -> Vec<Option<String>> {
    let mut continued = false;
    let mut keywords = Vec::with_capacity(lines.len());
    for line in lines {
        let trimmed = line.trim();
        let keyword = match trimmed.split_whitespace().next() {
            Some(word) if !continued && !word.starts_with('#') => Some(word.to_ascii_uppercase()),
            _ => None,
        };
        keywords.push(keyword);
        // A comment inside a continued instruction does not end it.
        if !trimmed.starts_with('#') {
            continued = trimmed.ends_with('\\');
        }
    }
    keywords
}

/// Polls the container's health status until it is `healthy`.
///
/// # Panics
///
/// When the container stops, or is not healthy within [`HEALTHY_TIMEOUT`].
/// The message shows the health check's last results and the container's
/// log.
fn wait_until_healthy(docker: &Dockerd, container: &str) {
    let deadline = Instant::now() + HEALTHY_TIMEOUT;
    loop {
        let state = docker.inspect(container)["State"].take();
        if state["Health"]["Status"] == "healthy" {
            return;
        }
        let failure = if state["Running"] != true {
            "stopped"
        } else if Instant::now() >= deadline {
            "is not healthy in time"
        } else {
            thread::sleep(Duration::from_millis(250));
            continue;
        };
        panic!(
            "the container {failure}. State: {state}\n--- container log ---\n{}",
            container_logs(docker, container)
        );
    }
}

/// Returns what the container wrote to its standard output and error.
fn container_logs(docker: &Dockerd, container: &str) -> String {
    let mut command = docker.command();
    command.args(["logs", container]);
    let logs = output(&mut command);
    format!(
        "{}{}",
        String::from_utf8_lossy(&logs.stdout),
        String::from_utf8_lossy(&logs.stderr)
    )
}

/// Fetches the manifest `repository:tag` from the registry API at
/// `address`, checks that the body hashes to its `Docker-Content-Digest`,
/// and returns that digest.
fn served_manifest_digest(address: &str, repository: &str, tag: &str) -> String {
    let url = format!("http://{address}/v2/{repository}/manifests/{tag}");
    let client = reqwest::blocking::Client::builder()
        .no_proxy()
        .build()
        .expect("building an HTTP client");
    let response = client
        .get(&url)
        .header(
            "accept",
            "application/vnd.docker.distribution.manifest.v2+json",
        )
        .send()
        .unwrap_or_else(|e| panic!("GET {url} failed: {e}"));
    assert_eq!(response.status(), 200, "GET {url}: status");
    let digest = response
        .headers()
        .get("docker-content-digest")
        .unwrap_or_else(|| panic!("GET {url}: no Docker-Content-Digest header"))
        .to_str()
        .expect("the digest header is text")
        .to_owned();
    let body = response
        .bytes()
        .unwrap_or_else(|e| panic!("GET {url}: reading the body failed: {e}"));
    assert_eq!(sha256_digest(&body), digest, "GET {url}: body digest");
    digest
}

/// Returns the strings of a JSON array, or an empty list for `null`.
fn strings(value: &Value) -> Vec<String> {
    match value {
        Value::Null => Vec::new(),
        Value::Array(items) => items
            .iter()
            .map(|item| {
                item.as_str()
                    .unwrap_or_else(|| panic!("{item} is not a string"))
                    .to_owned()
            })
            .collect(),
        _ => panic!("{value} is not an array of strings"),
    }
}
