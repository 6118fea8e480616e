//! The outbox: an append-only log of events on disk, in segments, with one
//! cursor per endpoint.
//!
//! Layout of the folder:
//! - `seg-<first sequence number>.log`: one JSON line per event,
//!   `{"seq":N,"action":...,"mediaType":...,"event":{...}}`. A new segment
//!   starts when the current one passes a quarter of the bound, at most
//!   `MAX_SEGMENT_BYTES`, or after a write that failed part of the way.
//! - `cursors/<endpoint>`: the sequence number of the last event the
//!   endpoint received or skipped, in 20 digits and a newline, overwritten
//!   in place.
//! - `lock`: locked by the process that owns the outbox.
//!
//! Appends are written by their caller (the request that makes a change,
//! or the worker of pull events), under a lock, with one write each, so that the client's response follows the write without
//! a trip to another thread. A sync thread makes them durable: under
//! `SyncPolicy::Always` it syncs once for all the durable appends waiting
//! in its queue (group commit) before they are acknowledged, and under
//! `SyncPolicy::Interval` it syncs within the interval of a write. Segments
//! that every endpoint has passed are removed, and the oldest ones while
//! the outbox is over its bound. The newest segment always stays, so that
//! sequence numbers continue after a restart.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::envelope::Record;

/// The largest size after which a new segment starts.
const MAX_SEGMENT_BYTES: u64 = 4 << 20;

/// The bytes a reader takes from a segment at once.
const READ_BYTES: usize = 256 << 10;

/// The maximum number of commands that the sync thread takes at once.
const MAX_GROUP: usize = 1024;

/// When the outbox syncs appended events to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncPolicy {
    /// A durable append is acknowledged once it is written, which survives
    /// a killed process but not a crash of the machine. The sync thread syncs
    /// within this interval of the first write that is not synced.
    Interval(Duration),
    /// A durable append is acknowledged once it is synced. While durable
    /// appends arrive closer together than `delay`, the sync thread waits
    /// `delay` for more before it syncs, so that one sync covers them all.
    Always { delay: Duration },
}

/// One line of a segment: the sequence number, then the fields of the
/// record, which [`Log::append`] writes as one object.
#[derive(Deserialize)]
struct Line {
    seq: u64,
    action: String,
    #[serde(rename = "mediaType")]
    media_type: String,
    event: Box<RawValue>,
}

impl From<Line> for Record {
    fn from(line: Line) -> Self {
        Record {
            action: line.action,
            media_type: line.media_type,
            event: line.event,
        }
    }
}

/// The position of one endpoint.
#[derive(Debug)]
pub struct Cursor {
    pub name: String,
    /// The last sequence number the endpoint received or skipped.
    pub seq: AtomicU64,
    /// Events removed by the disk bound before the endpoint received them.
    pub dropped: AtomicU64,
    /// The cursor file, kept open for updates.
    file: File,
}

/// State shared by the appends, the sync thread, the readers and the metrics.
#[derive(Debug)]
pub struct Shared {
    /// The sequence number of the last appended event; 0 before the first.
    pub last_seq: AtomicU64,
    pub cursors: Vec<Cursor>,
    /// Tells readers that events were appended.
    pub appended: tokio::sync::watch::Sender<u64>,
    /// Syncs to disk of appended events.
    pub syncs: AtomicU64,
    /// Whether events were written since the sync thread's last sync and
    /// reported to it, under `SyncPolicy::Interval`.
    unsynced: AtomicBool,
}

impl Shared {
    pub fn cursor(&self, name: &str) -> &Cursor {
        self.cursors
            .iter()
            .find(|c| c.name == name)
            .expect("every endpoint has a cursor")
    }
}

/// The work of the sync thread.
enum Command {
    /// Syncs what was written and then acknowledges it.
    Sync {
        ack: tokio::sync::oneshot::Sender<Result<(), String>>,
    },
    /// Starts the interval after which what was written is synced.
    Written,
    /// Removes the segments that every endpoint has passed.
    Collect,
}

impl Command {
    fn is_sync(&self) -> bool {
        matches!(self, Command::Sync { .. })
    }
}

/// The outbox of one registry process.
#[derive(Debug)]
pub struct Outbox {
    dir: PathBuf,
    log: Arc<Mutex<Log>>,
    sync: SyncPolicy,
    commands: Mutex<Sender<Command>>,
    shared: Arc<Shared>,
    /// Held for the life of the outbox, so a second process on the same
    /// folder fails at startup instead of mixing sequence numbers.
    _lock: nix::fcntl::Flock<File>,
}

impl Outbox {
    /// Opens or creates the outbox in `dir` for `endpoints`, and starts its
    /// sync thread. An endpoint without a cursor starts at the newest event.
    /// `sync` sets when appended events are synced to disk.
    pub fn open(
        dir: &Path,
        max_size: u64,
        sync: SyncPolicy,
        endpoints: &[String],
    ) -> io::Result<Self> {
        fs::create_dir_all(dir.join("cursors"))?;
        let lock_file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join("lock"))?;
        let lock = nix::fcntl::Flock::lock(lock_file, nix::fcntl::FlockArg::LockExclusiveNonblock)
            .map_err(|(_, errno)| {
                io::Error::other(format!(
                    "the outbox is locked by another process ({errno}); \
                     run one registry per storage root, or give each its own outbox.directory"
                ))
            })?;
        let mut segments = list_segments(dir)?;
        let mut cursors = Vec::new();
        for name in endpoints {
            cursors.push((name.clone(), read_cursor(dir, name)?));
        }

        // The newest segment gives the next sequence number. A crash in the
        // middle of an append leaves a partial last line, which is cut off.
        let last_seq = match segments.last() {
            Some(segment) => repair_tail(&segment.path, segment.first)?,
            None => cursors.iter().filter_map(|(_, c)| *c).max().unwrap_or(0),
        };
        if segments.is_empty() {
            segments.push(Segment::create(dir, last_seq + 1)?);
            File::open(dir)?.sync_all()?;
        }

        let oldest = segments.first().map_or(last_seq + 1, |s| s.first);
        let cursors: Vec<Cursor> = cursors
            .into_iter()
            .map(|(name, seq)| {
                if seq.is_none() && oldest <= last_seq {
                    tracing::warn!(
                        endpoint = %name,
                        skipped = last_seq + 1 - oldest,
                        "notify: endpoint has no cursor; it starts after the newest event \
                         and does not receive the events already in the outbox"
                    );
                }
                let seq = seq.unwrap_or(last_seq).min(last_seq);
                let file = OpenOptions::new()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .open(cursor_path(dir, &name))?;
                write_cursor(&file, seq)?;
                Ok(Cursor {
                    name,
                    seq: AtomicU64::new(seq),
                    dropped: AtomicU64::new(0),
                    file,
                })
            })
            .collect::<io::Result<_>>()?;

        let (appended, _) = tokio::sync::watch::channel(last_seq);
        let shared = Arc::new(Shared {
            last_seq: AtomicU64::new(last_seq),
            cursors,
            appended,
            syncs: AtomicU64::new(0),
            unsynced: AtomicBool::new(false),
        });
        let (sender, receiver) = channel();
        let current = segments.last().expect("one segment exists");
        let file = OpenOptions::new().append(true).open(&current.path)?;
        let log = Arc::new(Mutex::new(Log {
            dir: dir.to_owned(),
            max_size,
            segment_bytes: (max_size / 4).clamp(64 << 10, MAX_SEGMENT_BYTES),
            segments,
            file,
            retired: Vec::new(),
            folder_unsynced: false,
            write_failed: false,
            next_seq: last_seq + 1,
            shared: shared.clone(),
        }));
        let syncer = Syncer {
            log: log.clone(),
            shared: shared.clone(),
            sync,
            last_durable: None,
            unsynced_since: None,
        };
        std::thread::Builder::new()
            .name("notify-outbox".to_owned())
            .spawn(move || syncer.run(receiver))?;
        Ok(Self {
            dir: dir.to_owned(),
            log,
            sync,
            commands: Mutex::new(sender),
            shared,
            _lock: lock,
        })
    }

    /// Returns the state shared with readers and metrics.
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Writes records, in order. With `durable` under
    /// `SyncPolicy::Always`, returns a wait that ends once they are synced
    /// to disk; otherwise returns none, and they are synced later.
    pub fn append(
        &self,
        records: Vec<Record>,
        durable: bool,
    ) -> Result<Option<tokio::sync::oneshot::Receiver<Result<(), String>>>, String> {
        // The sequence number is added in front, under the lock.
        let mut lines = Vec::with_capacity(records.len());
        for record in records {
            let mut line = serde_json::to_vec(&record).map_err(|e| e.to_string())?;
            line.push(b'\n');
            lines.push(line);
        }
        self.log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .append(&lines)
            .map_err(|e| format!("cannot append to the outbox: {e}"))?;

        match self.sync {
            SyncPolicy::Always { .. } if durable => {
                let (ack, done) = tokio::sync::oneshot::channel();
                self.send(Command::Sync { ack })?;
                Ok(Some(done))
            }
            SyncPolicy::Always { .. } => Ok(None),
            SyncPolicy::Interval(_) => {
                // Only the first write after a sync starts an interval.
                if !self.shared.unsynced.swap(true, Ordering::AcqRel) {
                    self.send(Command::Written)?;
                }
                Ok(None)
            }
        }
    }

    /// Syncs everything written so far and waits for it: the events of
    /// pulls and, under `SyncPolicy::Interval`, those not synced yet.
    ///
    /// # Errors
    ///
    /// When the sync fails or the sync thread stopped.
    pub async fn flush(&self) -> Result<(), String> {
        let (ack, done) = tokio::sync::oneshot::channel();
        self.send(Command::Sync { ack })?;
        done.await
            .map_err(|_| "the outbox sync thread stopped".to_owned())?
    }

    /// Records that endpoint `name` received or skipped every event up to
    /// `seq`, and lets the sync thread remove segments that no endpoint needs.
    pub fn advance(&self, name: &str, seq: u64) -> io::Result<()> {
        let cursor = self.shared.cursor(name);
        if cursor.seq.fetch_max(seq, Ordering::Relaxed) >= seq {
            return Ok(());
        }
        // A lost cursor update only makes the endpoint receive events again,
        // so the file is written without a sync.
        write_cursor(&cursor.file, seq)?;
        let _ = self.send(Command::Collect);
        Ok(())
    }

    /// Starts a reader for endpoint `name` at its cursor.
    pub fn reader(&self) -> Reader {
        Reader {
            dir: self.dir.clone(),
            segment: None,
            offset: 0,
            buffer: Vec::new(),
        }
    }

    fn send(&self, command: Command) -> Result<(), String> {
        self.commands
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .send(command)
            .map_err(|_| "the outbox sync thread stopped".to_owned())
    }
}

/// A segment file.
#[derive(Debug)]
struct Segment {
    first: u64,
    path: PathBuf,
    size: u64,
}

impl Segment {
    /// Creates an empty segment file. Its name in the folder is durable
    /// only after the folder is synced.
    fn create(dir: &Path, first: u64) -> io::Result<Segment> {
        let path = dir.join(segment_name(first));
        File::create(&path)?;
        Ok(Segment {
            first,
            path,
            size: 0,
        })
    }
}

fn segment_name(first: u64) -> String {
    format!("seg-{first:020}.log")
}

/// Returns the first sequence number of a segment file name. Sequence
/// numbers start at 1, so a name with 0 is no segment.
fn parse_segment_name(name: &str) -> Option<u64> {
    let first: u64 = name
        .strip_prefix("seg-")?
        .strip_suffix(".log")?
        .parse()
        .ok()?;
    (first > 0).then_some(first)
}

fn list_segments(dir: &Path) -> io::Result<Vec<Segment>> {
    let mut segments = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if let Some(first) = name.to_str().and_then(parse_segment_name) {
            segments.push(Segment {
                first,
                path: entry.path(),
                size: entry.metadata()?.len(),
            });
        }
    }
    segments.sort_by_key(|s| s.first);
    Ok(segments)
}

/// Cuts a partial last line off a segment and returns the sequence number
/// of its last complete line, or `first - 1` when it has none.
fn repair_tail(path: &Path, first: u64) -> io::Result<u64> {
    let content = fs::read(path)?;
    let complete = content
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    if complete < content.len() {
        tracing::warn!(
            segment = %path.display(),
            bytes = content.len() - complete,
            "notify: cutting off a partial event left by a crash"
        );
        let file = OpenOptions::new().write(true).open(path)?;
        file.set_len(complete as u64)?;
        file.sync_all()?;
    }
    let last = content[..complete]
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .filter_map(|l| serde_json::from_slice::<Line>(l).ok())
        .map(|l| l.seq)
        .next_back();
    Ok(last.unwrap_or(first - 1))
}

fn cursor_path(dir: &Path, name: &str) -> PathBuf {
    dir.join("cursors").join(name)
}

fn read_cursor(dir: &Path, name: &str) -> io::Result<Option<u64>> {
    let path = cursor_path(dir, name);
    match fs::read_to_string(&path) {
        Ok(text) => text.trim().parse().map(Some).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "invalid cursor {} of endpoint {name} ({e}); write the sequence number of \
                     the last event it received, or remove the file to start after the newest event",
                    path.display()
                ),
            )
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Overwrites a cursor file with one write of fixed length, which leaves
/// the old number or the new one, and creates no file. A new file and a
/// rename per update took 1.5% of the registry's CPU time under a stream
/// of manifest PUTs, in a profile on ext4.
fn write_cursor(file: &File, seq: u64) -> io::Result<()> {
    file.write_all_at(format!("{seq:020}\n").as_bytes(), 0)
}

/// The segments and the file that appends go to, behind the outbox's lock.
#[derive(Debug)]
struct Log {
    dir: PathBuf,
    max_size: u64,
    /// The size after which a new segment starts.
    segment_bytes: u64,
    /// Oldest first; the last one is being written.
    segments: Vec<Segment>,
    file: File,
    /// Files of older segments that were written after the last sync.
    retired: Vec<File>,
    /// Whether a segment was created since the last sync of the folder.
    folder_unsynced: bool,
    /// Whether the last write failed after writing part of its lines, so
    /// that the next one starts a new segment.
    write_failed: bool,
    next_seq: u64,
    shared: Arc<Shared>,
}

impl Log {
    /// Writes `lines` after their sequence numbers with one write, starting
    /// a new segment first when the current one is full or the last write
    /// failed part of the way, and wakes readers.
    ///
    /// Nothing here waits for the disk: a new segment leaves the old file
    /// and the folder for the sync thread to sync.
    fn append(&mut self, lines: &[Vec<u8>]) -> io::Result<()> {
        let first_seq = self.next_seq;
        let mut buffer = Vec::with_capacity(lines.iter().map(|l| l.len() + 16).sum());
        for line in lines {
            let prefix = format!("{{\"seq\":{},", self.next_seq);
            buffer.extend_from_slice(prefix.as_bytes());
            // The record's own object opens with `{`, which the prefix
            // above already wrote.
            buffer.extend_from_slice(&line[1..]);
            // Sequence numbers of a failed write are not reused, because a
            // reader may have seen some of its lines.
            self.next_seq += 1;
        }

        let current = self.segments.last().expect("one segment exists");
        if self.write_failed || current.size >= self.segment_bytes {
            let segment = Segment::create(&self.dir, first_seq)?;
            let file = OpenOptions::new().append(true).open(&segment.path)?;
            // The old segment may end with lines that were not synced.
            self.retired.push(std::mem::replace(&mut self.file, file));
            self.folder_unsynced = true;
            self.segments.push(segment);
            self.write_failed = false;
        }
        let current = self.segments.last_mut().expect("one segment exists");
        if let Err(error) = self.file.write_all(&buffer) {
            // A reader may already have read the lines written before the
            // failure, so they stay and the next append starts a new
            // segment. Readers skip the partial line at the end of an
            // older segment. A write that left nothing behind changes
            // nothing, so the segment goes on: a full disk then does not
            // add an empty segment per change.
            if let Ok(metadata) = self.file.metadata()
                && metadata.len() > current.size
            {
                current.size = metadata.len();
                self.write_failed = true;
            }
            return Err(error);
        }
        current.size += buffer.len() as u64;

        let last = self.next_seq - 1;
        self.shared.last_seq.store(last, Ordering::Relaxed);
        self.shared.appended.send_replace(last);
        if let Err(error) = self.collect() {
            tracing::error!(%error, "notify: cannot remove outbox segments");
        }
        Ok(())
    }

    /// Removes segments that every endpoint has passed, then the oldest
    /// segments while the outbox is over its bound.
    fn collect(&mut self) -> io::Result<()> {
        let min_cursor = self
            .shared
            .cursors
            .iter()
            .map(|c| c.seq.load(Ordering::Relaxed))
            .min()
            .unwrap_or(u64::MAX);
        while self.segments.len() > 1 && self.segments[1].first - 1 <= min_cursor {
            let segment = self.segments.remove(0);
            fs::remove_file(&segment.path)?;
        }

        let mut total: u64 = self.segments.iter().map(|s| s.size).sum();
        while total > self.max_size && self.segments.len() > 1 {
            let segment = self.segments.remove(0);
            let last = self.segments[0].first - 1;
            fs::remove_file(&segment.path)?;
            total -= segment.size;
            for cursor in &self.shared.cursors {
                let seq = cursor.seq.load(Ordering::Relaxed);
                if seq >= last {
                    continue;
                }
                let lost = last - seq.max(segment.first - 1);
                cursor.dropped.fetch_add(lost, Ordering::Relaxed);
                cursor.seq.fetch_max(last, Ordering::Relaxed);
                write_cursor(&cursor.file, last)?;
                tracing::warn!(
                    endpoint = %cursor.name,
                    lost,
                    first_seq = segment.first,
                    last_seq = last,
                    max_size = self.max_size,
                    "notify: outbox is full (outbox.maxsize); removed the oldest undelivered events"
                );
            }
        }
        Ok(())
    }
}

/// The sync thread's state.
struct Syncer {
    log: Arc<Mutex<Log>>,
    shared: Arc<Shared>,
    sync: SyncPolicy,
    /// When the last request for a sync arrived.
    last_durable: Option<Instant>,
    /// When the first write that is not synced yet was reported, under
    /// `SyncPolicy::Interval`.
    unsynced_since: Option<Instant>,
}

impl Syncer {
    fn run(mut self, commands: Receiver<Command>) {
        loop {
            let first = match self.sync_due() {
                Some(due) if due <= Instant::now() => {
                    let _ = self.sync();
                    continue;
                }
                Some(due) => match commands.recv_timeout(due - Instant::now()) {
                    Ok(command) => command,
                    Err(RecvTimeoutError::Timeout) => continue,
                    Err(RecvTimeoutError::Disconnected) => break,
                },
                None => match commands.recv() {
                    Ok(command) => command,
                    Err(_) => break,
                },
            };
            let arrived = Instant::now();
            let mut group = vec![first];
            // While requests for a sync arrive closer together than the
            // delay, more are likely to come within it, and waiting for
            // them lets one sync cover them all. A lone one is served at
            // once. The thread sleeps instead of waiting on the channel,
            // so the requests that arrive meanwhile queue up without
            // waking it.
            if let SyncPolicy::Always { delay } = self.sync
                && group[0].is_sync()
                && self
                    .last_durable
                    .is_some_and(|at| arrived.duration_since(at) < delay)
            {
                std::thread::sleep(delay);
            }
            while group.len() < MAX_GROUP {
                let Ok(command) = commands.try_recv() else {
                    break;
                };
                group.push(command);
            }
            if group.iter().any(Command::is_sync) {
                self.last_durable = Some(Instant::now());
            }
            self.handle(group);
        }
        // The registry is stopping: what was written is synced now.
        if self.unsynced_since.is_some() {
            let _ = self.sync();
        }
    }

    fn handle(&mut self, group: Vec<Command>) {
        let mut acks = Vec::new();
        let mut collect = false;
        for command in group {
            match command {
                Command::Sync { ack } => acks.push(ack),
                Command::Written => {
                    self.unsynced_since.get_or_insert_with(Instant::now);
                }
                Command::Collect => collect = true,
            }
        }
        if !acks.is_empty() {
            let reply = self.sync();
            for ack in acks {
                let _ = ack.send(reply.clone());
            }
        }
        if collect {
            let mut log = self.log.lock().unwrap_or_else(|e| e.into_inner());
            if let Err(error) = log.collect() {
                tracing::error!(%error, "notify: cannot remove outbox segments");
            }
        }
    }

    /// Returns when the writes that are not synced yet are due for a sync,
    /// under `SyncPolicy::Interval`.
    fn sync_due(&self) -> Option<Instant> {
        match self.sync {
            SyncPolicy::Interval(interval) => self.unsynced_since.map(|since| since + interval),
            SyncPolicy::Always { .. } => None,
        }
    }

    /// Syncs everything written so far, logging a failure: the segments
    /// retired since the last sync, the folder when a segment was created,
    /// and the current segment. Only this thread syncs outbox files, so an
    /// error of a sync reaches the appends that wait for it.
    fn sync(&mut self) -> Result<(), String> {
        // Cleared first, so that a write from now on starts a new interval.
        self.shared.unsynced.store(false, Ordering::Release);
        self.unsynced_since = None;
        let (retired, folder, current) = {
            let mut log = self.log.lock().unwrap_or_else(|e| e.into_inner());
            let folder = std::mem::take(&mut log.folder_unsynced).then(|| log.dir.clone());
            (
                std::mem::take(&mut log.retired),
                folder,
                log.file.try_clone(),
            )
        };
        self.shared.syncs.fetch_add(1, Ordering::Relaxed);
        let synced = (|| {
            for file in &retired {
                file.sync_data()?;
            }
            if let Some(folder) = &folder {
                File::open(folder)?.sync_all()?;
            }
            current?.sync_data()
        })();
        synced.map_err(|error| {
            tracing::error!(%error, "notify: cannot sync the outbox to disk");
            format!("cannot sync the outbox to disk: {error}")
        })
    }
}

/// Reads events in order from the segments.
#[derive(Debug)]
pub struct Reader {
    dir: PathBuf,
    /// The first sequence number of the segment being read.
    segment: Option<u64>,
    /// The byte offset in that segment up to which `buffer` is filled.
    offset: u64,
    /// Bytes read from the segment and not yet parsed: at most one partial
    /// line, plus the rest of the last read.
    buffer: Vec<u8>,
}

impl Reader {
    /// Returns up to `max` events with sequence numbers after `after`, in
    /// order. Returns fewer, or none, when no more are on disk yet.
    pub fn read(&mut self, after: u64, max: usize) -> io::Result<Vec<(u64, Record)>> {
        let mut events = Vec::new();
        loop {
            let segments = list_segments(&self.dir)?;
            let Some(index) = self.position(&segments, after) else {
                return Ok(events);
            };
            let segment = &segments[index];
            let newest = index + 1 == segments.len();

            self.take_lines(segment, after, max, &mut events);
            if events.len() >= max {
                return Ok(events);
            }
            let read = match self.fill(segment) {
                Ok(read) => read,
                // Removed by the bound since the listing: start over.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    self.segment = None;
                    continue;
                }
                Err(e) => return Err(e),
            };
            if read > 0 {
                continue;
            }
            if newest {
                return Ok(events);
            }

            // This segment is done and a newer one exists, so a partial
            // line at its end, cut by a crash, can never be completed.
            if !self.buffer.is_empty() {
                tracing::error!(
                    segment = %segment.path.display(),
                    bytes = self.buffer.len(),
                    "notify: skipping a partial event at the end of an outbox segment"
                );
            }
            self.segment = Some(segments[index + 1].first);
            self.offset = 0;
            self.buffer.clear();
        }
    }

    /// Moves the complete lines of the buffer into `events`, up to `max`.
    fn take_lines(
        &mut self,
        segment: &Segment,
        after: u64,
        max: usize,
        events: &mut Vec<(u64, Record)>,
    ) {
        let mut consumed = 0;
        while events.len() < max {
            let Some(end) = self.buffer[consumed..].iter().position(|&b| b == b'\n') else {
                break;
            };
            let line = &self.buffer[consumed..consumed + end + 1];
            consumed += end + 1;
            match serde_json::from_slice::<Line>(line) {
                Ok(line) if line.seq > after => events.push((line.seq, line.into())),
                Ok(_) => {}
                Err(error) => tracing::error!(
                    segment = %segment.path.display(),
                    %error,
                    "notify: skipping an unreadable outbox line"
                ),
            }
        }
        self.buffer.drain(..consumed);
    }

    /// Appends up to `READ_BYTES` of the segment to the buffer and returns
    /// how many bytes were read.
    fn fill(&mut self, segment: &Segment) -> io::Result<usize> {
        let mut file = File::open(&segment.path)?;
        file.seek(SeekFrom::Start(self.offset))?;
        let before = self.buffer.len();
        file.take(READ_BYTES as u64).read_to_end(&mut self.buffer)?;
        let read = self.buffer.len() - before;
        self.offset += read as u64;
        Ok(read)
    }

    /// Picks the segment to read: the current one while it exists,
    /// otherwise the one that contains `after + 1`, or the oldest one.
    fn position(&mut self, segments: &[Segment], after: u64) -> Option<usize> {
        if let Some(first) = self.segment
            && let Some(index) = segments.iter().position(|s| s.first == first)
        {
            return Some(index);
        }
        let index = segments
            .iter()
            .rposition(|s| s.first <= after + 1)
            .unwrap_or(0);
        let segment = segments.get(index)?;
        self.segment = Some(segment.first);
        self.offset = 0;
        self.buffer.clear();
        Some(index)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// Opens an outbox that syncs each durable append at once.
    fn open(dir: &Path, max_size: u64, endpoints: &[String]) -> io::Result<Outbox> {
        let sync = SyncPolicy::Always {
            delay: Duration::ZERO,
        };
        Outbox::open(dir, max_size, sync, endpoints)
    }

    fn record(n: u64) -> Record {
        Record {
            action: "push".to_owned(),
            media_type: "m".to_owned(),
            event: raw(json!({ "id": format!("e{n}") })),
        }
    }

    /// Waits for a durable append, as the registry does before the
    /// response.
    fn wait(appended: Result<Option<tokio::sync::oneshot::Receiver<Result<(), String>>>, String>) {
        if let Some(done) = appended.unwrap() {
            done.blocking_recv().unwrap().unwrap();
        }
    }

    fn raw(object: serde_json::Value) -> Box<RawValue> {
        serde_json::value::to_raw_value(&object).unwrap()
    }

    /// Returns the record of event `n` with a `pad` of `bytes` bytes.
    fn padded(n: u64, bytes: usize) -> Record {
        Record {
            event: raw(json!({ "id": format!("e{n}"), "pad": "x".repeat(bytes) })),
            ..record(n)
        }
    }

    fn ids(events: &[(u64, Record)]) -> Vec<String> {
        events.iter().map(|(_, r)| r.id()).collect()
    }

    #[test]
    fn close_appends_share_one_sync() {
        let dir = tempfile::tempdir().unwrap();
        let delay = Duration::from_millis(300);
        let sync = SyncPolicy::Always { delay };
        let outbox = Outbox::open(dir.path(), 1 << 30, sync, &["a".to_owned()]).unwrap();
        let syncs = || outbox.shared().syncs.load(Ordering::Relaxed);

        // The first append has no append before it, so it is synced at once.
        wait(outbox.append(vec![record(1)], true));
        assert_eq!(syncs(), 1);

        // The next two follow it closely, so the sync thread waits for the
        // second before it syncs the first.
        let second = outbox.append(vec![record(2)], true);
        let third = outbox.append(vec![record(3)], true);
        wait(second);
        wait(third);
        assert_eq!(syncs(), 2);
        let events = outbox.reader().read(0, 10).unwrap();
        assert_eq!(ids(&events), ["e1", "e2", "e3"]);
    }

    #[test]
    fn interval_sync_follows_the_write() {
        let dir = tempfile::tempdir().unwrap();
        let sync = SyncPolicy::Interval(Duration::from_millis(50));
        let outbox = Outbox::open(dir.path(), 1 << 30, sync, &["a".to_owned()]).unwrap();
        let syncs = || outbox.shared().syncs.load(Ordering::Relaxed);

        // Acknowledged once written: readers see it before any sync.
        wait(outbox.append(vec![record(1)], true));
        let events = outbox.reader().read(0, 10).unwrap();
        assert_eq!(ids(&events), ["e1"]);

        let deadline = Instant::now() + Duration::from_secs(10);
        while syncs() == 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(syncs(), 1);
        // Nothing new was written, so no further sync follows.
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(syncs(), 1);
    }

    #[test]
    fn flush_syncs_unsynced_writes() {
        let dir = tempfile::tempdir().unwrap();
        let sync = SyncPolicy::Interval(Duration::from_secs(60));
        let outbox = Outbox::open(dir.path(), 1 << 30, sync, &["a".to_owned()]).unwrap();
        wait(outbox.append(vec![record(1)], false));
        assert_eq!(outbox.shared().syncs.load(Ordering::Relaxed), 0);

        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(outbox.flush()).unwrap();
        assert_eq!(outbox.shared().syncs.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn failed_write_moves_to_a_new_segment() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = open(dir.path(), 1 << 30, &["a".to_owned()]).unwrap();
        wait(outbox.append(vec![record(1)], true));
        let segment = list_segments(dir.path()).unwrap().remove(0);
        let set_file = |file: File| std::mem::replace(&mut outbox.log.lock().unwrap().file, file);

        // A write that leaves nothing behind keeps the segment.
        let writable = set_file(File::open(&segment.path).unwrap());
        assert!(outbox.append(vec![record(2)], true).is_err());
        set_file(writable);
        wait(outbox.append(vec![record(3)], true));
        assert_eq!(list_segments(dir.path()).unwrap().len(), 1);

        // A write that fails after part of a line starts a new segment, so
        // that no later line follows the partial one.
        let writable = set_file(File::open(&segment.path).unwrap());
        let mut partial = OpenOptions::new().append(true).open(&segment.path).unwrap();
        partial.write_all(b"{\"seq\":4,").unwrap();
        assert!(outbox.append(vec![record(4)], true).is_err());
        drop(writable);
        wait(outbox.append(vec![record(5)], true));
        assert_eq!(list_segments(dir.path()).unwrap().len(), 2);

        let events = outbox.reader().read(0, 10).unwrap();
        assert_eq!(ids(&events), ["e1", "e3", "e5"]);
        assert_eq!(events[2].0, 5);
    }

    #[test]
    fn lone_append_is_synced_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let delay = Duration::from_secs(60);
        let sync = SyncPolicy::Always { delay };
        let outbox = Outbox::open(dir.path(), 1 << 30, sync, &["a".to_owned()]).unwrap();
        let started = Instant::now();
        wait(outbox.append(vec![record(1)], true));
        // Far below the delay: the append did not wait for others.
        assert!(started.elapsed() < Duration::from_secs(30));
        assert_eq!(outbox.shared().syncs.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn appends_read_back_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = open(dir.path(), 1 << 30, &["a".to_owned()]).unwrap();
        for n in 1..=5 {
            wait(outbox.append(vec![record(n)], true));
        }
        let mut reader = outbox.reader();
        let events = reader.read(0, 3).unwrap();
        assert_eq!(ids(&events), ["e1", "e2", "e3"]);
        let events = reader.read(3, 10).unwrap();
        assert_eq!(ids(&events), ["e4", "e5"]);
        assert!(reader.read(5, 10).unwrap().is_empty());
    }

    #[test]
    fn reopen_continues_sequence_and_cursor() {
        let dir = tempfile::tempdir().unwrap();
        let names = ["a".to_owned()];
        {
            let outbox = open(dir.path(), 1 << 30, &names).unwrap();
            wait(outbox.append(vec![record(1)], true));
            wait(outbox.append(vec![record(2)], true));
            outbox.advance("a", 1).unwrap();
        }
        // A torn write: half a line at the end.
        let segment = list_segments(dir.path()).unwrap().pop().unwrap();
        let mut file = OpenOptions::new().append(true).open(&segment.path).unwrap();
        file.write_all(b"{\"seq\":3,\"act").unwrap();

        let outbox = open(dir.path(), 1 << 30, &names).unwrap();
        assert_eq!(outbox.shared().last_seq.load(Ordering::Relaxed), 2);
        assert_eq!(outbox.shared().cursor("a").seq.load(Ordering::Relaxed), 1);
        wait(outbox.append(vec![record(3)], true));
        let events = outbox.reader().read(1, 10).unwrap();
        assert_eq!(ids(&events), ["e2", "e3"]);
        assert_eq!(events[1].0, 3);
    }

    #[test]
    fn new_endpoint_starts_at_newest_event() {
        let dir = tempfile::tempdir().unwrap();
        {
            let outbox = open(dir.path(), 1 << 30, &["a".to_owned()]).unwrap();
            wait(outbox.append(vec![record(1)], true));
        }
        let names = ["a".to_owned(), "b".to_owned()];
        let outbox = open(dir.path(), 1 << 30, &names).unwrap();
        assert_eq!(outbox.shared().cursor("a").seq.load(Ordering::Relaxed), 0);
        assert_eq!(outbox.shared().cursor("b").seq.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn bound_drops_oldest_segment_and_counts() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = open(dir.path(), 6 << 20, &["a".to_owned()]).unwrap();
        let mut n = 0;
        // About 12 MiB of events, three segments' worth, nothing delivered.
        while n < 190 {
            n += 1;
            wait(outbox.append(vec![padded(n, 64 << 10)], false));
        }
        wait(outbox.append(vec![record(191)], true));
        // Each append applies the bound after its write.
        let size = || -> u64 {
            list_segments(dir.path())
                .unwrap()
                .iter()
                .map(|s| s.size)
                .sum()
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while size() > 6 << 20 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let total = size();
        assert!(total <= 6 << 20, "outbox takes {total} bytes");
        let cursor = outbox.shared().cursor("a");
        let dropped = cursor.dropped.load(Ordering::Relaxed);
        assert!(dropped > 0);
        assert_eq!(cursor.seq.load(Ordering::Relaxed), dropped);
        let events = outbox.reader().read(dropped, 1).unwrap();
        assert_eq!(events[0].0, dropped + 1);
    }

    #[test]
    fn delivered_segments_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = open(dir.path(), 1 << 30, &["a".to_owned()]).unwrap();
        for n in 1..=130 {
            wait(outbox.append(vec![padded(n, 64 << 10)], n == 130));
        }
        assert!(list_segments(dir.path()).unwrap().len() >= 2);
        outbox.advance("a", 130).unwrap();
        wait(outbox.append(vec![record(131)], true));
        // The sync thread removes segments after the cursor moves.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while list_segments(dir.path()).unwrap().len() > 1 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(list_segments(dir.path()).unwrap().len(), 1);
    }

    #[test]
    fn partial_line_in_older_segment_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let names = ["a".to_owned()];
        {
            // A 1 MiB bound makes segments of 256 KiB.
            let outbox = open(dir.path(), 1 << 20, &names).unwrap();
            for n in 1..=40 {
                wait(outbox.append(vec![padded(n, 16 << 10)], n == 40));
            }
        }
        let segments = list_segments(dir.path()).unwrap();
        assert!(segments.len() >= 2, "{} segments", segments.len());
        let older = &segments[segments.len() - 2];
        let file = OpenOptions::new().write(true).open(&older.path).unwrap();
        file.set_len(older.size - 100).unwrap();

        let outbox = open(dir.path(), 1 << 20, &names).unwrap();
        let events = outbox.reader().read(0, 100).unwrap();
        let seqs: Vec<u64> = events.iter().map(|(seq, _)| *seq).collect();
        let newest_first = segments.last().unwrap().first;
        assert!(seqs.contains(&40), "the newest event is missing: {seqs:?}");
        assert!(
            !seqs.contains(&(newest_first - 1)),
            "the cut event was read"
        );
    }

    #[test]
    fn cursor_files_of_similar_names_stay_apart() {
        let dir = tempfile::tempdir().unwrap();
        let names = ["x".to_owned(), "x.tmp".to_owned()];
        let outbox = open(dir.path(), 1 << 30, &names).unwrap();
        for n in 1..=3 {
            wait(outbox.append(vec![record(n)], true));
        }
        outbox.advance("x", 3).unwrap();
        outbox.advance("x.tmp", 1).unwrap();
        drop(outbox);
        let outbox = open(dir.path(), 1 << 30, &names).unwrap();
        assert_eq!(outbox.shared().cursor("x").seq.load(Ordering::Relaxed), 3);
        assert_eq!(
            outbox.shared().cursor("x.tmp").seq.load(Ordering::Relaxed),
            1
        );
    }

    #[test]
    fn second_open_of_one_folder_fails() {
        let dir = tempfile::tempdir().unwrap();
        let names = ["a".to_owned()];
        let _first = open(dir.path(), 1 << 30, &names).unwrap();
        let error = open(dir.path(), 1 << 30, &names).unwrap_err();
        assert!(
            error.to_string().contains("locked by another process"),
            "{error}"
        );
    }

    #[test]
    fn invalid_cursor_names_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let names = ["a".to_owned()];
        drop(open(dir.path(), 1 << 30, &names).unwrap());
        fs::write(dir.path().join("cursors/a"), "abc").unwrap();
        let error = open(dir.path(), 1 << 30, &names).unwrap_err();
        assert!(error.to_string().contains("cursors/a"), "{error}");
    }
}
