//! Starting and stopping the servers under test: this registry, the Go
//! `distribution` registry, crane's in-memory registry and nginx. Each one
//! listens on its own 127.0.0.1 port with its own temporary directory.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use http::{Method, StatusCode};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tempfile::TempDir;

use crate::client::{Chunks, Connection};

/// Maximum time from the spawn to a server's first 200 response.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// Time a server gets to exit after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// The server program that a [`Launcher`] starts.
#[derive(Debug, Clone)]
pub enum Program {
    /// This registry; `extensions` lists the linked extensions to enable,
    /// and `settings` the YAML of their sections beyond `enabled`, by name.
    Registry {
        extensions: Vec<String>,
        settings: BTreeMap<String, String>,
    },
    /// `docker-registry serve CONFIG` from Debian's docker-registry.
    Distribution,
    /// `crane registry serve`, in memory.
    Crane {
        /// Whether this crane takes `--address`; older ones take only the
        /// PORT variable and listen on localhost.
        has_address_flag: bool,
    },
    /// nginx serving `file` under `/sendfile/blob` (sendfile on) and
    /// `/buffered/blob` (sendfile off, large output buffers).
    Nginx { file: PathBuf },
}

/// How to start one kind of server.
#[derive(Debug, Clone)]
pub struct Launcher {
    pub binary: PathBuf,
    pub program: Program,
}

/// A running server, stopped with SIGTERM (then SIGKILL) when dropped.
#[derive(Debug)]
pub struct Server {
    pub addr: SocketAddr,
    pub pid: u32,
    /// From the spawn to the first 200 on the readiness path.
    pub startup: Duration,
    child: Child,
    /// The server's configuration, storage and log; deleted when the
    /// server is dropped, after `drop` stopped the process.
    _dir: TempDir,
}

impl Launcher {
    /// Adds YAML to the section of extension `name`, when it is enabled.
    pub fn with_extension_settings(mut self, name: &str, yaml: &str) -> Launcher {
        if let Program::Registry { settings, .. } = &mut self.program {
            settings.insert(name.to_owned(), yaml.to_owned());
        }
        self
    }

    /// Returns a launcher for this registry with the linked extensions of
    /// `binary` enabled when `enable_extensions` is true.
    ///
    /// # Errors
    ///
    /// Fails when `binary extensions` cannot be run.
    pub fn registry(binary: &Path, enable_extensions: bool) -> Result<Launcher> {
        let extensions = if enable_extensions {
            linked_extensions(binary)?
        } else {
            Vec::new()
        };
        Ok(Launcher {
            binary: binary.to_owned(),
            program: Program::Registry {
                extensions,
                settings: BTreeMap::new(),
            },
        })
    }

    /// Returns a launcher for crane, checking its flags.
    ///
    /// # Errors
    ///
    /// Fails when `crane registry serve --help` cannot be run.
    pub fn crane(binary: &Path) -> Result<Launcher> {
        let output = Command::new(binary)
            .args(["registry", "serve", "--help"])
            .output()
            .with_context(|| format!("failed to run {} registry serve --help", binary.display()))?;
        let help = String::from_utf8_lossy(&output.stdout);
        Ok(Launcher {
            binary: binary.to_owned(),
            program: Program::Crane {
                has_address_flag: help.contains("--address"),
            },
        })
    }

    /// Starts the server in a new temporary directory and waits until its
    /// readiness path returns 200.
    ///
    /// # Errors
    ///
    /// Fails when the process cannot be started, exits, or returns no 200
    /// within 30 seconds. The error includes the end of the server's log.
    pub async fn start(&self) -> Result<Server> {
        let dir = tempfile::Builder::new()
            .prefix("registry-bench-")
            .tempdir()
            .context("failed to create a temporary directory")?;
        let port = free_port()?;
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let log_path = dir.path().join("server.log");
        let (mut command, ready_path) = self.command(dir.path(), port)?;

        let log = File::create(&log_path)?;
        command.stdin(Stdio::null()).stdout(log.try_clone()?);
        if !matches!(self.program, Program::Crane { .. }) {
            command.stderr(log);
        }
        let began = Instant::now();
        let child = command
            .spawn()
            .with_context(|| format!("failed to start {}", self.binary.display()))?;
        let mut server = Server {
            addr,
            pid: child.id(),
            startup: Duration::ZERO,
            child,
            _dir: dir,
        };

        server.startup = server
            .wait_ready(&ready_path, began)
            .await
            .with_context(|| {
                format!(
                    "{} did not become ready on {addr}; its log ends with:\n{}",
                    self.binary.display(),
                    log_tail(&log_path)
                )
            })?;
        Ok(server)
    }

    /// Writes the configuration into `dir` and returns the command that
    /// starts the server, and the path that returns 200 once it is ready.
    fn command(&self, dir: &Path, port: u16) -> Result<(Command, String)> {
        let mut command = Command::new(&self.binary);
        let ready_path = match &self.program {
            Program::Registry {
                extensions,
                settings,
            } => {
                let config = dir.join("config.yml");
                std::fs::write(&config, registry_config(dir, port, extensions, settings))?;
                command.arg("--config").arg(config).arg("serve");
                "/v2/"
            }
            Program::Distribution => {
                let config = dir.join("config.yml");
                std::fs::write(&config, distribution_config(dir, port))?;
                command.arg("serve").arg(config);
                "/v2/"
            }
            Program::Crane { has_address_flag } => {
                command.args(["registry", "serve"]);
                if *has_address_flag {
                    command.arg("--address").arg(format!("127.0.0.1:{port}"));
                } else {
                    // crane 0.14 listens on localhost:$PORT, which
                    // /etc/hosts maps to 127.0.0.1.
                    command.env("PORT", port.to_string());
                }
                // crane logs every request to stderr and has no setting to
                // stop it; /dev/null is the cheapest place for those lines.
                command.stderr(Stdio::null());
                "/v2/"
            }
            Program::Nginx { file } => {
                let root = dir.join("www");
                std::fs::create_dir_all(&root)?;
                std::fs::hard_link(file, root.join("blob"))
                    .or_else(|_| std::fs::copy(file, root.join("blob")).map(|_| ()))?;
                let config = dir.join("nginx.conf");
                std::fs::write(&config, nginx_config(dir, port))?;
                command
                    .arg("-p")
                    .arg(dir)
                    .arg("-c")
                    .arg(&config)
                    .arg("-e")
                    .arg(dir.join("error.log"));
                "/sendfile/blob"
            }
        };
        Ok((command, ready_path.to_owned()))
    }
}

impl Server {
    /// Polls `path` every millisecond until it returns 200 and returns the
    /// time since `began`.
    async fn wait_ready(&mut self, path: &str, began: Instant) -> Result<Duration> {
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!("the server exited with {status}");
            }
            let mut connection = Connection::new(self.addr);
            let reply = connection
                .send(Method::GET, path, &[], Chunks::empty(), false)
                .await;
            if let Ok(reply) = reply
                && reply.status == StatusCode::OK
            {
                return Ok(began.elapsed());
            }
            if began.elapsed() > STARTUP_TIMEOUT {
                bail!("no 200 on {path} within {STARTUP_TIMEOUT:?}");
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // SIGTERM lets the servers exit cleanly; SIGKILL follows if one
        // does not.
        if let Ok(pid) = i32::try_from(self.pid) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        }
        let began = Instant::now();
        while began.elapsed() < STOP_TIMEOUT {
            if let Ok(Some(_)) = self.child.try_wait() {
                if began.elapsed() > Duration::from_secs(1) {
                    eprintln!(
                        "registry-bench: pid {} took {:.1} s to stop after SIGTERM",
                        self.pid,
                        began.elapsed().as_secs_f64()
                    );
                }
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        eprintln!(
            "registry-bench: pid {} did not stop within {STOP_TIMEOUT:?}; killing it",
            self.pid
        );
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Returns a port on 127.0.0.1 that was free a moment ago. Another process
/// may take it before the server binds it, and then the server fails to
/// start with the bind error in its log.
fn free_port() -> Result<u16> {
    let listener =
        TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("failed to find a free port")?;
    Ok(listener.local_addr()?.port())
}

/// Returns the names of the extensions linked into the registry `binary`,
/// from the first word of each unindented line of `registry extensions`.
fn linked_extensions(binary: &Path) -> Result<Vec<String>> {
    let output = Command::new(binary)
        .arg("extensions")
        .output()
        .with_context(|| format!("failed to run {} extensions", binary.display()))?;
    if !output.status.success() {
        bail!(
            "{} extensions failed with {}: {}",
            binary.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(parse_extension_list(&String::from_utf8_lossy(
        &output.stdout,
    )))
}

/// Parses the output of `registry extensions`: `name (enabled)` lines,
/// each followed by indented details.
fn parse_extension_list(text: &str) -> Vec<String> {
    text.lines()
        .filter(|line| !line.starts_with(char::is_whitespace))
        .filter_map(|line| {
            let (name, status) = line.split_once(' ')?;
            status.starts_with('(').then(|| name.to_owned())
        })
        .collect()
}

fn registry_config(
    dir: &Path,
    port: u16,
    extensions: &[String],
    settings: &BTreeMap<String, String>,
) -> String {
    let mut config = format!(
        "log:
  level: error
  accesslog:
    disabled: true
http:
  addr: 127.0.0.1:{port}
storage:
  filesystem:
    rootdirectory: {root}
  delete:
    enabled: true
",
        root = dir.join("data").display()
    );
    if !extensions.is_empty() {
        config.push_str("extensions:\n");
        for name in extensions {
            let _ = writeln!(config, "  {name}:\n    enabled: true");
            if let Some(section) = settings.get(name) {
                for line in section.lines() {
                    let _ = writeln!(config, "    {line}");
                }
            }
        }
    }
    config
}

fn distribution_config(dir: &Path, port: u16) -> String {
    format!(
        "version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {root}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:{port}
",
        root = dir.join("data").display()
    )
}

/// nginx in one process (`master_process off`), so its pid carries all the
/// CPU time that serving costs.
fn nginx_config(dir: &Path, port: u16) -> String {
    let dir = dir.display();
    format!(
        "daemon off;
master_process off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log error;
events {{
    worker_connections 256;
}}
http {{
    access_log off;
    default_type application/octet-stream;
    keepalive_requests 1000000;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location /sendfile/ {{
            alias {dir}/www/;
            sendfile on;
            tcp_nopush on;
        }}
        location /buffered/ {{
            alias {dir}/www/;
            sendfile off;
            output_buffers 2 1m;
        }}
    }}
}}
"
    )
}

/// Returns the last 20 lines of the file at `path`, or a note that it
/// could not be read.
fn log_tail(path: &Path) -> String {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(20)..].join("\n")
        }
        Err(error) => format!("(log {} unreadable: {error})", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extension_list_names() {
        let text = "foo (enabled)\n  receives: tag_created\nbar (disabled)\n  receives: nothing\n  guard: g\n";
        assert_eq!(parse_extension_list(text), ["foo", "bar"]);
    }

    #[test]
    fn extension_list_none_linked() {
        let text = "no extensions are linked into this binary; build with \
                    `--features ext-<name>` or `--features full`\n";
        assert!(parse_extension_list(text).is_empty());
    }

    #[test]
    fn registry_config_enables_extensions() {
        let none = BTreeMap::new();
        let config = registry_config(Path::new("/tmp/x"), 5001, &["foo".to_owned()], &none);
        assert!(config.contains("addr: 127.0.0.1:5001\n"));
        assert!(config.contains("rootdirectory: /tmp/x/data\n"));
        assert!(config.contains("extensions:\n  foo:\n    enabled: true\n"));
        assert!(!registry_config(Path::new("/tmp/x"), 1, &[], &none).contains("extensions"));
    }

    #[test]
    fn registry_config_indents_extension_settings() {
        let settings = BTreeMap::from([(
            "notify".to_owned(),
            "endpoints:\n  - name: bench\n".to_owned(),
        )]);
        let config = registry_config(Path::new("/tmp/x"), 1, &["notify".to_owned()], &settings);
        assert!(
            config.contains("  notify:\n    enabled: true\n    endpoints:\n      - name: bench\n")
        );
    }
}
