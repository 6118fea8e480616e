//! Small filesystem steps shared by the backend: atomic writes, optional
//! reads and removals, hashing a file. All of them block, so callers run
//! them on tokio's blocking pool.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::Path;

use crate::reference::{Algorithm, Digest};

/// Buffer size for hashing a stored file.
const HASH_BUFFER: usize = 1 << 20;

/// Writes `bytes` to `path` so that a reader sees the old content or the new
/// one, never a part: the bytes go to a file in `tmp`, are synced, and the
/// file is renamed over `path`. Creates missing parent folders.
pub fn write_atomic(tmp: &Path, path: &Path, bytes: &[u8]) -> io::Result<()> {
    let parent = path.parent().expect("storage paths have a parent");
    fs::create_dir_all(parent)?;
    fs::create_dir_all(tmp)?;

    let temporary = tmp.join(uuid::Uuid::new_v4().to_string());
    let result = (|| {
        let mut file = File::create(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&temporary, path)?;
        sync_dir(parent)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temporary);
    }
    result
}

/// Syncs a folder so that a rename or removal inside it survives a crash.
pub fn sync_dir(path: &Path) -> io::Result<()> {
    File::open(path)?.sync_all()
}

/// Reads a file, or returns `None` when it does not exist.
pub fn read_optional(path: &Path) -> io::Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Removes a file and returns whether it existed.
pub fn remove_optional(path: &Path) -> io::Result<bool> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Removes a folder and everything in it, if it exists.
pub fn remove_dir_optional(path: &Path) -> io::Result<()> {
    match fs::remove_dir_all(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Removes `path` and then each parent folder that it leaves empty, up to
/// but not including `stop`.
pub fn remove_file_and_empty_parents(path: &Path, stop: &Path) -> io::Result<bool> {
    let existed = remove_optional(path)?;
    let mut dir = path.parent();
    while let Some(current) = dir {
        if current == stop || !current.starts_with(stop) {
            break;
        }
        // Fails when the folder is not empty, which ends the walk.
        if fs::remove_dir(current).is_err() {
            break;
        }
        dir = current.parent();
    }
    Ok(existed)
}

/// Returns whether a path exists, treating errors other than "not found" as
/// failures.
pub fn exists(path: &Path) -> io::Result<bool> {
    match fs::symlink_metadata(path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Lists the names in a folder, or nothing when it does not exist.
pub fn list_dir(path: &Path) -> io::Result<Vec<String>> {
    let entries = match fs::read_dir(path) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut names = Vec::new();
    for entry in entries {
        if let Ok(name) = entry?.file_name().into_string() {
            names.push(name);
        }
    }
    Ok(names)
}

/// Hashes the first `len` bytes of a file with `algorithm`.
pub fn hash_file(path: &Path, algorithm: Algorithm, len: u64) -> io::Result<Digest> {
    let mut hasher = algorithm.hasher();
    let mut reader = File::open(path)?.take(len);
    let mut buffer = vec![0; HASH_BUFFER];
    loop {
        let n = reader.read(&mut buffer)?;
        if n == 0 {
            return Ok(hasher.finish());
        }
        hasher.update(&buffer[..n]);
    }
}
