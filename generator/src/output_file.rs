//! One generated file: what every emitter returns and `output` writes.
//! A leaf: it imports nothing of ours, so emitters, the generation
//! manifest and the writer can all use it without reaching into each other.

/// One generated file, path relative to the output directory, and the
/// SHA-256 of its content in hex (for the generation manifest and the
/// record).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputFile {
    pub path: String,
    pub content: String,
    pub sha256: String,
}

impl OutputFile {
    /// The file, hashed now, where it is made: the emitters make their
    /// files on all cores, so the hashes need no pass of their own over
    /// every text (as fast, measured: SHA-256 is bound by the core, not by
    /// reading the text again).
    pub fn new(path: String, content: String) -> Self {
        let sha256 = sha256_hex(content.as_bytes());
        OutputFile {
            path,
            content,
            sha256,
        }
    }

    /// The file, its hash left empty for the caller to set: for the
    /// generation manifest, the one large file made alone, whose hash
    /// (0.5 ms for 1,000 apps, serial) is taken while the tree is written
    /// (`Built::manifest_sha256`).
    pub fn unhashed(path: String, content: String) -> Self {
        OutputFile {
            path,
            content,
            sha256: String::new(),
        }
    }
}

/// The SHA-256 of `content`, in lower-case hex.
///
/// Encoded into a buffer at once (`hex::encode` pushes one `char` at a
/// time: a few thousand hashes a run made that measurable).
pub fn sha256_hex(content: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    let mut buf = [0u8; 64];
    hex::encode_to_slice(Sha256::digest(content), &mut buf)
        .expect("a SHA-256 is 32 bytes, 64 hex digits");
    String::from_utf8(buf.to_vec()).expect("hex digits are ASCII")
}
