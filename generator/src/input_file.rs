//! One input file as it was read: the path it was opened by, its metadata
//! taken (`fstat`) on the open file before its bytes were read, and the
//! sha256 of those bytes. A leaf like `output_file`: the model and the
//! templates fill it in, the no-op record (`record`) keeps it.

use std::fs::Metadata;
use std::io::Read;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct InputFile {
    pub path: PathBuf,
    pub meta: Metadata,
    /// Lower-case hex.
    pub sha256: String,
}

/// Opens `path`, takes its metadata, then reads it: a change after the
/// metadata was taken shows in the file's ctime (or is within the same
/// timestamp tick, which the record treats as uncertain).
pub fn read(path: &Path) -> std::io::Result<(InputFile, Vec<u8>)> {
    let mut file = std::fs::File::open(path)?;
    let meta = file.metadata()?;
    let bytes = read_sized(&mut file, meta.len())?;
    let sha256 = crate::output_file::sha256_hex(&bytes);
    Ok((
        InputFile {
            path: path.to_path_buf(),
            meta,
            sha256,
        },
        bytes,
    ))
}

/// The rest of `file`, which its stat data said holds `len` bytes: read
/// into a buffer one byte larger, so that the read that finds the end
/// needs no second allocation (and not std's `read_to_end`, which asks
/// the file's size and position again, nor a buffer grown from empty,
/// copied and faulted in again at each doubling).
pub fn read_sized(file: &mut std::fs::File, len: u64) -> std::io::Result<Vec<u8>> {
    let mut bytes = vec![0; len as usize + 1];
    let mut filled = 0;
    loop {
        if filled == bytes.len() {
            // The file grew since its stat: read on.
            bytes.resize(filled * 2 + 1, 0);
        }
        match file.read(&mut bytes[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    bytes.truncate(filled);
    Ok(bytes)
}
