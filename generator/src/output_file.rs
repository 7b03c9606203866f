//! One generated file: what every emitter returns and `output` writes.
//! A leaf: it imports nothing of ours, so emitters, the generation
//! manifest and the writer can all use it without reaching into each other.

/// One generated file, path relative to the output directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputFile {
    pub path: String,
    pub content: String,
}
