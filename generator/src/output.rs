//! Atomic, idempotent writing of an output tree.
//!
//! The whole tree is built in a temporary directory beside OUT and swapped
//! into place with one `renameat2(RENAME_EXCHANGE)`, so a reader sees the
//! old tree or the new one, never a mix. Files still as a run writes them
//! (the same bytes, a regular file of mode 0644) are hard-linked from the
//! old tree, so their mtime stays; a file chmod'ed or replaced by a symlink
//! counts as changed and is written again. A directory that
//! windlass did not write (no `windlass-generation.json`) is never replaced.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::fs;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use windlass_contract::MANIFEST;

use crate::output_file::OutputFile;

#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{0} exists and was not written by windlass (no {MANIFEST}); refusing to replace it")]
    Foreign(PathBuf),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> OutputError + '_ {
    move |source| OutputError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What differs between OUT and the files that would be written.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct TreeDiff {
    pub added: Vec<String>,
    pub changed: Vec<String>,
    pub removed: Vec<String>,
}

impl TreeDiff {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.changed.is_empty() && self.removed.is_empty()
    }
}

fn list_files(root: &Path, dir: &Path, out: &mut Vec<String>) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let ty = entry.file_type()?;
        let path = entry.path();
        if ty.is_dir() {
            list_files(root, &path, out)?;
        } else {
            out.push(
                path.strip_prefix(root)
                    .unwrap_or(&path)
                    .to_string_lossy()
                    .into_owned(),
            );
        }
    }
    Ok(())
}

/// The mode of every file a run writes.
pub const FILE_MODE: u32 = 0o644;

/// Whether `path` is what a cold run writes for `content`: a regular file
/// (not a symlink to one) of mode 0644 holding exactly these bytes. A file
/// chmod'ed or replaced by a link counts as changed, so that a run repairs
/// it as it repairs an edit.
fn as_written(path: &Path, content: &str) -> Result<bool, OutputError> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(io_err(path)(e)),
    };
    if !meta.is_file() || meta.permissions().mode() & 0o7777 != FILE_MODE {
        return Ok(false);
    }
    let old = fs::read(path).map_err(io_err(path))?;
    Ok(old == content.as_bytes())
}

/// Compares OUT with `files` without writing anything.
pub fn diff(out: &Path, files: &[OutputFile]) -> Result<TreeDiff, OutputError> {
    let mut d = TreeDiff::default();
    let wanted: BTreeMap<&str, &str> = files
        .iter()
        .map(|f| (f.path.as_str(), f.content.as_str()))
        .collect();
    if !out.exists() {
        d.added = wanted.keys().map(|s| s.to_string()).collect();
        return Ok(d);
    }
    let mut existing = Vec::new();
    list_files(out, out, &mut existing).map_err(io_err(out))?;
    existing.sort();
    for path in &existing {
        match wanted.get(path.as_str()) {
            None => d.removed.push(path.clone()),
            Some(content) => {
                if !as_written(&out.join(path), content)? {
                    d.changed.push(path.clone());
                }
            }
        }
    }
    for path in wanted.keys() {
        if !out.join(path).is_file() {
            d.added.push(path.to_string());
        }
    }
    Ok(d)
}

fn fsync_dir(path: &Path) -> io::Result<()> {
    fs::File::open(path)?.sync_all()
}

/// Atomically exchanges two paths (Linux `renameat2(RENAME_EXCHANGE)`).
fn exchange(a: &Path, b: &Path) -> io::Result<()> {
    let ca = CString::new(a.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let cb = CString::new(b.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: both pointers are valid NUL-terminated strings for the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_renameat2,
            libc::AT_FDCWD,
            ca.as_ptr(),
            libc::AT_FDCWD,
            cb.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Writes `files` as the tree at `out`. Returns what changed; when nothing
/// did, nothing is touched at all.
pub fn write(out: &Path, files: &[OutputFile]) -> Result<TreeDiff, OutputError> {
    if out.exists() {
        let is_ours = out.join(MANIFEST).is_file();
        let is_empty_dir = out.is_dir() && fs::read_dir(out).map_err(io_err(out))?.next().is_none();
        if !is_ours && !is_empty_dir {
            return Err(OutputError::Foreign(out.to_path_buf()));
        }
    }
    let d = diff(out, files)?;
    if d.is_empty() && out.is_dir() {
        return Ok(d);
    }
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&parent).map_err(io_err(&parent))?;
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    let tmp = parent.join(format!(".{name}.windlass-tmp-{}", std::process::id()));
    if tmp.exists() {
        fs::remove_dir_all(&tmp).map_err(io_err(&tmp))?;
    }
    let result = build_tree(out, &tmp, files).and_then(|()| swap_in(out, &tmp, &parent));
    if result.is_err() {
        let _ = fs::remove_dir_all(&tmp);
    }
    result.map(|()| d)
}

fn build_tree(out: &Path, tmp: &Path, files: &[OutputFile]) -> Result<(), OutputError> {
    fs::create_dir(tmp).map_err(io_err(tmp))?;
    fs::set_permissions(tmp, fs::Permissions::from_mode(0o755)).map_err(io_err(tmp))?;
    let dirs: std::collections::BTreeSet<PathBuf> = files
        .iter()
        .filter_map(|f| tmp.join(&f.path).parent().map(Path::to_path_buf))
        .collect();
    for dir in &dirs {
        fs::create_dir_all(dir).map_err(io_err(dir))?;
    }
    // File creation dominates on slow file systems; spread it over a few
    // threads. Each file is independent and the tree is invisible until the
    // swap, so the order does not matter.
    let threads = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(2, 8);
    let chunk = files.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = files
            .chunks(chunk)
            .map(|part| scope.spawn(move || part.iter().try_for_each(|f| write_one(out, tmp, f))))
            .collect();
        handles
            .into_iter()
            .try_for_each(|h| h.join().expect("writer thread panicked"))
    })?;
    // One syncfs(2) makes every file and directory of the new tree durable
    // before it is swapped in; far cheaper than an fsync per file.
    let root = fs::File::open(tmp).map_err(io_err(tmp))?;
    // SAFETY: the descriptor is valid for the duration of the call.
    if unsafe { libc::syncfs(std::os::fd::AsRawFd::as_raw_fd(&root)) } != 0 {
        return Err(OutputError::Io {
            path: tmp.to_path_buf(),
            source: io::Error::last_os_error(),
        });
    }
    Ok(())
}

/// Writes one file of the new tree, hard-linking it from the old tree when
/// its content is unchanged (so its inode and mtime stay).
fn write_one(out: &Path, tmp: &Path, f: &OutputFile) -> Result<(), OutputError> {
    let dest = tmp.join(&f.path);
    let old = out.join(&f.path);
    let unchanged = as_written(&old, &f.content).unwrap_or(false);
    if unchanged && fs::hard_link(&old, &dest).is_ok() {
        return Ok(());
    }
    let mut file = fs::File::create(&dest).map_err(io_err(&dest))?;
    file.write_all(f.content.as_bytes())
        .map_err(io_err(&dest))?;
    file.set_permissions(fs::Permissions::from_mode(FILE_MODE))
        .map_err(io_err(&dest))?;
    if unchanged {
        // Hard link refused (another file system?): keep the old mtime.
        if let Ok(m) = fs::metadata(&old).and_then(|m| m.modified()) {
            let _ = file.set_modified(m);
        }
    }
    Ok(())
}

fn swap_in(out: &Path, tmp: &Path, parent: &Path) -> Result<(), OutputError> {
    if out.exists() {
        match exchange(tmp, out) {
            Ok(()) => {
                fsync_dir(parent).map_err(io_err(parent))?;
                // `tmp` now holds the old tree.
                fs::remove_dir_all(tmp).map_err(io_err(tmp))?;
            }
            Err(e)
                if e.raw_os_error() == Some(libc::EINVAL)
                    || e.raw_os_error() == Some(libc::ENOSYS) =>
            {
                // File systems without RENAME_EXCHANGE: two renames.
                let old = tmp.with_extension("old");
                fs::rename(out, &old).map_err(io_err(out))?;
                fs::rename(tmp, out).map_err(io_err(out))?;
                fsync_dir(parent).map_err(io_err(parent))?;
                fs::remove_dir_all(&old).map_err(io_err(&old))?;
            }
            Err(e) => {
                return Err(OutputError::Io {
                    path: out.to_path_buf(),
                    source: e,
                });
            }
        }
    } else {
        fs::rename(tmp, out).map_err(io_err(out))?;
        fsync_dir(parent).map_err(io_err(parent))?;
    }
    Ok(())
}
