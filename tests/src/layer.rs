//! Reading gzip-compressed tar layers, to compare what a client pushed with
//! what it built: the uncompressed digest (the image configuration's
//! `diff_id`) and the files inside.

use std::io::Read;

use flate2::read::GzDecoder;

use crate::sha256_digest;

/// Returns the sha256 digest of the uncompressed bytes of a gzip layer,
/// which the image configuration lists in `rootfs.diff_ids`.
///
/// # Panics
///
/// When the bytes are not valid gzip.
pub fn diff_id(gzip_layer: &[u8]) -> String {
    sha256_digest(&gunzip(gzip_layer))
}

/// Returns the content of the regular file at `path` (relative, without a
/// leading `./` or `/`) in a gzip tar layer, or `None` when the layer has
/// no such file.
///
/// # Panics
///
/// When the bytes are not a valid gzip tar archive.
pub fn file_in_layer(gzip_layer: &[u8], path: &str) -> Option<Vec<u8>> {
    let tar = gunzip(gzip_layer);
    let mut archive = tar::Archive::new(tar.as_slice());
    let entries = archive
        .entries()
        .unwrap_or_else(|e| panic!("reading the layer as tar failed: {e}"));
    for entry in entries {
        let mut entry = entry.unwrap_or_else(|e| panic!("reading a tar entry failed: {e}"));
        let entry_path = entry
            .path()
            .unwrap_or_else(|e| panic!("a tar entry has an invalid path: {e}"))
            .to_string_lossy()
            .into_owned();
        let normalized = entry_path.trim_start_matches("./").trim_start_matches('/');
        if normalized == path && entry.header().entry_type().is_file() {
            let mut content = Vec::new();
            entry
                .read_to_end(&mut content)
                .unwrap_or_else(|e| panic!("reading {path} from the layer failed: {e}"));
            return Some(content);
        }
    }
    None
}

fn gunzip(gzip_layer: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::new();
    GzDecoder::new(gzip_layer)
        .read_to_end(&mut bytes)
        .unwrap_or_else(|e| panic!("decompressing the layer with gzip failed: {e}"));
    bytes
}
