//! `registry-bench`: measures this registry against the Go registries on
//! the same machine, in the same run.
//!
//! It starts this registry, the `distribution` registry (Debian's
//! docker-registry) and crane's in-memory registry, each on its own
//! 127.0.0.1 port with its own temporary storage. It seeds the same content
//! into each through the HTTP API and runs the same loads against all of
//! them in interleaved rounds. In the same rounds it measures the
//! machine's limits: nginx serving the same 64 MiB file with sendfile on
//! and off, and sha256 in process. With `--registry-full` it also compares
//! a build with every extension linked and enabled against one with none.
//!
//! The load generator is this process: hyper HTTP/1.1 connections, one per
//! simulated client, on a tokio runtime that shares the cores with the
//! server under test. So besides requests per second it reports the
//! server's CPU time per request, from `/proc/<pid>/stat`, which depends
//! less on how the cores are shared.
//!
//! It is a program that reports numbers, never a test: nothing here runs
//! under `cargo test` except the unit tests of its helpers.

mod api;
mod client;
mod content;
mod load;
mod loads;
mod ops;
mod procfs;
mod report;
mod seed;
mod servers;
mod sink;
mod stats;
mod suite;
mod table;
mod targets;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Parser;

use crate::loads::Plan;
use crate::suite::Binaries;

/// Benchmarks this registry against distribution and crane, and measures
/// the machine's limits with nginx and sha256, in one run.
#[derive(Debug, Parser)]
#[command(name = "registry-bench", version, about)]
struct Cli {
    /// This registry's binary, built with `cargo build --release -p
    /// registry`.
    #[arg(long, value_name = "PATH")]
    registry: PathBuf,

    /// The registry built with `--features full`; enables the comparison of
    /// every extension linked and enabled against none.
    #[arg(long, value_name = "PATH")]
    registry_full: Option<PathBuf>,

    /// The distribution registry 2.8 (Debian package docker-registry).
    #[arg(long, value_name = "PATH", default_value = "/usr/bin/docker-registry")]
    distribution: PathBuf,

    /// crane from go-containerregistry, built by bench/build-crane.sh.
    #[arg(long, value_name = "PATH")]
    crane: PathBuf,

    /// nginx (Debian package nginx).
    #[arg(long, value_name = "PATH", default_value = "/usr/sbin/nginx")]
    nginx: PathBuf,

    /// One short round with lists of 100 and 1,000 entries: under a minute.
    #[arg(long)]
    quick: bool,

    /// Only compare the build without extensions against `--registry-full`,
    /// which takes about a minute; the peers and nginx are not started.
    #[arg(long, requires = "registry_full")]
    extensions_only: bool,

    /// Rounds of every load [default: 3, and 5 for the extension comparison;
    /// 1 with --quick].
    #[arg(long, value_name = "N")]
    rounds: Option<usize>,

    /// Seconds of each timed load [default: 2, or 0.3 with --quick]. List
    /// loads run half as long. Push loads push a fixed number of blobs.
    #[arg(long, value_name = "SECONDS")]
    duration: Option<f64>,

    /// Also write the report as Markdown to this file.
    #[arg(long, value_name = "FILE")]
    markdown: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("registry-bench: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    let mut plan = if cli.quick {
        Plan::quick()
    } else {
        Plan::full()
    };
    plan.extensions_only = cli.extensions_only;
    if let Some(rounds) = cli.rounds {
        if rounds == 0 {
            bail!("invalid --rounds 0: at least one round is needed");
        }
        plan.rounds = rounds;
        plan.extension_rounds = rounds;
    }
    if let Some(seconds) = cli.duration {
        if !(seconds > 0.0 && seconds <= 600.0) {
            bail!("invalid --duration {seconds}: expected seconds between 0 and 600");
        }
        plan.duration = Duration::from_secs_f64(seconds);
        plan.list_duration = plan.duration / 2;
    }

    let binaries = Binaries {
        registry: existing(
            &cli.registry,
            "--registry",
            "cargo build --release -p registry",
        )?,
        registry_full: match &cli.registry_full {
            Some(path) => Some(existing(
                path,
                "--registry-full",
                "cargo build --release -p registry --features full, then copy the binary",
            )?),
            None => None,
        },
        distribution: existing(
            &cli.distribution,
            "--distribution",
            "apt-get install docker-registry",
        )?,
        crane: existing(&cli.crane, "--crane", "bash bench/build-crane.sh PATH")?,
        nginx: existing(&cli.nginx, "--nginx", "apt-get install nginx")?,
    };

    if cfg!(debug_assertions) {
        eprintln!(
            "registry-bench: warning: this is a debug build, whose load generator and \
             sha256 are slower; build it with --release"
        );
    }

    let command: Vec<String> = std::env::args().collect();
    let command = command.join(" ");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("failed to start the tokio runtime")?;
    let mut results = runtime.block_on(suite::run(plan, &binaries))?;
    if cfg!(debug_assertions) {
        results.notes.push(
            "registry-bench was a debug build: its load generator and sha256 ran slower \
             than in a release build"
                .to_owned(),
        );
    }
    let checks = targets::evaluate(&results);

    print!("{}", report::to_text(&results, &checks, &command));
    if let Some(path) = &cli.markdown {
        std::fs::write(path, report::to_markdown(&results, &checks, &command))
            .with_context(|| format!("failed to write {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

/// Returns `path` made absolute, or an error naming the flag and how to get
/// the program when the file is missing.
fn existing(path: &Path, flag: &str, install_hint: &str) -> Result<PathBuf> {
    if !path.is_file() {
        bail!(
            "{flag} {}: no such file; get it with: {install_hint}",
            path.display()
        );
    }
    std::path::absolute(path).with_context(|| format!("invalid path {}", path.display()))
}
