//! A `registry` process under test, and the guard that stops it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::registry_binary;

/// The maximum time from spawning the process to its `registry listening`
/// log line. A debug build starts in milliseconds; the margin is for a busy
/// CI machine.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// The maximum time from the `registry listening` line until `GET /v2/`
/// returns 200.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// A registry server running the real binary on 127.0.0.1, with its own
/// temporary storage directory.
///
/// The process listens on port 0, so the kernel picks a free port and two
/// tests never race for one. The harness reads the bound address from the
/// `registry listening` line of the JSON log. Dropping the guard kills the
/// process, and when the test is panicking it prints the log of every
/// process that the guard started.
#[derive(Debug)]
pub struct Registry {
    /// The storage root. It outlives restarts and is removed on drop.
    storage: TempDir,
    /// The directory of the configuration file.
    config_dir: TempDir,
    /// The running process. `None` between [`Registry::kill`] and
    /// [`Registry::restart`].
    process: Option<Process>,
    /// The binary, the extra configuration and the environment of every
    /// process this guard starts.
    launch: Launch,
    /// The log lines of every process started by this guard, in order. Each
    /// process has a reader thread that appends its standard error here
    /// until the process exits.
    log: Arc<Mutex<String>>,
}

/// One spawned `registry` process, killed with SIGKILL on drop.
#[derive(Debug)]
struct Process {
    child: Child,
    address: SocketAddr,
    /// The thread that copies the process's standard error into the log. It
    /// ends when the process exits and closes the pipe, and the drop joins
    /// it so that the log is complete.
    reader: Option<thread::JoinHandle<()>>,
}

impl Drop for Process {
    fn drop(&mut self) {
        kill_and_reap(&mut self.child);
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

/// How to start a registry process: which binary, with what configuration
/// beyond the harness's own, and with which environment variables.
#[derive(Debug, Clone, Default)]
pub struct Launch {
    /// The binary; `None` for the default build from [`registry_binary`].
    pub binary: Option<PathBuf>,
    /// YAML appended to the harness's configuration, such as an
    /// `extensions:` section. It must not repeat the harness's top-level
    /// keys `http`, `log` and `storage`.
    pub extra_config: String,
    /// Variables set for the process, for `_env:` values.
    pub env: Vec<(String, String)>,
}

impl Registry {
    /// Starts a registry on a free port of 127.0.0.1 with a new, empty
    /// storage directory, and waits until `GET /v2/` returns 200.
    ///
    /// # Panics
    ///
    /// When the binary cannot be built or started, exits early, or does not
    /// become ready in time. The message includes the process's log.
    pub fn start() -> Registry {
        Registry::start_with(Launch::default())
    }

    /// Starts a registry as [`Registry::start`] does, with another binary,
    /// more configuration or more environment variables.
    ///
    /// # Panics
    ///
    /// As [`Registry::start`].
    pub fn start_with(launch: Launch) -> Registry {
        let storage = temp_dir("registry-e2e-storage-");
        let config_dir = temp_dir("registry-e2e-config-");
        let config = config_yaml(storage.path()) + &launch.extra_config;
        let config_path = config_dir.path().join("config.yml");
        std::fs::write(&config_path, config)
            .unwrap_or_else(|e| panic!("writing {} failed: {e}", config_path.display()));

        let mut registry = Registry {
            storage,
            config_dir,
            process: None,
            launch,
            log: Arc::new(Mutex::new(String::new())),
        };
        registry.restart();
        registry
    }

    /// Returns the address that the running process listens on.
    ///
    /// # Panics
    ///
    /// When the process was killed and not restarted.
    pub fn address(&self) -> SocketAddr {
        self.running().address
    }

    /// Returns the address as `host:port`, the form that image references
    /// and `docker://` transports use.
    pub fn host(&self) -> String {
        self.address().to_string()
    }

    /// Returns the `http://` URL of `path` on the running process. `path`
    /// starts with a slash, as `Location` headers of the registry do.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address())
    }

    /// Returns the storage root directory, which outlives restarts.
    pub fn storage_dir(&self) -> &Path {
        self.storage.path()
    }

    /// Returns the JSON log lines of every process that this guard started,
    /// so far.
    pub fn log(&self) -> String {
        lock(&self.log).clone()
    }

    /// Kills the process with SIGKILL, so it gets no chance to clean up,
    /// and waits for it to exit. Does nothing when no process runs.
    pub fn kill(&mut self) {
        // Dropping the process kills it.
        self.process = None;
    }

    /// Starts a new process on the same storage directory, after killing the
    /// running one with SIGKILL if there is one. The new process may listen
    /// on another port.
    ///
    /// # Panics
    ///
    /// As [`Registry::start`].
    pub fn restart(&mut self) {
        self.kill();
        let config_path = self.config_dir.path().join("config.yml");
        let process = Process::spawn(&self.launch, &config_path, &self.log);
        wait_until_ready(&process, &self.log);
        self.process = Some(process);
    }

    fn running(&self) -> &Process {
        self.process
            .as_ref()
            .expect("the registry process was killed and not restarted")
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.kill();
        if thread::panicking() {
            eprintln!(
                "--- registry log (storage {}) ---\n{}--- end of registry log ---",
                self.storage.path().display(),
                lock(&self.log)
            );
        }
    }
}

impl Process {
    /// Spawns the binary with `config_path` and waits for the address in its
    /// `registry listening` log line. The process's log goes to `log`.
    fn spawn(launch: &Launch, config_path: &Path, log: &Arc<Mutex<String>>) -> Process {
        let binary = launch
            .binary
            .as_deref()
            .unwrap_or_else(|| registry_binary());
        let mut child = Command::new(binary)
            .arg("serve")
            .arg("--config")
            .arg(config_path)
            // These variables would override the file: RUST_LOG the log
            // level (hiding the line that carries the address), and
            // SETTINGS_FLAVOR the flavor.
            .env_remove("RUST_LOG")
            .env_remove("SETTINGS_FLAVOR")
            .envs(launch.env.iter().map(|(name, value)| (name, value)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {} failed: {e}", binary.display()));

        let stderr = child.stderr.take().expect("standard error is piped");
        lock(log).push_str(&format!("--- process {} ---\n", child.id()));
        let (address_sender, address_receiver) = mpsc::channel();
        let reader_log = Arc::clone(log);
        let reader = thread::spawn(move || read_log(stderr, &reader_log, &address_sender));

        let mut process = Process {
            child,
            // Replaced below by the address from the log.
            address: SocketAddr::from(([127, 0, 0, 1], 0)),
            reader: Some(reader),
        };

        // The reader drops its sender when standard error closes, which
        // means the process exited before it logged an address.
        let failure = match address_receiver.recv_timeout(STARTUP_TIMEOUT) {
            Ok(address) => {
                process.address = address;
                return process;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = wait_briefly(&mut process.child);
                format!(
                    "the registry exited before it logged `registry listening` (status {})",
                    describe_status(status)
                )
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                format!("the registry did not log `registry listening` within {STARTUP_TIMEOUT:?}")
            }
        };

        // Dropping the process kills it and waits for the rest of its log.
        drop(process);
        panic!("{failure}:\n{}", lock(log));
    }
}

/// Writes the configuration of a test registry: port 0 on 127.0.0.1, JSON
/// logs so that the harness can read the bound address, and `storage`.
fn config_yaml(storage: &Path) -> String {
    // A JSON string is a valid YAML scalar, which quotes any path safely.
    let root = serde_json::to_string(&storage.to_string_lossy()).expect("a string serializes");
    format!(
        "http:\n  addr: 127.0.0.1:0\n\
         log:\n  level: info\n  formatter: json\n\
         storage:\n  filesystem:\n    rootdirectory: {root}\n"
    )
}

/// Appends each line of `stderr` to `log`, and sends the address of the
/// first `registry listening` line.
fn read_log(stderr: impl Read, log: &Mutex<String>, address_sender: &mpsc::Sender<SocketAddr>) {
    let mut address_sent = false;
    for line in BufReader::new(stderr).lines() {
        let Ok(line) = line else { break };
        if !address_sent && let Some(address) = listening_address(&line) {
            // The receiver is gone when the harness gave up waiting.
            let _ = address_sender.send(address);
            address_sent = true;
        }
        let mut log = lock(log);
        log.push_str(&line);
        log.push('\n');
    }
}

/// Returns the `address` field of a JSON log line whose message is
/// `registry listening`.
fn listening_address(line: &str) -> Option<SocketAddr> {
    let event: serde_json::Value = serde_json::from_str(line).ok()?;
    if event.get("message")?.as_str()? != "registry listening" {
        return None;
    }
    event.get("address")?.as_str()?.parse().ok()
}

/// Polls `GET /v2/` until it returns 200.
fn wait_until_ready(process: &Process, log: &Mutex<String>) {
    let deadline = Instant::now() + READY_TIMEOUT;
    let mut last_outcome = String::from("no request was sent");
    while Instant::now() < deadline {
        match get_status(process.address, "/v2/") {
            Ok(200) => return,
            Ok(status) => last_outcome = format!("status {status}"),
            Err(error) => last_outcome = error.to_string(),
        }
        thread::sleep(Duration::from_millis(50));
    }
    panic!(
        "GET /v2/ on {} did not return 200 within {READY_TIMEOUT:?} (last: {last_outcome}):\n{}",
        process.address,
        lock(log)
    );
}

/// Sends a bodiless HTTP/1.1 GET and returns the response's status code.
///
/// A raw request keeps the harness synchronous, so it can be called from
/// async tests without nesting a runtime.
fn get_status(address: SocketAddr, path: &str) -> std::io::Result<u16> {
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )?;

    let mut status_line = String::new();
    BufReader::new(stream).read_line(&mut status_line)?;
    status_line
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("invalid HTTP status line {status_line:?}"),
            )
        })
}

/// Sends SIGKILL (what `Child::kill` sends on Unix) and reaps the process.
fn kill_and_reap(child: &mut Child) {
    // An error means that the process has already exited.
    let _ = child.kill();
    let _ = child.wait();
}

/// Waits up to a second for a process that closed its standard error.
fn wait_briefly(child: &mut Child) -> Option<ExitStatus> {
    let deadline = Instant::now() + Duration::from_secs(1);
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        thread::sleep(Duration::from_millis(20));
    }
    kill_and_reap(child);
    None
}

fn describe_status(status: Option<ExitStatus>) -> String {
    match status {
        Some(status) => status.to_string(),
        None => String::from("unknown: still running after its standard error closed"),
    }
}

fn temp_dir(prefix: &str) -> TempDir {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .unwrap_or_else(|e| panic!("creating a temporary directory failed: {e}"))
}

/// Locks the log, also after a panic in another thread poisoned the lock,
/// because the text is still worth showing.
fn lock(log: &Mutex<String>) -> std::sync::MutexGuard<'_, String> {
    log.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
