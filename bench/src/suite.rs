//! One benchmark run: starts the servers, seeds the same content into each,
//! runs every load against all of them in interleaved rounds, measures the
//! machine's limits in the same rounds, and collects the tables.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bytes::Bytes;
use sha2::{Digest, Sha256};

use crate::api;
use crate::client::Connection;
use crate::content::MIB;
use crate::load::run_load;
use crate::loads::{Load, Plan};
use crate::procfs::{self, Machine};
use crate::seed::{self, Content, FIXED_REPOS, TAGS_LARGE_REPO, TAGS_SMALL_REPO};
use crate::servers::{Launcher, Program, Server};
use crate::sink::WebhookSink;
use crate::table::{Better, Metric, MetricTable};

/// Names of the compared servers, in table order; the first is the
/// baseline of the ratios.
pub const PEERS: [&str; 3] = ["registry", "distribution", "crane"];

/// The loads that every round runs against every peer. The catalog of the
/// smaller size runs in rounds of its own, before the catalog grows.
const MAIN_LOADS: [Load; 11] = [
    Load::Ping,
    Load::ManifestHead,
    Load::ManifestGet,
    Load::Blob1m,
    Load::Blob64m,
    Load::PushMonolithic,
    Load::PushChunked,
    Load::TagsSmall,
    Load::TagsLarge,
    Load::CatalogLarge,
    Load::Mixed,
];

/// The loads that compare the registry without extensions and with all of
/// them, each firing signals: tag and manifest signals on the PUT,
/// pulled signals on the GETs, the blob signal on the push.
const EXTENSION_LOADS: [Load; 5] = [
    Load::TagPut,
    Load::ManifestGet,
    Load::Blob1m,
    Load::PushMonolithic,
    Load::Blob64m,
];

/// Paths of the programs under test.
#[derive(Debug, Clone)]
pub struct Binaries {
    pub registry: PathBuf,
    pub registry_full: Option<PathBuf>,
    pub distribution: PathBuf,
    pub crane: PathBuf,
    pub nginx: PathBuf,
}

/// Everything a run measured.
#[derive(Debug)]
pub struct Results {
    pub machine: Machine,
    pub plan: Plan,
    /// This registry, distribution and crane under the same loads.
    pub comparison: MetricTable,
    /// nginx and in-process sha256.
    pub limits: MetricTable,
    /// This registry without extensions and with all of them, when a full
    /// build was given.
    pub extensions: Option<MetricTable>,
    /// Failed operations and other things a reader of the numbers needs.
    pub notes: Vec<String>,
    pub elapsed: Duration,
    /// CPU time that processes other than this one and its servers used
    /// during the run: how quiet the machine was.
    pub others_cpu: Duration,
}

/// A peer server that runs for the whole comparison.
struct Peer {
    name: &'static str,
    launcher: Launcher,
    server: Server,
}

/// nginx and the file that it serves.
struct Nginx {
    server: Server,
    /// The directory of the served file; deleted when this is dropped,
    /// after `server` stopped nginx.
    _file_dir: tempfile::TempDir,
}

/// State shared by the steps of a run.
struct Run {
    plan: Plan,
    content: Arc<Content>,
    notes: Vec<String>,
    started: Instant,
}

/// Runs the whole benchmark.
///
/// # Errors
///
/// Fails when a server does not start, seeding fails, or a load cannot
/// connect. Failed requests during a load are counted, not errors.
pub async fn run(plan: Plan, binaries: &Binaries) -> Result<Results> {
    let content = Arc::new(Content::generate());
    let cpu_at_start = procfs::CpuSnapshot::read()?;
    let mut run = Run {
        plan,
        content,
        notes: Vec::new(),
        started: Instant::now(),
    };
    let machine = Machine::read();
    let mut comparison = MetricTable::new(
        PEERS.iter().map(|p| p.to_string()).collect(),
        comparison_metrics(&run.plan),
    );
    let mut limits = MetricTable::new(vec!["value".to_owned()], limit_metrics(&run.plan, &machine));

    if !run.plan.extensions_only {
        run.compare_peers(binaries, &mut comparison, &mut limits)
            .await?;
    }

    let extensions = match &binaries.registry_full {
        Some(full) => Some(run.compare_extensions(&binaries.registry, full).await?),
        None => None,
    };

    // Every server has stopped and been waited for by now, so their CPU
    // time is in this process's children's time.
    let others_cpu = procfs::CpuSnapshot::read()?.others_since(&cpu_at_start);
    Ok(Results {
        machine,
        others_cpu,
        elapsed: run.started.elapsed(),
        plan: run.plan,
        comparison,
        limits,
        extensions,
        notes: run.notes,
    })
}

impl Run {
    /// Measures this registry against its peers and the machine's limits.
    async fn compare_peers(
        &mut self,
        binaries: &Binaries,
        comparison: &mut MetricTable,
        limits: &mut MetricTable,
    ) -> Result<()> {
        // The catalog of the smaller size is measured in rounds of its own,
        // before the catalog grows to the larger size.
        let peers = self.start_peers(binaries, comparison).await?;
        self.seed(&peers).await?;
        for round in 0..self.plan.rounds {
            self.measure_peers(Load::CatalogSmall, &peers, comparison, round)
                .await?;
        }
        self.grow_catalog(&peers).await?;

        let nginx = self.start_nginx(&binaries.nginx).await?;
        for round in 0..self.plan.rounds {
            self.measure_limits(limits, &nginx.server, round).await?;
            for load in MAIN_LOADS {
                self.measure_peers(load, &peers, comparison, round).await?;
            }
        }
        drop(nginx);

        for (column, peer) in peers.iter().enumerate() {
            let reading = procfs::read_process(peer.server.pid)?;
            comparison.record(
                "peak_rss",
                column,
                reading.peak_rss_bytes as f64 / MIB as f64,
            );
        }
        let launchers: Vec<(&str, Launcher)> = peers
            .into_iter()
            .map(|peer| (peer.name, peer.launcher))
            .collect();
        self.measure_startup(&launchers, comparison).await?;
        for (column, binary) in [&binaries.registry, &binaries.distribution, &binaries.crane]
            .into_iter()
            .enumerate()
        {
            comparison.record("binary", column, file_mib(binary)?);
        }
        Ok(())
    }

    fn progress(&self, message: &str) {
        eprintln!("[{:>6.1}s] {message}", self.started.elapsed().as_secs_f64());
    }

    /// Starts the compared servers and records their idle RSS.
    async fn start_peers(
        &self,
        binaries: &Binaries,
        comparison: &mut MetricTable,
    ) -> Result<Vec<Peer>> {
        let launchers = [
            Launcher::registry(&binaries.registry, false)?,
            Launcher {
                binary: binaries.distribution.clone(),
                program: Program::Distribution,
            },
            Launcher::crane(&binaries.crane)?,
        ];
        let mut peers = Vec::new();
        for (column, (name, launcher)) in PEERS.into_iter().zip(launchers).enumerate() {
            let server = launcher.start().await?;
            // Idle RSS is read after a moment, so work that a server does
            // right after its first response is included.
            tokio::time::sleep(Duration::from_millis(500)).await;
            let idle = procfs::read_process(server.pid)?;
            comparison.record("idle_rss", column, idle.rss_bytes as f64 / MIB as f64);
            self.progress(&format!("started {name} on {}", server.addr));
            peers.push(Peer {
                name,
                launcher,
                server,
            });
        }
        Ok(peers)
    }

    /// Runs `load` against every peer, in the order of `round`.
    async fn measure_peers(
        &mut self,
        load: Load,
        peers: &[Peer],
        table: &mut MetricTable,
        round: usize,
    ) -> Result<()> {
        for index in rotation(peers.len(), round) {
            let peer = &peers[index];
            self.measure(load, table, index, peer.name, &peer.server, round)
                .await?;
        }
        Ok(())
    }

    /// Runs `load` against `server` and records it in `column` of `table`.
    async fn measure(
        &mut self,
        load: Load,
        table: &mut MetricTable,
        column: usize,
        name: &str,
        server: &Server,
        round: usize,
    ) -> Result<()> {
        // Writes that earlier loads left in the page cache would otherwise
        // be flushed during this load and slow it down, by an amount that
        // depends on which server ran before.
        tokio::task::spawn_blocking(nix::unistd::sync)
            .await
            .context("sync panicked")?;

        let operation = load.operation(&self.content);
        let result = run_load(
            server.addr,
            server.pid,
            operation.clone(),
            load.spec(&self.plan),
        )
        .await
        .with_context(|| format!("load {} against {name} failed", load.key()))?;
        self.delete_blobs(name, server, operation.pushed_blobs())
            .await;
        settle(server.pid).await?;
        self.progress(&format!(
            "round {:<2} {:<14} {:<14} {}",
            round + 1,
            load.key(),
            name,
            load.summary(&result)
        ));
        if let Some(error) = &result.first_error {
            self.notes.push(format!(
                "{name}, {}, round {}: {} of {} operations failed; the first: {error}",
                load.label(&self.plan),
                round + 1,
                result.errors,
                result.operations
            ));
        }
        load.record(&result, table, column);
        Ok(())
    }

    /// Deletes the blobs that a load pushed, outside the timed phase.
    /// crane keeps blobs in memory, so without this its RSS grew to 10 GiB
    /// over a full run on a 24 GiB machine, and the pushes of all three
    /// servers slowed down by half in the later rounds. A failed DELETE
    /// becomes a note.
    async fn delete_blobs(&mut self, name: &str, server: &Server, paths: Vec<String>) {
        let mut connection = Connection::new(server.addr);
        for path in paths {
            if let Err(error) = api::delete_blob(&mut connection, &path).await {
                self.notes
                    .push(format!("{name}: deleting a pushed blob failed: {error:#}"));
                return;
            }
        }
    }

    /// Seeds every peer with the fixed repositories, both tags
    /// repositories, and the catalog repositories of the smaller size.
    async fn seed(&self, peers: &[Peer]) -> Result<()> {
        let plan = &self.plan;
        for peer in peers {
            let began = Instant::now();
            let addr = peer.server.addr;
            seed::seed_fixed(addr, &self.content).await?;
            // `latest` is one tag of each tags repository already.
            seed::seed_tags(addr, TAGS_SMALL_REPO, plan.small_list - 1, &self.content).await?;
            seed::seed_tags(addr, TAGS_LARGE_REPO, plan.large_list - 1, &self.content).await?;
            seed::seed_repositories(addr, 0..plan.small_list - FIXED_REPOS, &self.content).await?;
            self.progress(&format!(
                "seeded {}: {} + {} tags and {} repositories in {:.1} s",
                peer.name,
                plan.small_list,
                plan.large_list,
                plan.small_list,
                began.elapsed().as_secs_f64()
            ));
        }
        Ok(())
    }

    /// Adds catalog repositories to every peer up to the larger size.
    async fn grow_catalog(&self, peers: &[Peer]) -> Result<()> {
        let range = self.plan.small_list - FIXED_REPOS..self.plan.large_list - FIXED_REPOS;
        for peer in peers {
            let began = Instant::now();
            seed::seed_repositories(peer.server.addr, range.clone(), &self.content).await?;
            self.progress(&format!(
                "seeded {}: {} more repositories in {:.1} s",
                peer.name,
                range.len(),
                began.elapsed().as_secs_f64()
            ));
        }
        Ok(())
    }

    /// Starts nginx serving the 64 MiB blob from a file of its own.
    async fn start_nginx(&self, nginx: &Path) -> Result<Nginx> {
        let dir = tempfile::Builder::new()
            .prefix("registry-bench-file-")
            .tempdir()?;
        let file = dir.path().join("blob");
        let data: Vec<u8> = self.content.layer_64m.parts.concat();
        std::fs::write(&file, data)?;
        let launcher = Launcher {
            binary: nginx.to_owned(),
            program: Program::Nginx { file },
        };
        let server = launcher.start().await?;
        self.progress(&format!("started nginx on {}", server.addr));
        Ok(Nginx {
            server,
            _file_dir: dir,
        })
    }

    /// Measures nginx in both modes and sha256 in process, for one round.
    async fn measure_limits(
        &mut self,
        limits: &mut MetricTable,
        nginx: &Server,
        round: usize,
    ) -> Result<()> {
        let modes = [Load::NginxSendfile, Load::NginxBuffered];
        for index in rotation(modes.len(), round) {
            self.measure(modes[index], limits, 0, "nginx", nginx, round)
                .await?;
        }

        let data = Bytes::from(self.content.layer_64m.parts.concat());
        let duration = self.plan.duration;
        let rate = tokio::task::spawn_blocking(move || sha256_mib_per_second(&data, duration))
            .await
            .context("the sha256 measurement panicked")?;
        self.progress(&format!(
            "round {:<2} sha256 in process: {rate:.0} MiB/s",
            round + 1
        ));
        limits.record("sha256_mibs", 0, rate);
        Ok(())
    }

    /// Starts each peer afresh `startup_samples` times, in rotating order,
    /// and records the time to its first 200 on `/v2/`.
    async fn measure_startup(
        &self,
        launchers: &[(&str, Launcher)],
        table: &mut MetricTable,
    ) -> Result<()> {
        for sample in 0..self.plan.startup_samples {
            for index in rotation(launchers.len(), sample) {
                let (name, launcher) = &launchers[index];
                let server = launcher.start().await?;
                let millis = server.startup.as_secs_f64() * 1e3;
                table.record("startup", index, millis);
                self.progress(&format!("start of {name}: {millis:.1} ms"));
            }
        }
        Ok(())
    }

    /// Runs the extension loads against a build without extensions and
    /// one with all of them enabled, in interleaved rounds.
    async fn compare_extensions(&mut self, plain: &Path, full: &Path) -> Result<MetricTable> {
        // notify delivers its events to a receiver in this process, so its
        // cost includes the outbox and the POSTs. The endpoint ignores
        // pulls, as endpoints usually do: a webhook per pull costs far
        // more than the pull (BENCHMARKS.md has a run with them).
        let sink = WebhookSink::start().await?;
        let notify = format!(
            "endpoints:\n  - name: bench\n    url: http://{}/events\n    ignore:\n      actions: [pull]\n",
            sink.addr
        );
        let launchers = [
            Launcher::registry(plain, false)?,
            Launcher::registry(full, true)?.with_extension_settings("notify", &notify),
        ];
        let names = match &launchers[1].program {
            Program::Registry { extensions, .. } => extensions.join(", "),
            _ => String::new(),
        };
        if names.is_empty() {
            self.notes.push(format!(
                "{} links no extension, so the extension comparison compares two builds without any",
                full.display()
            ));
        }
        let columns = vec![
            "no extensions".to_owned(),
            format!("all extensions ({names})"),
        ];
        let metrics = EXTENSION_LOADS
            .iter()
            .flat_map(|load| load.metrics(&self.plan))
            .collect();
        let mut table = MetricTable::new(columns, metrics);

        let mut servers = Vec::new();
        for launcher in &launchers {
            let server = launcher.start().await?;
            seed::seed_fixed(server.addr, &self.content).await?;
            servers.push(server);
        }
        let labels = ["no extensions", "all extensions"];
        for round in 0..self.plan.extension_rounds {
            for load in EXTENSION_LOADS {
                for index in rotation(servers.len(), round) {
                    self.measure(
                        load,
                        &mut table,
                        index,
                        labels[index],
                        &servers[index],
                        round,
                    )
                    .await?;
                }
            }
        }
        self.notes.push(format!(
            "The notify extension sent {} POSTs to the benchmark's webhook receiver during the extension comparison.",
            sink.received()
        ));
        Ok(table)
    }
}

/// Waits until the server `pid` is idle, for at most 5 seconds: until its
/// CPU time stays the same over 100 ms, which at the resolution of `/proc`
/// (10 ms ticks) means under about 10% of a core. Work that a load leaves
/// behind (garbage collection, deleting blobs) would otherwise run during
/// the next load, against another server.
async fn settle(pid: u32) -> Result<()> {
    const WINDOW: Duration = Duration::from_millis(100);
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        let before = procfs::cpu_time(pid)?;
        tokio::time::sleep(WINDOW).await;
        if procfs::cpu_time(pid)? == before {
            break;
        }
    }
    Ok(())
}

/// Returns the indices `0..count` starting at `round % count`: round 0
/// runs A, B, C; round 1 runs B, C, A; and so on.
pub fn rotation(count: usize, round: usize) -> impl Iterator<Item = usize> {
    (0..count).map(move |i| (i + round) % count)
}

/// Hashes `data` repeatedly for `duration` (at least twice) and returns
/// the rate in MiB/s.
fn sha256_mib_per_second(data: &[u8], duration: Duration) -> f64 {
    let start = Instant::now();
    let mut hashed = 0u64;
    let mut rounds = 0;
    while rounds < 2 || start.elapsed() < duration {
        black_box(Sha256::digest(black_box(data)));
        hashed += data.len() as u64;
        rounds += 1;
    }
    hashed as f64 / MIB as f64 / start.elapsed().as_secs_f64()
}

fn file_mib(path: &Path) -> Result<f64> {
    let metadata =
        std::fs::metadata(path).with_context(|| format!("failed to read {}", path.display()))?;
    Ok(metadata.len() as f64 / MIB as f64)
}

/// Returns the rows of the comparison table, in order.
fn comparison_metrics(plan: &Plan) -> Vec<Metric> {
    let mut metrics: Vec<Metric> = [
        Load::Ping,
        Load::ManifestHead,
        Load::ManifestGet,
        Load::Blob1m,
        Load::Blob64m,
        Load::PushMonolithic,
        Load::PushChunked,
        Load::TagsSmall,
        Load::TagsLarge,
        Load::CatalogSmall,
        Load::CatalogLarge,
        Load::Mixed,
    ]
    .iter()
    .flat_map(|load| load.metrics(plan))
    .collect();
    metrics.extend([
        Metric::new(
            "idle_rss",
            "idle RSS after start (VmRSS)",
            "MiB",
            Better::Lower,
        ),
        Metric::new(
            "peak_rss",
            "peak RSS over the run (VmHWM)",
            "MiB",
            Better::Lower,
        ),
        Metric::new("startup", "start to first 200 on /v2/", "ms", Better::Lower),
        Metric::new("binary", "binary size", "MiB", Better::Lower),
    ]);
    metrics
}

/// Returns the rows of the machine-limits table.
fn limit_metrics(plan: &Plan, machine: &Machine) -> Vec<Metric> {
    let mut metrics: Vec<Metric> = [Load::NginxSendfile, Load::NginxBuffered]
        .iter()
        .flat_map(|load| load.metrics(plan))
        .collect();
    let sha_ni = if machine.sha_ni { "with" } else { "without" };
    metrics.push(Metric::new(
        "sha256_mibs",
        format!("sha256 in process, sha2 crate, CPU {sha_ni} sha_ni"),
        "MiB/s",
        Better::Higher,
    ));
    metrics
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_starts_one_later_each_round() {
        assert_eq!(rotation(3, 0).collect::<Vec<_>>(), [0, 1, 2]);
        assert_eq!(rotation(3, 1).collect::<Vec<_>>(), [1, 2, 0]);
        assert_eq!(rotation(3, 2).collect::<Vec<_>>(), [2, 0, 1]);
        assert_eq!(rotation(3, 3).collect::<Vec<_>>(), [0, 1, 2]);
        assert_eq!(rotation(2, 1).collect::<Vec<_>>(), [1, 0]);
    }

    #[test]
    fn sha256_rate_is_positive() {
        let rate = sha256_mib_per_second(&[0u8; 4096], Duration::ZERO);
        assert!(rate > 0.0);
    }
}
