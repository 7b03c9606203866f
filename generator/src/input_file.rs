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
/// into a buffer one byte larger (not std's `read_to_end`, which asks the
/// file's size and position again, nor a buffer grown from empty, copied
/// and faulted in again at each doubling).
///
/// A read that stops short of the buffer's end, having brought the bytes
/// read to exactly `len`, is the end of the file: a regular file's read
/// returns fewer bytes than asked only at its end, so the usual second
/// read, which returns 0, is not made (1,000 inputs: 1,000 system calls
/// fewer). Should the file have grown between its stat and that read,
/// its ctime is later than the stat data the caller keeps, which is how
/// the no-op record tells a changed input (as for a change after the
/// last read).
pub fn read_sized(file: &mut std::fs::File, len: u64) -> std::io::Result<Vec<u8>> {
    let mut bytes = vec![0; len as usize + 1];
    let mut filled = 0;
    loop {
        if filled == bytes.len() {
            // The file grew since its stat: read on.
            bytes.resize(filled * 2 + 1, 0);
        }
        let asked = bytes.len() - filled;
        match file.read(&mut bytes[filled..]) {
            Ok(0) => break,
            Ok(n) => {
                filled += n;
                if n < asked && filled as u64 == len {
                    break;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    bytes.truncate(filled);
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::read_sized;
    use std::io::{Seek, Write};

    fn file_with(bytes: &[u8]) -> std::fs::File {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(bytes).unwrap();
        f.rewind().unwrap();
        f
    }

    #[test]
    fn a_file_of_its_stat_size_is_read_whole() {
        for text in [&b""[..], b"x", b"[container]\nimage = \"a\"\n"] {
            let mut f = file_with(text);
            assert_eq!(read_sized(&mut f, text.len() as u64).unwrap(), text);
        }
        // Larger than one read of the kernel's usual sizes.
        let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let mut f = file_with(&big);
        assert_eq!(read_sized(&mut f, big.len() as u64).unwrap(), big);
    }

    #[test]
    fn a_file_that_grew_or_shrank_since_its_stat_is_read_to_its_end() {
        let text = b"0123456789abcdef";
        // Grew: the stat said 4 bytes, the file holds 16.
        for len in [0, 4, 15] {
            let mut f = file_with(text);
            assert_eq!(read_sized(&mut f, len).unwrap(), text, "stat said {len}");
        }
        // Shrank: the stat said more than the file holds.
        let mut f = file_with(text);
        assert_eq!(read_sized(&mut f, 40).unwrap(), text);
    }
}
