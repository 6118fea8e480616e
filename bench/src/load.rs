//! The load engine: simulated clients that repeat one operation in a closed
//! loop, each on its own connection, while the server's CPU time is read
//! before and after.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use futures_util::future::BoxFuture;

use crate::client::Connection;
use crate::procfs;
use crate::stats::Latencies;

/// Something a simulated client does once per iteration.
pub trait Operation: Send + Sync + 'static {
    /// Performs the operation once on `connection` for client number
    /// `client` and returns the body bytes moved, in either direction.
    fn run<'a>(
        &'a self,
        connection: &'a mut Connection,
        client: usize,
    ) -> BoxFuture<'a, Result<u64>>;

    /// Returns the paths of the blobs that the runs so far pushed, for a
    /// DELETE after the load; empty for an operation that pushes none.
    fn pushed_blobs(&self) -> Vec<String> {
        Vec::new()
    }
}

/// When each client stops.
#[derive(Debug, Clone, Copy)]
pub enum Stop {
    /// Start no new operation after this much time.
    After(Duration),
    /// Run this many operations per client.
    Count(u64),
}

/// How to run one load.
#[derive(Debug, Clone, Copy)]
pub struct LoadSpec {
    pub clients: usize,
    pub stop: Stop,
}

/// The measurements of one load.
#[derive(Debug, Default)]
pub struct LoadResult {
    pub operations: u64,
    pub errors: u64,
    pub bytes: u64,
    /// From the start of the timed phase until the last client finished.
    pub elapsed: Duration,
    /// Durations of the operations, failed ones included.
    pub latencies: Latencies,
    /// User plus system time that the server spent during the timed phase.
    pub server_cpu: Duration,
    /// The first failure, to show why `errors` is not zero.
    pub first_error: Option<String>,
}

impl LoadResult {
    /// Returns successful operations per second.
    pub fn ops_per_second(&self) -> f64 {
        (self.operations - self.errors) as f64 / self.elapsed.as_secs_f64()
    }

    /// Returns body bytes per second, in MiB/s.
    pub fn mib_per_second(&self) -> f64 {
        self.bytes as f64 / (1024.0 * 1024.0) / self.elapsed.as_secs_f64()
    }

    /// Returns the server's CPU time per operation, in microseconds.
    pub fn cpu_micros_per_op(&self) -> f64 {
        self.server_cpu.as_secs_f64() * 1e6 / self.operations.max(1) as f64
    }

    /// Returns the server's CPU time per GiB of body moved, in seconds.
    pub fn cpu_seconds_per_gib(&self) -> f64 {
        let gib = self.bytes as f64 / (1024.0 * 1024.0 * 1024.0);
        if gib == 0.0 {
            return f64::NAN;
        }
        self.server_cpu.as_secs_f64() / gib
    }

    /// Returns the latency at `quantile` in milliseconds, or NaN when
    /// nothing was recorded.
    pub fn latency_ms(&self, quantile: f64) -> f64 {
        self.latencies
            .quantile(quantile)
            .map_or(f64::NAN, |d| d.as_secs_f64() * 1e3)
    }
}

/// The counts of one load client.
#[derive(Debug, Default)]
struct ClientTally {
    operations: u64,
    errors: u64,
    bytes: u64,
    latencies: Latencies,
    first_error: Option<String>,
}

/// Runs `operation` from `spec.clients` clients against `addr` and reads
/// the CPU time of the server process `pid` around the timed phase.
///
/// Every client first opens its connection and runs the operation once
/// untimed, so connection setup and first-touch costs stay out of the
/// numbers.
///
/// # Errors
///
/// Fails when a connection cannot be opened or the server process is gone.
/// Failed operations are counted in the result, not returned.
pub async fn run_load(
    addr: SocketAddr,
    pid: u32,
    operation: Arc<dyn Operation>,
    spec: LoadSpec,
) -> Result<LoadResult> {
    let mut connections = Vec::with_capacity(spec.clients);
    for _ in 0..spec.clients {
        let mut connection = Connection::new(addr);
        connection.connect().await?;
        connections.push(connection);
    }
    let warmups = connections
        .into_iter()
        .enumerate()
        .map(|(client, mut connection)| {
            let operation = operation.clone();
            tokio::spawn(async move {
                // A failure here shows again, and is counted, in the timed phase.
                let _ = operation.run(&mut connection, client).await;
                connection
            })
        });
    let mut connections = Vec::with_capacity(spec.clients);
    for warmup in warmups.collect::<Vec<_>>() {
        connections.push(warmup.await.context("a warm-up task panicked")?);
    }

    let cpu_before = procfs::cpu_time(pid)?;
    let start = Instant::now();
    let tasks: Vec<_> = connections
        .into_iter()
        .enumerate()
        .map(|(client, connection)| {
            tokio::spawn(run_client(
                operation.clone(),
                connection,
                client,
                spec.stop,
                start,
            ))
        })
        .collect();
    let mut result = LoadResult::default();
    for task in tasks {
        let tally = task.await.context("a load client panicked")?;
        result.operations += tally.operations;
        result.errors += tally.errors;
        result.bytes += tally.bytes;
        result.latencies.merge(&tally.latencies);
        result.first_error = result.first_error.or(tally.first_error);
    }
    result.elapsed = start.elapsed();
    result.server_cpu = procfs::cpu_time(pid)?.saturating_sub(cpu_before);
    Ok(result)
}

async fn run_client(
    operation: Arc<dyn Operation>,
    mut connection: Connection,
    client: usize,
    stop: Stop,
    start: Instant,
) -> ClientTally {
    let mut tally = ClientTally::default();
    loop {
        let done = match stop {
            Stop::After(duration) => start.elapsed() >= duration,
            Stop::Count(count) => tally.operations >= count,
        };
        if done {
            return tally;
        }

        let began = Instant::now();
        let outcome = operation.run(&mut connection, client).await;
        tally.latencies.record(began.elapsed());
        tally.operations += 1;
        match outcome {
            Ok(bytes) => tally.bytes += bytes,
            Err(error) => {
                tally.errors += 1;
                if tally.first_error.is_none() {
                    tally.first_error = Some(format!("{error:#}"));
                }
            }
        }
    }
}
