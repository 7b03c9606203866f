//! Durable file operations, the one place that writes the agent's state:
//! every write goes to a temporary file beside its destination, is
//! fsynced, renamed over the old one, and the directory is fsynced, so a
//! reader (or the agent after a crash) sees the old or the new version,
//! never a torn one. A failed write removes its temporary file.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};

/// Seconds since the epoch.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A name for a temporary file beside `path`, unique in this process and
/// across processes: `.<name>.<what>-<pid>-<n>`.
fn temp_beside(path: &Path, what: &str) -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    let dir = path.parent().unwrap_or(Path::new("."));
    dir.join(format!(
        ".{}.{what}-{}-{}",
        path.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ))
}

/// fsyncs a directory (makes a rename or a new entry in it durable).
pub fn fsync_dir(d: &Path) -> std::io::Result<()> {
    fs::File::open(d)?.sync_all()
}

/// Appends one line to `path` and makes it durable (results logs).
pub fn append_line(path: &Path, line: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    let mut f = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    let mut buf = line.as_bytes().to_vec();
    buf.push(b'\n');
    f.write_all(&buf)?;
    f.sync_data()
}

/// Writes `bytes` to `path` atomically and durably. On error nothing is
/// left behind but the old file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_atomic_mode(path, bytes, 0o644)
}

/// [`write_atomic`], the file created with `mode` (less the umask).
pub fn write_atomic_mode(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    let tmp = temp_beside(path, "tmp");
    let res = (|| {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if res.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    res?;
    fsync_dir(dir)
}

/// Points symlink `link` at `target` atomically: a new link beside it,
/// renamed over it, directory fsynced.
pub fn swap_symlink(link: &Path, target: &Path) -> std::io::Result<()> {
    let dir = link.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    let tmp = temp_beside(link, "new");
    let res = std::os::unix::fs::symlink(target, &tmp).and_then(|()| fs::rename(&tmp, link));
    if res.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    res?;
    fsync_dir(dir)
}

/// Copies `from` to `to` (temp file, fsync, rename, fsync of the
/// directory and its parent), keeping its mode.
pub fn copy_durably(from: &Path, to: &Path) -> std::io::Result<()> {
    let dir = to.parent().unwrap_or(Path::new("/"));
    fs::create_dir_all(dir)?;
    let tmp = temp_beside(to, "copy");
    let res = (|| {
        fs::copy(from, &tmp)?;
        fs::File::open(&tmp)?.sync_all()?;
        fs::rename(&tmp, to)
    })();
    if res.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    res?;
    fsync_dir(dir)?;
    if let Some(up) = dir.parent() {
        fsync_dir(up)?;
    }
    Ok(())
}

/// The sha256 of a file's content, as lower-case hex.
pub fn sha256_file(p: &Path) -> std::io::Result<String> {
    use std::io::Read as _;
    let mut f = fs::File::open(p)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

/// Where a link points, as an absolute path (`None`: not a symlink).
pub fn link_target(link: &Path) -> Option<PathBuf> {
    let t = fs::read_link(link).ok()?;
    Some(if t.is_absolute() {
        t
    } else {
        link.parent().unwrap_or(Path::new("/")).join(t)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symlinks_swap_in_place() {
        let d = tempfile::tempdir().unwrap();
        let link = d.path().join("current");
        swap_symlink(&link, Path::new("a")).unwrap();
        swap_symlink(&link, Path::new("b")).unwrap();
        assert_eq!(fs::read_link(&link).unwrap(), Path::new("b"));
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_failed_atomic_write_leaves_the_old_file_and_no_temporary() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x.json");
        write_atomic(&p, b"old").unwrap();
        // A directory where the file should be: the rename fails.
        let q = d.path().join("dir.json");
        fs::create_dir(&q).unwrap();
        fs::write(q.join("inside"), b"").unwrap();
        assert!(write_atomic(&q, b"new").is_err());
        assert_eq!(fs::read(&p).unwrap(), b"old");
        let names: Vec<_> = fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .collect();
        assert!(
            names.iter().all(|n| !n.starts_with('.')),
            "temporary left: {names:?}"
        );
    }
}
