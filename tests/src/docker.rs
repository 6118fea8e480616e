//! docker: a private `dockerd` per test, started and stopped by a guard, and
//! the `docker` command line pointed at it.
//!
//! The daemon is Debian's `docker.io` (20.10 on bookworm). It runs as root
//! with everything under one temporary directory: its socket, data root, exec
//! root, pid file and log. It starts its own managed containerd, because it
//! is given no `--containerd` socket, and it touches no firewall rule or
//! network bridge of the machine.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;
use tempfile::TempDir;

use crate::command::{Tool, output, run_tool};

/// dockerd, the daemon of Debian's `docker.io` package.
pub const DOCKERD: Tool = Tool {
    program: "dockerd",
    package: "docker.io",
};

/// The docker command line of the same package. Its path is absolute
/// because a machine may have a newer `docker` earlier on `PATH`, such as
/// `/usr/local/bin/docker`, and the tests pair the client with the daemon of
/// the same release.
pub const DOCKER: Tool = Tool {
    program: "/usr/bin/docker",
    package: "docker.io",
};

/// tar, which packs the root filesystems that `docker import` reads.
const TAR: Tool = Tool {
    program: "tar",
    package: "tar",
};

/// The statically linked busybox of Debian's `busybox-static`. The
/// dynamically linked one of the `busybox` package installs at the same
/// path, but cannot run in a root filesystem without its libraries.
const BUSYBOX_STATIC: &str = "/bin/busybox";

/// The maximum time from spawning dockerd until `GET /_ping` on its socket
/// returns 200. On an idle machine that takes about a second.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// The maximum time dockerd gets after SIGTERM to stop its running
/// containers (each gets 10 seconds by default) and its containerd. After
/// that it gets SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(60);

/// The number of log lines that a failing test prints.
const LOG_TAIL_LINES: usize = 150;

/// A `dockerd` process with its own socket and storage, stopped on drop.
///
/// The daemon uses the `vfs` storage driver, which needs no overlay
/// support, and `--bridge=none --iptables=false`, so containers run with
/// `--network none` or `--network host` only. Every registry that the test
/// names is passed with `--insecure-registry`, so docker speaks plain HTTP
/// to it (docker 20.10 already does so for 127.0.0.0/8).
///
/// Dropping the guard sends SIGTERM, waits up to a minute, then sends
/// SIGKILL, unmounts whatever the daemon left mounted under its directory
/// and removes the directory. When the test is panicking it prints the end
/// of the daemon's log first.
#[derive(Debug)]
pub struct Dockerd {
    /// The socket, data root, exec root, pid file, log, daemon and client
    /// configuration. Removed on drop, after the daemon has exited and its
    /// mounts are gone.
    dir: TempDir,
    /// The daemon process; `None` once it has been stopped.
    child: Option<Child>,
}

impl Dockerd {
    /// Starts dockerd and waits until `GET /_ping` on its socket returns
    /// 200. `insecure_registries` are `host:port` addresses that docker may
    /// reach over plain HTTP.
    ///
    /// # Panics
    ///
    /// When dockerd is not installed (naming the package), exits early or
    /// is not ready in time. The guard's drop then prints the end of its
    /// log.
    pub fn start(insecure_registries: &[&str]) -> Dockerd {
        let dir = tempfile::Builder::new()
            .prefix("registry-e2e-dockerd-")
            .tempdir()
            .unwrap_or_else(|e| panic!("creating a temporary directory failed: {e}"));
        let path = |name: &str| dir.path().join(name);

        // An empty daemon.json, so that the machine's /etc/docker/daemon.json
        // does not apply, and an empty client configuration directory, so
        // that the CLI reads no credentials or contexts of the machine.
        write_file(&path("daemon.json"), b"{}");
        create_dir(&path("client"));
        let log = File::create(path("dockerd.log"))
            .unwrap_or_else(|e| panic!("creating the dockerd log failed: {e}"));
        let log_for_stdout = log
            .try_clone()
            .unwrap_or_else(|e| panic!("duplicating the dockerd log handle failed: {e}"));

        let mut command = DOCKERD.command();
        command
            .arg(format!("--host=unix://{}", path("docker.sock").display()))
            .arg(format!("--data-root={}", path("data").display()))
            .arg(format!("--exec-root={}", path("exec").display()))
            .arg(format!("--pidfile={}", path("docker.pid").display()))
            .arg(format!("--config-file={}", path("daemon.json").display()))
            .args(["--storage-driver=vfs", "--iptables=false", "--bridge=none"]);
        for registry in insecure_registries {
            command.arg(format!("--insecure-registry={registry}"));
        }
        command
            .stdin(Stdio::null())
            .stdout(log_for_stdout)
            .stderr(log);
        let child = match command.spawn() {
            Ok(child) => child,
            Err(error) if error.kind() == ErrorKind::NotFound => panic!(
                "`dockerd` was not found on PATH: install the Debian package `docker.io` \
                 (`apt-get install docker.io`, which .ci/run does)"
            ),
            Err(error) => panic!("starting dockerd failed: {error}"),
        };

        // From here on a panic drops the guard, which stops the daemon and
        // prints its log.
        let mut daemon = Dockerd {
            dir,
            child: Some(child),
        };
        daemon.wait_until_ready();
        daemon
    }

    /// Returns a `docker` command that talks to this daemon, with a private
    /// client configuration.
    ///
    /// `DOCKER_BUILDKIT=0` selects the classic builder, which docker 20.10
    /// uses by default on Linux anyway. It contacts no registry for a FROM
    /// image that the daemon has.
    pub fn command(&self) -> Command {
        let mut command = DOCKER.command();
        command
            .env(
                "DOCKER_HOST",
                format!("unix://{}", self.path("docker.sock").display()),
            )
            .env("DOCKER_CONFIG", self.path("client"))
            .env("DOCKER_BUILDKIT", "0")
            .env_remove("DOCKER_CONTEXT")
            .env_remove("DOCKER_TLS_VERIFY")
            .env_remove("DOCKER_CERT_PATH");
        command
    }

    /// Runs `docker` with `args` and returns its standard output as text.
    ///
    /// # Panics
    ///
    /// When docker is missing (naming the package to install) or fails.
    pub fn run<I, S>(&self, args: I) -> String
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut command = self.command();
        command.args(args);
        let stdout = run_tool(&mut command, Some(DOCKER));
        String::from_utf8(stdout).unwrap_or_else(|e| panic!("docker printed invalid UTF-8: {e}"))
    }

    /// Creates an image from the root filesystem in `tarball` with
    /// `docker import` and names it `reference`. Returns the image ID.
    pub fn import(&self, tarball: &Path, reference: &str) -> String {
        let id = self.run([
            OsStr::new("import"),
            tarball.as_os_str(),
            OsStr::new(reference),
        ]);
        id.trim().to_owned()
    }

    /// Builds the image in `context` (which contains its `Dockerfile`) under
    /// `reference` with the classic builder. Returns the build output.
    pub fn build(&self, context: &Path, reference: &str) -> String {
        self.run([
            OsStr::new("build"),
            OsStr::new("--tag"),
            OsStr::new(reference),
            context.as_os_str(),
        ])
    }

    /// Pushes `reference` and returns docker's progress output, one line
    /// per layer state (`Pushed`, `Mounted from ...`, `Layer already
    /// exists`) and a last line with the manifest digest.
    pub fn push(&self, reference: &str) -> String {
        self.run(["push", reference])
    }

    /// Pulls `reference`, a tag or a digest reference.
    pub fn pull(&self, reference: &str) {
        self.run(["pull", reference]);
    }

    /// Removes the image name `reference`, and the image when no other name
    /// refers to it.
    pub fn remove_image(&self, reference: &str) {
        self.run(["image", "rm", reference]);
    }

    /// Returns whether the daemon has an image named `reference`.
    pub fn has_image(&self, reference: &str) -> bool {
        let mut command = self.command();
        command.args(["image", "inspect", reference]);
        output(&mut command).status.success()
    }

    /// Returns the ID of the image `reference`: the digest of its
    /// configuration, which is the same after a push and a pull.
    pub fn image_id(&self, reference: &str) -> String {
        let id = self.run(["image", "inspect", "--format", "{{.Id}}", reference]);
        id.trim().to_owned()
    }

    /// Returns the `RepoDigests` of the image `reference`: for each
    /// repository it was pushed to or pulled from, `REPOSITORY@DIGEST` with
    /// the manifest digest.
    pub fn repo_digests(&self, reference: &str) -> Vec<String> {
        let json = self.run([
            "image",
            "inspect",
            "--format",
            "{{json .RepoDigests}}",
            reference,
        ]);
        let digests: Value = serde_json::from_str(&json)
            .unwrap_or_else(|e| panic!("docker printed invalid RepoDigests JSON ({e}): {json}"));
        digests
            .as_array()
            .unwrap_or_else(|| panic!("RepoDigests of {reference} is not an array: {digests}"))
            .iter()
            .map(|entry| {
                entry
                    .as_str()
                    .expect("a repo digest is a string")
                    .to_owned()
            })
            .collect()
    }

    /// Returns the JSON of `docker inspect` for one object: an image, a
    /// container or a volume.
    pub fn inspect(&self, object: &str) -> Value {
        let json = self.run(["inspect", object]);
        let list: Value = serde_json::from_str(&json)
            .unwrap_or_else(|e| panic!("docker inspect printed invalid JSON ({e}): {json}"));
        match list {
            Value::Array(mut objects) if objects.len() == 1 => objects.remove(0),
            _ => panic!("docker inspect {object} printed {json}, not a list of one object"),
        }
    }

    /// Returns a path in the daemon's directory.
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Polls `GET /_ping` on the socket until it returns 200.
    fn wait_until_ready(&mut self) {
        let socket = self.path("docker.sock");
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        let mut last_outcome = String::from("the socket did not exist yet");
        while Instant::now() < deadline {
            let child = self.child.as_mut().expect("the daemon was just started");
            if let Ok(Some(status)) = child.try_wait() {
                panic!("dockerd exited with {status} before GET /_ping on {socket:?} returned 200");
            }
            if socket.exists() {
                match ping(&socket) {
                    Ok(true) => return,
                    Ok(false) => last_outcome = String::from("GET /_ping did not return 200"),
                    Err(error) => last_outcome = error.to_string(),
                }
            }
            thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "GET /_ping on {socket:?} did not return 200 within {STARTUP_TIMEOUT:?} \
             (last: {last_outcome})"
        );
    }

    /// Stops the daemon: SIGTERM, then SIGKILL after [`STOP_TIMEOUT`].
    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // kill fails when the daemon has exited already, and the wait below
        // then returns at once.
        let pid = Pid::from_raw(i32::try_from(child.id()).expect("a pid fits in i32"));
        let _ = kill(pid, Signal::SIGTERM);
        if wait_until_exit(&mut child, STOP_TIMEOUT) {
            return;
        }

        // dockerd starts its containerd with SIGKILL as the parent-death
        // signal, so containerd goes too (seen with docker.io 20.10.24).
        // NOTE: the shim and the processes of a container that still runs
        // stay behind. This path runs only when dockerd hangs on shutdown.
        eprintln!("dockerd did not exit within {STOP_TIMEOUT:?} after SIGTERM, so it gets SIGKILL");
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Returns the last [`LOG_TAIL_LINES`] lines of the daemon's log.
    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.path("dockerd.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        let start = lines.len().saturating_sub(LOG_TAIL_LINES);
        lines[start..].join("\n")
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        self.stop();
        if thread::panicking() {
            eprintln!(
                "--- dockerd log, last {LOG_TAIL_LINES} lines ({}) ---\n{}\n\
                 --- end of dockerd log ---",
                self.dir.path().display(),
                self.log_tail()
            );
        }
        // A clean shutdown can leave the mount of the network namespace file
        // `exec/netns/default`, and a SIGKILL leaves the data root's bind
        // mount too (both seen with docker.io 20.10.24). The temporary
        // directory cannot be removed while something is mounted in it.
        unmount_all_under(self.dir.path());
    }
}

/// Writes a root filesystem with Debian's static busybox to a tarball in
/// `dir`, for `docker import`, and returns the tarball's path.
///
/// The root has `/bin/busybox` and `/bin/sh`, a link to it, so the image
/// runs `/bin/busybox echo hello` without any library.
///
/// # Panics
///
/// When `/bin/busybox` is missing (naming the package `busybox-static`), or
/// a file or tar fails.
pub fn busybox_rootfs_tarball(dir: &Path) -> PathBuf {
    let busybox = Path::new(BUSYBOX_STATIC);
    if !busybox.is_file() {
        panic!(
            "{BUSYBOX_STATIC} is missing: install the Debian package `busybox-static` \
             (`apt-get install busybox-static`, which .ci/run does)"
        );
    }

    let root = dir.join("busybox-rootfs");
    create_dir(&root.join("bin"));
    std::fs::copy(busybox, root.join("bin/busybox"))
        .unwrap_or_else(|e| panic!("copying {BUSYBOX_STATIC} failed: {e}"));
    std::os::unix::fs::symlink("busybox", root.join("bin/sh"))
        .unwrap_or_else(|e| panic!("linking /bin/sh to busybox failed: {e}"));

    let tarball = dir.join("busybox-rootfs.tar");
    TAR.run([
        OsStr::new("--create"),
        OsStr::new("--numeric-owner"),
        OsStr::new("--owner=0"),
        OsStr::new("--group=0"),
        OsStr::new("--file"),
        tarball.as_os_str(),
        OsStr::new("--directory"),
        root.as_os_str(),
        OsStr::new("."),
    ]);
    tarball
}

/// Returns the manifest digest in the last line of `docker push`
/// (`TAG: digest: sha256:... size: N`).
///
/// # Panics
///
/// When no line has a digest.
pub fn pushed_digest(push_output: &str) -> String {
    push_output
        .lines()
        .find_map(|line| line.split_once(" digest: "))
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("docker push printed no manifest digest:\n{push_output}"))
        .to_owned()
}

/// Sends `GET /_ping` to the daemon's socket and returns whether the status
/// is 200.
fn ping(socket: &Path) -> std::io::Result<bool> {
    let mut stream = UnixStream::connect(socket)?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.write_all(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    Ok(response.starts_with("HTTP/1.0 200") || response.starts_with("HTTP/1.1 200"))
}

/// Waits up to `timeout` for `child` to exit and returns whether it did.
fn wait_until_exit(child: &mut Child, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        match child.try_wait() {
            Ok(Some(_)) => return true,
            Ok(None) => thread::sleep(Duration::from_millis(50)),
            // The child was reaped already.
            Err(_) => return true,
        }
    }
    false
}

/// Detaches every mount at or below `dir`, the deepest first.
fn unmount_all_under(dir: &Path) {
    let mountinfo = match std::fs::read_to_string("/proc/self/mountinfo") {
        Ok(text) => text,
        Err(error) => {
            eprintln!("reading /proc/self/mountinfo failed, so nothing is unmounted: {error}");
            return;
        }
    };
    // The fifth field is the mount point, with space, tab, newline and
    // backslash written as octal escapes.
    let mut mount_points: Vec<PathBuf> = mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|field| PathBuf::from(unescape_octal(field)))
        .filter(|mount_point| mount_point.starts_with(dir))
        .collect();
    mount_points.sort_by_key(|mount_point| std::cmp::Reverse(mount_point.as_os_str().len()));
    mount_points.dedup();

    for mount_point in mount_points {
        if let Err(error) = nix::mount::umount2(&mount_point, nix::mount::MntFlags::MNT_DETACH) {
            eprintln!("unmounting {} failed: {error}", mount_point.display());
        }
    }
}

/// Replaces the `\NNN` octal escapes of a mountinfo field.
fn unescape_octal(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut unescaped = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let escape = bytes.get(index + 1..index + 4);
        let code = escape
            .filter(|_| bytes[index] == b'\\')
            .and_then(|digits| std::str::from_utf8(digits).ok())
            .and_then(|digits| u8::from_str_radix(digits, 8).ok());
        match code {
            Some(code) => {
                unescaped.push(code);
                index += 4;
            }
            None => {
                unescaped.push(bytes[index]);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&unescaped).into_owned()
}

fn create_dir(path: &Path) {
    std::fs::create_dir_all(path)
        .unwrap_or_else(|e| panic!("creating {} failed: {e}", path.display()));
}

fn write_file(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes)
        .unwrap_or_else(|e| panic!("writing {} failed: {e}", path.display()));
}
