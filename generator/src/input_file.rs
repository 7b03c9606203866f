//! One input file as it was read: the path it was opened by, its metadata
//! taken (`fstat`) on the open file before its bytes were read, and the
//! sha256 of those bytes. A leaf like `output_file`: the model and the
//! templates fill it in, the no-op record (`record`) keeps it.

use std::fs::Metadata;
use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

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
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.read_to_end(&mut bytes)?;
    let sha256 = hex::encode(Sha256::digest(&bytes));
    Ok((
        InputFile {
            path: path.to_path_buf(),
            meta,
            sha256,
        },
        bytes,
    ))
}
