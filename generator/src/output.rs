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
    if !out.exists() {
        d.added = files.iter().map(|f| f.path.clone()).collect();
        d.added.sort();
        d.added.dedup();
        return Ok(d);
    }
    let wanted: BTreeMap<&str, &str> = files
        .iter()
        .map(|f| (f.path.as_str(), f.content.as_str()))
        .collect();
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

/// Opens the file or directory at `path` and fsyncs it.
fn fsync_path(path: &Path) -> io::Result<()> {
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
    write_stat(out, files).map(|(d, _)| d)
}

/// [`write`], and the stat data of each file it created, taken from the
/// open file once written (in `files`' order; `None` for a file linked
/// from the old tree, whose ctime the old tree's removal changes; empty
/// when nothing was written).
pub fn write_stat(
    out: &Path,
    files: &[OutputFile],
) -> Result<(TreeDiff, Vec<Option<fs::Metadata>>), OutputError> {
    if out.exists() {
        let is_ours = out.join(MANIFEST).is_file();
        let is_empty_dir = out.is_dir() && fs::read_dir(out).map_err(io_err(out))?.next().is_none();
        if !is_ours && !is_empty_dir {
            return Err(OutputError::Foreign(out.to_path_buf()));
        }
    }
    let d = diff(out, files)?;
    if d.is_empty() && out.is_dir() {
        return Ok((d, Vec::new()));
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
    let result =
        build_tree(out, &tmp, files).and_then(|stats| swap_in(out, &tmp, &parent).map(|()| stats));
    if result.is_err() {
        let _ = fs::remove_dir_all(&tmp);
    }
    result.map(|stats| (d, stats))
}

type Stats = Vec<Option<fs::Metadata>>;

fn build_tree(out: &Path, tmp: &Path, files: &[OutputFile]) -> Result<Stats, OutputError> {
    fs::create_dir(tmp).map_err(io_err(tmp))?;
    fs::set_permissions(tmp, fs::Permissions::from_mode(0o755)).map_err(io_err(tmp))?;
    // The files' directories, each once (files of one directory are
    // mostly side by side, and compared as text, not path components).
    let mut parents: Vec<&str> = Vec::new();
    for f in files {
        let parent = f.path.rsplit_once('/').map_or("", |(dir, _)| dir);
        if parents.last() != Some(&parent) {
            parents.push(parent);
        }
    }
    parents.sort_unstable();
    parents.dedup();
    let dirs: std::collections::BTreeSet<PathBuf> = parents
        .iter()
        .map(|p| {
            if p.is_empty() {
                tmp.to_path_buf()
            } else {
                tmp.join(p)
            }
        })
        .collect();
    for dir in &dirs {
        fs::create_dir_all(dir).map_err(io_err(dir))?;
    }
    // Each file is created relative to its directory's descriptor: no
    // walk of the whole path for each of thousands of files.
    let parent_fds = parents
        .iter()
        .map(|p| {
            let dir = if p.is_empty() {
                tmp.to_path_buf()
            } else {
                tmp.join(p)
            };
            fs::File::open(&dir).map(|d| (*p, d)).map_err(io_err(&dir))
        })
        .collect::<Result<Vec<_>, OutputError>>()?;
    let tmp_dir = TmpDir {
        path: tmp,
        parents: &parent_fds,
    };
    crate::phase!("write: directories made");
    let durable = needs_sync(tmp).map_err(io_err(tmp))?;
    // How the tree will be made durable, chosen before it is written (see
    // `quiet_enough_for_syncfs`): the first pass starts each file's
    // write-back only when each file will be fsynced.
    let durability = durable.then(|| {
        let own: u64 = files.iter().map(|f| pages_of(f.content.len())).sum();
        let meminfo = fs::read_to_string("/proc/meminfo").unwrap_or_default();
        if quiet_enough_for_syncfs(&meminfo, own) {
            Durability::Syncfs
        } else {
            Durability::EachFile
        }
    });
    let how = WriteHow {
        // In a cold run there is no old tree to link unchanged files from.
        old_tree: out.is_dir(),
        // Files are created with mode 0644; only a umask that takes bits
        // from it needs a chmod of each.
        chmod: current_umask() & FILE_MODE != 0,
        kick: matches!(durability, Some(Durability::EachFile)),
    };
    // Every file is independent and the tree is invisible until the swap,
    // so files are written on all cores in any order.
    let Some(durability) = durability else {
        return crate::par::map(files, |f| write_one(out, &tmp_dir, f, &how))
            .into_iter()
            .collect::<Result<Stats, OutputError>>();
    };
    // The new tree must be durable before it is swapped in. Two passes.
    // The first writes every file on all cores. The second waits for the
    // tree, in one of two ways (see `quiet_enough_for_syncfs`): one
    // syncfs(2) of the file system when little else is waiting to be
    // written, or else an fsync of each file and then each directory,
    // from many threads, which waits for this tree's data only. For the
    // fsyncs, the first pass starts each file's write-back at once
    // (sync_file_range); before a syncfs it does not: submitting each
    // file's write on its own took longer than the one syncfs that
    // writes them all (2,202 files on this VM's ext4: 57-75 ms writing
    // and 2.5 ms syncing, against 28-35 and 17-21 ms).
    //
    // The fsyncs wait for the whole first pass: only then are the files'
    // inodes and directory blocks final. An fsync while other files of
    // the same directory and inode-table block are still being created
    // writes those blocks again (on ext4 without a journal, 10,700 writes
    // and 1,500 cache flushes against 6,600 and 350 for 1,000 apps).
    // fsync mostly waits for the device, so many threads let the waits
    // overlap and their cache flushes merge.
    let stats = crate::par::map(files, |f| write_one(out, &tmp_dir, f, &how))
        .into_iter()
        .collect::<Result<Stats, OutputError>>()?;
    crate::phase!("write: files written");
    let mut all_dirs: Vec<&Path> = dirs.iter().map(PathBuf::as_path).collect();
    for d in &dirs {
        let mut p = d.parent();
        while let Some(a) = p
            && a.starts_with(tmp)
            && a != tmp
        {
            all_dirs.push(a);
            p = a.parent();
        }
    }
    all_dirs.push(tmp);
    all_dirs.sort();
    all_dirs.dedup();
    make_durable(tmp, files, &all_dirs, durability)?;
    crate::phase!("write: files and directories synced");
    Ok(stats)
}

/// How the second pass of a durable write waits for the new tree.
#[derive(Debug, Clone, Copy)]
enum Durability {
    /// One syncfs(2): every dirty inode of the file system, and one cache
    /// flush (95 ms for the 1,000-app tree on this VM's disk).
    Syncfs,
    /// An fsync of each file and directory (121 ms: one cache flush each,
    /// merged when they come together).
    EachFile,
}

/// The bytes of page cache a file of `len` bytes takes.
fn pages_of(len: usize) -> u64 {
    (len as u64).div_ceil(4096) * 4096
}

/// Whether a syncfs(2) can make the new tree durable without waiting for
/// much of other processes' data: the system's dirty and under-write-back
/// pages (`meminfo`, `/proc/meminfo` read before the tree is written,
/// every file system's) are at most the new tree's own (`own` bytes, the
/// page cache its files will take), so syncfs writes at most as much else
/// as it writes of the tree. Unknown: no.
fn quiet_enough_for_syncfs(meminfo: &str, own: u64) -> bool {
    let kib = |key: &str| {
        meminfo.lines().find_map(|l| {
            let v = l.strip_prefix(key)?.strip_prefix(':')?.trim();
            v.strip_suffix("kB")?.trim().parse::<u64>().ok()
        })
    };
    match (kib("Dirty"), kib("Writeback")) {
        (Some(d), Some(w)) => (d + w).saturating_mul(1024) <= own,
        _ => false,
    }
}

/// Waits until every file written under `tmp` and every directory in
/// `dirs` is on stable storage, as `how` says.
fn make_durable(
    tmp: &Path,
    files: &[OutputFile],
    dirs: &[&Path],
    how: Durability,
) -> Result<(), OutputError> {
    match how {
        Durability::Syncfs => {
            let dir = fs::File::open(tmp).map_err(io_err(tmp))?;
            // SAFETY: the descriptor is valid for the duration of the call.
            if unsafe { libc::syncfs(std::os::fd::AsRawFd::as_raw_fd(&dir)) } != 0 {
                return Err(io_err(tmp)(io::Error::last_os_error()));
            }
            Ok(())
        }
        Durability::EachFile => sync_all(files.len() + dirs.len(), |i| match files.get(i) {
            Some(f) => tmp.join(&f.path),
            None => dirs[i - files.len()].to_path_buf(),
        }),
    }
}

/// Threads that fsync the new tree's files and directories. fsync mostly
/// waits (for the write-back and the device's cache flush), so far more
/// threads than cores: 64 took 22 ms for 1,000 apps where 16 took 32.
const SYNC_THREADS: usize = 64;

/// fsyncs the files and directories at `path(i)` for `i` in `0..n`, from
/// [`SYNC_THREADS`] threads; the first error.
///
/// Each is opened again: a file kept open from its writing would save the
/// lookup, but a threaded process's descriptor table grows only after an
/// RCU grace period (ms each time it doubles); 1,000 apps took 10 ms more.
fn sync_all(n: usize, path: impl Fn(usize) -> PathBuf + Sync) -> Result<(), OutputError> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failed = std::sync::Mutex::new(None);
    let stop = std::sync::atomic::AtomicBool::new(false);
    let threads = SYNC_THREADS.min(n);
    std::thread::scope(|s| {
        for _ in 0..threads {
            let work = || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= n {
                        return;
                    }
                    if let Err(source) = fsync_path(&path(i)) {
                        let mut first = failed.lock().expect("no fsync thread panics");
                        first.get_or_insert(OutputError::Io {
                            path: path(i),
                            source,
                        });
                        stop.store(true, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            };
            // Each thread only waits on a syscall: a small stack will do.
            std::thread::Builder::new()
                .stack_size(64 * 1024)
                .spawn_scoped(s, work)
                .map(drop)
                .unwrap_or_else(|_| work());
        }
    });
    match failed.into_inner().expect("no fsync thread panics") {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// The new tree being built, with a descriptor of each directory that
/// holds files (sorted by their path relative to the tree).
struct TmpDir<'a> {
    path: &'a Path,
    parents: &'a [(&'a str, fs::File)],
}

impl TmpDir<'_> {
    /// Creates the file at `rel` (a path relative to the tree, whose
    /// directory is one of `parents`), write-only, mode [`FILE_MODE`]
    /// before the umask; it must not exist yet.
    fn create(&self, rel: &str) -> io::Result<fs::File> {
        use std::os::fd::{AsRawFd, FromRawFd};
        let (dir, name) = rel.rsplit_once('/').unwrap_or(("", rel));
        let i = self
            .parents
            .binary_search_by(|(p, _)| (*p).cmp(dir))
            .map_err(|_| io::Error::from(io::ErrorKind::NotFound))?;
        let name = CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        // SAFETY: the directory descriptor is open for the call and the
        // name is a valid NUL-terminated string.
        let fd = unsafe {
            libc::openat(
                self.parents[i].1.as_raw_fd(),
                name.as_ptr(),
                libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_CLOEXEC,
                FILE_MODE as libc::c_uint,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just opened and is owned by nothing else.
        Ok(unsafe { fs::File::from_raw_fd(fd) })
    }
}

/// How [`write_one`] writes a file.
struct WriteHow {
    old_tree: bool,
    chmod: bool,
    /// Start each file's write-back as soon as it is written (for the
    /// fsyncs of [`Durability::EachFile`]).
    kick: bool,
}

/// The process's umask, read without changing it (`/proc/self/status`);
/// when that cannot be read, assume one that needs the chmod.
fn current_umask() -> u32 {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Umask:"))
                .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
        })
        .unwrap_or(0o777)
}

/// Whether files written under `dir` need syncing to survive a crash:
/// not on tmpfs or ramfs, which a crash empties anyway.
fn needs_sync(dir: &Path) -> io::Result<bool> {
    let c = CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: statfs is plain data; the path is a valid C string.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are valid for the call.
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    const TMPFS_MAGIC: i64 = 0x0102_1994;
    const RAMFS_MAGIC: i64 = 0x8584_58f6;
    #[allow(clippy::unnecessary_cast)]
    let kind = st.f_type as i64;
    Ok(kind != TMPFS_MAGIC && kind != RAMFS_MAGIC)
}

/// Writes one file of the new tree, hard-linking it from the old tree when
/// its content is unchanged (so its inode and mtime stay). Returns its
/// stat data once written, unless it was linked from the old tree.
fn write_one(
    out: &Path,
    tmp: &TmpDir,
    f: &OutputFile,
    how: &WriteHow,
) -> Result<Option<fs::Metadata>, OutputError> {
    let dest = || tmp.path.join(&f.path);
    // The file's path in the old tree, when it is there as written.
    let unchanged = how
        .old_tree
        .then(|| out.join(&f.path))
        .filter(|old| as_written(old, &f.content).unwrap_or(false));
    if let Some(old) = &unchanged
        && fs::hard_link(old, dest()).is_ok()
    {
        return Ok(None);
    }
    let mut file = tmp.create(&f.path).map_err(|e| io_err(&dest())(e))?;
    file.write_all(f.content.as_bytes())
        .map_err(|e| io_err(&dest())(e))?;
    if how.chmod {
        file.set_permissions(fs::Permissions::from_mode(FILE_MODE))
            .map_err(|e| io_err(&dest())(e))?;
    }
    if let Some(old) = &unchanged {
        // Hard link refused (another file system?): keep the old mtime.
        if let Ok(m) = fs::metadata(old).and_then(|m| m.modified()) {
            let _ = file.set_modified(m);
        }
    }
    if how.kick {
        // Start the write-back now; build_tree waits for it (fsync) once
        // every file is in.
        // SAFETY: the descriptor is valid for the duration of the call.
        unsafe {
            libc::sync_file_range(
                std::os::fd::AsRawFd::as_raw_fd(&file),
                0,
                0,
                libc::SYNC_FILE_RANGE_WRITE,
            );
        }
    }
    // Nothing changes the file after this: a later edit by another
    // process changes its ctime, so the record sees it.
    let stat = file.metadata().ok();
    Ok(stat)
}

fn swap_in(out: &Path, tmp: &Path, parent: &Path) -> Result<(), OutputError> {
    if out.exists() {
        match exchange(tmp, out) {
            Ok(()) => {
                fsync_path(parent).map_err(io_err(parent))?;
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
                fsync_path(parent).map_err(io_err(parent))?;
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
        fsync_path(parent).map_err(io_err(parent))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, content: &str) -> OutputFile {
        OutputFile::new(path.into(), content.into())
    }

    fn tree(generation: usize) -> Vec<OutputFile> {
        let mut files: Vec<OutputFile> = (0..40)
            .map(|i| file(&format!("d{}/f{i}", i % 3), &format!("{generation}\n")))
            .collect();
        files.push(file(MANIFEST, &format!("{generation}\n")));
        files
    }

    /// What a reader finds in OUT: the generations its files come from.
    /// It opens OUT once and reads every file through that directory, as a
    /// reader that must see one tree does (paths looked up through OUT
    /// again and again may straddle a swap).
    fn generations(out: &Path) -> BTreeMap<String, usize> {
        let mut seen = BTreeMap::new();
        let Ok(root) = fs::File::open(out) else {
            return seen;
        };
        let at = PathBuf::from(format!(
            "/proc/self/fd/{}",
            std::os::fd::AsRawFd::as_raw_fd(&root)
        ));
        for f in tree(0) {
            if let Ok(text) = fs::read_to_string(at.join(&f.path)) {
                *seen.entry(text).or_insert(0) += 1;
            }
        }
        seen
    }

    #[test]
    fn a_reader_sees_the_old_tree_or_the_new_one_never_a_mix() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        write(&out, &tree(0)).unwrap();
        let done = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|s| {
            let reader = s.spawn(|| {
                let mut reads = 0;
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    let seen = generations(&out);
                    // The swap is one rename: the files of one generation
                    // (fewer once the replaced tree is being removed).
                    assert!(seen.len() <= 1, "a mix of trees: {seen:?}");
                    reads += usize::from(seen.values().sum::<usize>() == 41);
                }
                reads
            });
            for g in 1..30 {
                write(&out, &tree(g)).unwrap();
            }
            done.store(true, std::sync::atomic::Ordering::Relaxed);
            assert!(reader.join().unwrap() > 0);
        });
    }

    #[test]
    fn syncfs_only_when_little_else_waits_to_be_written() {
        let info = |dirty: u64, wb: u64| {
            format!(
                "MemFree:  100 kB\nDirty:  {dirty} kB\nWriteback:  {wb} kB\nWritebackTmp:  9999 kB\n"
            )
        };
        let own = 1000 * 4096;
        assert!(quiet_enough_for_syncfs(&info(0, 0), own));
        assert!(quiet_enough_for_syncfs(&info(2000, 0), own));
        assert!(quiet_enough_for_syncfs(&info(2000, 2000), own));
        assert!(!quiet_enough_for_syncfs(&info(2000, 2001), own));
        assert!(!quiet_enough_for_syncfs(&info(100_000, 0), own));
        // Unreadable or unknown: each file is fsynced.
        assert!(!quiet_enough_for_syncfs("", own));
        assert!(!quiet_enough_for_syncfs("Dirty: 1 kB\n", own));
        assert_eq!(pages_of(0), 0);
        assert_eq!(pages_of(1), 4096);
        assert_eq!(pages_of(4097), 8192);
    }

    #[test]
    fn both_ways_of_making_the_tree_durable_succeed() {
        for how in [Durability::Syncfs, Durability::EachFile] {
            let dir = tempfile::tempdir().unwrap();
            let files = tree(0);
            let mut dirs = vec![dir.path().to_path_buf()];
            let mut parents: Vec<(&str, fs::File)> = Vec::new();
            for f in &files {
                let p = dir.path().join(&f.path);
                fs::create_dir_all(p.parent().unwrap()).unwrap();
                dirs.push(p.parent().unwrap().to_path_buf());
                let rel = f.path.rsplit_once('/').map_or("", |(d, _)| d);
                if !parents.iter().any(|(d, _)| *d == rel) {
                    parents.push((rel, fs::File::open(p.parent().unwrap()).unwrap()));
                }
            }
            parents.sort_by(|a, b| a.0.cmp(b.0));
            // Written as `build_tree` writes them: the write-back of each
            // started at once before the fsyncs, not before a syncfs.
            let tmp = TmpDir {
                path: dir.path(),
                parents: &parents,
            };
            let write_how = WriteHow {
                old_tree: false,
                chmod: false,
                kick: matches!(how, Durability::EachFile),
            };
            for f in &files {
                let stat = write_one(Path::new("/nonexistent"), &tmp, f, &write_how).unwrap();
                assert_eq!(stat.map(|m| m.len()), Some(f.content.len() as u64));
            }
            dirs.sort();
            dirs.dedup();
            let dirs: Vec<&Path> = dirs.iter().map(PathBuf::as_path).collect();
            make_durable(dir.path(), &files, &dirs, how).unwrap();
            for f in &files {
                assert_eq!(
                    fs::read_to_string(dir.path().join(&f.path)).unwrap(),
                    f.content
                );
            }
            // A directory that is not there fails either way.
            let gone = dir.path().join("gone");
            assert!(
                make_durable(&gone, &[], &[], Durability::Syncfs).is_err(),
                "{how:?}"
            );
            assert!(make_durable(&gone, &[], &[&gone], Durability::EachFile).is_err());
        }
    }

    #[test]
    fn an_fsync_that_fails_is_reported_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = |i: usize| dir.path().join(format!("f{i}"));
        for i in 0..300 {
            fs::write(path(i), "x").unwrap();
        }
        assert!(sync_all(300, path).is_ok());
        // The 200th is gone: its open fails, whichever thread takes it.
        fs::remove_file(path(200)).unwrap();
        match sync_all(300, path) {
            Err(OutputError::Io { path: p, source }) => {
                assert_eq!(p, path(200));
                assert_eq!(source.kind(), io::ErrorKind::NotFound);
            }
            other => panic!("expected the missing file's error, got {other:?}"),
        }
    }

    #[test]
    fn a_failed_write_leaves_the_old_tree_whole_and_nothing_beside_it() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        write(&out, &tree(0)).unwrap();
        // `d0` cannot be both a file and a directory: the new tree fails
        // part way, after some of its files were written.
        let mut bad = tree(1);
        bad.push(file("d0", "1\n"));
        bad.sort_by(|a, b| a.path.cmp(&b.path));
        assert!(write(&out, &bad).is_err());
        assert_eq!(generations(&out), BTreeMap::from([("0\n".to_string(), 41)]));
        let beside: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(beside, ["out"]);
    }
}
