//! Importing a generator output tree (Stage) without trusting it, and
//! verifying a stored generation before it is activated.
//!
//! The tree is read once, beneath a directory descriptor (the caller's,
//! passed over D-Bus, or one the agent opened): every listed file is
//! opened with `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)` (or, on
//! kernels without it, one `openat(O_NOFOLLOW)` per component), with
//! `O_NONBLOCK`, and must be a regular file by `fstat` before a byte is
//! read — no symlink, FIFO, socket or device is ever followed or read.
//! Reads are capped per file and per tree. The bytes go straight into the
//! agent's private staging directory (mode 0700 while it is written),
//! hashed as they are written, compared with the manifest, fsynced; modes
//! are normalised (files 0644, directories 0755) whatever the source or
//! the umask. Errors name the listed path that is wrong, never a hash or
//! a byte of what was read.
//!
//! Every listed path must be relative, with no empty, `.` or `..`
//! component, under one of [`TOP_DIRS`]; app names must be plain (they
//! become file names: `quadlet/<app>.container`, `releases/<app>.json`).

use std::collections::BTreeSet;
use std::ffi::CString;
use std::fs::{self, File};
use std::io::{self, Read as _, Write as _};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use sha2::{Digest, Sha256};

use crate::contract::{MANIFEST, Manifest};

/// The top-level directories a generator output tree lists files in.
pub const TOP_DIRS: &[&str] = &["quadlet", "systemd", "nixos", "guix"];

/// The dedup key of a stored generation: the sha256 of its manifest.
pub const KEY_FILE: &str = ".content-sha256";

/// Caps on what one Stage reads. Generator output is small text (unit
/// files, Nix and Guile modules); the caps are far above it and far below
/// what would exhaust the agent's memory or the state directory's disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of one listed file.
    pub file_bytes: u64,
    /// Bytes of the manifest (parsed in memory, so kept smaller).
    pub manifest_bytes: u64,
    /// Bytes of all listed files together.
    pub tree_bytes: u64,
    /// Files a manifest may list.
    pub files: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            file_bytes: 16 << 20,
            manifest_bytes: 4 << 20,
            tree_bytes: 256 << 20,
            files: 10_000,
        }
    }
}

/// Why a tree was not imported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportError {
    /// The tree is refused: the caller's input is wrong.
    Refused(String),
    /// The agent could not write its copy.
    Failed(String),
}

impl std::fmt::Display for ImportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ImportError::Refused(m) | ImportError::Failed(m) => f.write_str(m),
        }
    }
}

/// A listed path the agent may create: relative, no empty, `.` or `..`
/// component, under one of [`TOP_DIRS`].
pub fn check_path(p: &str) -> Result<(), String> {
    let parts: Vec<&str> = p.split('/').collect();
    if p.starts_with('/')
        || p.contains('\0')
        || parts
            .iter()
            .any(|c| c.is_empty() || *c == "." || *c == "..")
    {
        return Err(format!(
            "unsafe path {p:?} in {MANIFEST}: a listed path is relative, \
             with no empty, . or .. component"
        ));
    }
    if parts.len() < 2 || !TOP_DIRS.contains(&parts[0]) {
        return Err(format!(
            "path {p:?} in {MANIFEST} is not under quadlet/, systemd/, nixos/ or guix/"
        ));
    }
    Ok(())
}

/// An app name the agent may turn into file names: letters, digits, `-`,
/// `_` and `.`, not starting with `.`, at most 255 bytes.
pub fn check_app_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 255
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "app name {name:?} in {MANIFEST} is not plain \
             (letters, digits, - _ and ., not starting with .)"
        ))
    }
}

/// What a manifest must satisfy before any listed file is touched.
pub fn check_manifest(m: &Manifest, limits: &Limits) -> Result<(), String> {
    if m.files.len() > limits.files {
        return Err(format!(
            "{MANIFEST} lists {} files, more than the {} a tree may have",
            m.files.len(),
            limits.files
        ));
    }
    let mut seen = BTreeSet::new();
    for f in &m.files {
        check_path(&f.path)?;
        if !seen.insert(f.path.as_str()) {
            return Err(format!("{:?} is listed twice in {MANIFEST}", f.path));
        }
    }
    // A listed file is never also the directory of another.
    for f in &m.files {
        let mut dir = f.path.as_str();
        while let Some((parent, _)) = dir.rsplit_once('/') {
            if seen.contains(parent) {
                return Err(format!(
                    "{:?} is listed in {MANIFEST} both as a file and as a directory",
                    parent
                ));
            }
            dir = parent;
        }
    }
    for a in &m.apps {
        check_app_name(&a.name)?;
    }
    Ok(())
}

fn cstr(s: &[u8]) -> io::Result<CString> {
    CString::new(s).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

fn errno(r: libc::c_long) -> io::Result<RawFd> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r as RawFd)
    }
}

/// `struct open_how` (linux/openat2.h).
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// Set once `openat2` turned out to be missing (ENOSYS) or filtered
/// (EPERM): from then on the per-component walk is used.
static NO_OPENAT2: AtomicBool = AtomicBool::new(false);

fn openat2(dir: BorrowedFd<'_>, rel: &str, flags: libc::c_int) -> io::Result<OwnedFd> {
    let path = cstr(rel.as_bytes())?;
    let how = OpenHow {
        flags: (flags | libc::O_CLOEXEC) as u64,
        mode: 0,
        resolve: libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_NO_MAGICLINKS,
    };
    for _ in 0..16 {
        // SAFETY: openat2 with a NUL-terminated path and an open_how of
        // the size passed; the result is a new descriptor we own.
        let r = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dir.as_raw_fd(),
                path.as_ptr(),
                &how as *const OpenHow,
                std::mem::size_of::<OpenHow>(),
            )
        };
        match errno(r) {
            // SAFETY: a fresh descriptor from the kernel.
            Ok(fd) => return Ok(unsafe { OwnedFd::from_raw_fd(fd) }),
            // A rename elsewhere in the tree raced the lookup: try again.
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::from_raw_os_error(libc::EAGAIN))
}

fn openat(dir: BorrowedFd<'_>, name: &str, flags: libc::c_int) -> io::Result<OwnedFd> {
    let c = cstr(name.as_bytes())?;
    // SAFETY: openat with a NUL-terminated name; the result is a new
    // descriptor we own.
    let r = unsafe { libc::openat(dir.as_raw_fd(), c.as_ptr(), flags | libc::O_CLOEXEC) };
    // SAFETY: a fresh descriptor from the kernel.
    errno(r as libc::c_long).map(|fd| unsafe { OwnedFd::from_raw_fd(fd) })
}

fn is_symlink(dir: BorrowedFd<'_>, name: &str) -> bool {
    let Ok(c) = cstr(name.as_bytes()) else {
        return false;
    };
    // SAFETY: fstatat into a zeroed stat buffer we own.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        libc::fstatat(
            dir.as_raw_fd(),
            c.as_ptr(),
            &mut st,
            libc::AT_SYMLINK_NOFOLLOW,
        ) == 0
            && (st.st_mode & libc::S_IFMT) == libc::S_IFLNK
    }
}

/// The fallback: one `openat(O_NOFOLLOW)` per component (`rel` is
/// checked: no `..`, no empty component).
fn openat_walk(dir: BorrowedFd<'_>, rel: &str, flags: libc::c_int) -> io::Result<OwnedFd> {
    let mut parts: Vec<&str> = rel.split('/').collect();
    let last = parts.pop().unwrap_or_default();
    let mut cur: Option<OwnedFd> = None;
    for c in parts {
        if c == ".." || c.is_empty() {
            return Err(io::Error::from_raw_os_error(libc::EXDEV));
        }
        let base = cur.as_ref().map_or(dir, |d| d.as_fd());
        let next = openat(
            base,
            c,
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_NONBLOCK,
        )
        .map_err(|e| {
            // O_DIRECTORY answers ENOTDIR for a symlink: say ELOOP, as
            // openat2 does.
            if e.raw_os_error() == Some(libc::ENOTDIR) && is_symlink(base, c) {
                io::Error::from_raw_os_error(libc::ELOOP)
            } else {
                e
            }
        })?;
        cur = Some(next);
    }
    if last == ".." || last.is_empty() {
        return Err(io::Error::from_raw_os_error(libc::EXDEV));
    }
    let base = cur.as_ref().map_or(dir, |d| d.as_fd());
    openat(base, last, flags | libc::O_NOFOLLOW)
}

/// Opens `rel` beneath `dir` read-only, without following any symlink
/// and without blocking (FIFOs); `walk` forces the per-component fallback.
pub(crate) fn open_beneath_with(dir: BorrowedFd<'_>, rel: &str, walk: bool) -> io::Result<File> {
    let flags = libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOCTTY;
    if !walk && !NO_OPENAT2.load(Ordering::Relaxed) {
        match openat2(dir, rel, flags) {
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOSYS) | Some(libc::EPERM)) => {
                NO_OPENAT2.store(true, Ordering::Relaxed);
            }
            r => return r.map(File::from),
        }
    }
    openat_walk(dir, rel, flags).map(File::from)
}

fn kind(ft: &fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt as _;
    if ft.is_dir() {
        "a directory"
    } else if ft.is_fifo() {
        "a FIFO"
    } else if ft.is_socket() {
        "a socket"
    } else if ft.is_char_device() || ft.is_block_device() {
        "a device"
    } else if ft.is_symlink() {
        "a symbolic link"
    } else {
        "not a regular file"
    }
}

/// Opens listed file `rel` beneath `dir`: a regular file, no larger than
/// `max` bytes, or a refusal naming `rel` (and nothing read from it).
pub fn open_regular(dir: BorrowedFd<'_>, rel: &str, max: u64) -> Result<File, ImportError> {
    let refuse = |what: String| ImportError::Refused(format!("{rel}: {what}"));
    let f = open_beneath_with(dir, rel, false).map_err(|e| match e.raw_os_error() {
        Some(libc::ENOENT) => refuse(format!("listed in {MANIFEST} but not in the tree")),
        Some(libc::ELOOP) => refuse(
            "a symbolic link, or beneath one (only regular files and directories are imported)"
                .into(),
        ),
        Some(libc::EXDEV) => refuse("outside the tree".into()),
        Some(libc::ENOTDIR) => refuse("a component of its path is not a directory".into()),
        Some(libc::ENXIO) => refuse("not a regular file (a socket or a device)".into()),
        _ => refuse(format!("cannot open: {e}")),
    })?;
    let meta = f
        .metadata()
        .map_err(|e| refuse(format!("cannot stat: {e}")))?;
    if !meta.file_type().is_file() {
        return Err(refuse(format!(
            "{} (only regular files are imported)",
            kind(&meta.file_type())
        )));
    }
    if meta.len() > max {
        return Err(refuse(format!(
            "{} bytes, more than the {max} a file may have",
            meta.len()
        )));
    }
    Ok(f)
}

/// Reads a whole file of at most `max` bytes (a file growing past its cap
/// while read is refused too).
fn read_capped(mut f: File, rel: &str, max: u64) -> Result<Vec<u8>, ImportError> {
    let mut bytes = Vec::new();
    (&mut f)
        .take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| ImportError::Refused(format!("{rel}: cannot read: {e}")))?;
    if bytes.len() as u64 > max {
        return Err(ImportError::Refused(format!(
            "{rel}: more than the {max} bytes a file may have"
        )));
    }
    Ok(bytes)
}

/// Reads and checks the manifest beneath `dir`; returns its bytes too.
pub fn read_manifest(
    dir: BorrowedFd<'_>,
    limits: &Limits,
) -> Result<(Vec<u8>, Manifest), ImportError> {
    let f = open_regular(dir, MANIFEST, limits.manifest_bytes).map_err(|e| match e {
        ImportError::Refused(m) => {
            ImportError::Refused(format!("not a windlass generator output tree: {m}"))
        }
        other => other,
    })?;
    let bytes = read_capped(f, MANIFEST, limits.manifest_bytes)?;
    let m = Manifest::from_slice(&bytes).map_err(|e| ImportError::Refused(e.to_string()))?;
    check_manifest(&m, limits).map_err(ImportError::Refused)?;
    Ok((bytes, m))
}

/// Streams `src` (at most `max` bytes, and at most what `budget` has
/// left) into `out`, if any; returns the sha256 of the bytes.
fn hash_into(
    mut src: File,
    mut out: Option<&mut File>,
    rel: &str,
    max: u64,
    budget: &mut u64,
    tree_max: u64,
) -> Result<String, ImportError> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut got = 0u64;
    loop {
        let n = src
            .read(&mut buf)
            .map_err(|e| ImportError::Refused(format!("{rel}: cannot read: {e}")))?;
        if n == 0 {
            break;
        }
        got += n as u64;
        if got > max {
            return Err(ImportError::Refused(format!(
                "{rel}: more than the {max} bytes a file may have"
            )));
        }
        if n as u64 > *budget {
            return Err(ImportError::Refused(format!(
                "the tree has more than the {tree_max} bytes a tree may have"
            )));
        }
        *budget -= n as u64;
        h.update(&buf[..n]);
        if let Some(o) = out.as_deref_mut() {
            o.write_all(&buf[..n])
                .map_err(|e| ImportError::Failed(format!("writing {rel}: {e}")))?;
        }
    }
    Ok(hex::encode(h.finalize()))
}

/// Makes a fresh private directory under `parent` (mode 0700):
/// `.staging-<pid>-<n>`, never one that exists already.
pub fn private_dir(parent: &Path) -> io::Result<PathBuf> {
    static N: AtomicU64 = AtomicU64::new(0);
    loop {
        let p = parent.join(format!(
            ".staging-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        match fs::DirBuilder::new().mode(0o700).create(&p) {
            Ok(()) => return Ok(p),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

/// The pid that made a staging directory (`.staging-<pid>-<n>`).
pub fn staging_pid(name: &str) -> Option<u32> {
    name.strip_prefix(".staging-")?
        .split('-')
        .next()?
        .parse()
        .ok()
}

fn set_mode(p: &Path, mode: u32) -> io::Result<()> {
    fs::set_permissions(p, fs::Permissions::from_mode(mode))
}

fn failed(what: &Path) -> impl Fn(io::Error) -> ImportError + '_ {
    move |e| ImportError::Failed(format!("writing {}: {e}", what.display()))
}

/// Creates the file `p` in the staging directory (never through a link),
/// mode 0644 whatever the umask.
fn create_file(p: &Path) -> Result<File, ImportError> {
    let f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(p)
        .map_err(failed(p))?;
    f.set_permissions(fs::Permissions::from_mode(0o644))
        .map_err(failed(p))?;
    Ok(f)
}

fn write_file(p: &Path, bytes: &[u8]) -> Result<(), ImportError> {
    let mut f = create_file(p)?;
    f.write_all(bytes).map_err(failed(p))?;
    f.sync_all().map_err(failed(p))
}

fn fsync_dir(d: &Path) -> Result<(), ImportError> {
    File::open(d).and_then(|f| f.sync_all()).map_err(failed(d))
}

/// What an import produced, in `staging`.
#[derive(Debug)]
pub struct Imported {
    pub manifest_bytes: Vec<u8>,
    /// The manifest, parsed and checked.
    pub manifest: Manifest,
    /// sha256 of the manifest: the dedup key.
    pub key: String,
}

/// Copies the tree beneath `src` into `staging` (an empty private
/// directory): the manifest, every listed file (checked against it), and
/// [`KEY_FILE`]; everything fsynced, modes normalised, `staging` itself
/// 0755 at the end. On error `staging` is left for the caller to remove.
pub fn import(
    src: BorrowedFd<'_>,
    staging: &Path,
    limits: &Limits,
) -> Result<Imported, ImportError> {
    let (manifest_bytes, m) = read_manifest(src, limits)?;
    let mut dirs: BTreeSet<PathBuf> = BTreeSet::new();
    let mut budget = limits.tree_bytes;
    for f in &m.files {
        let from = open_regular(src, &f.path, limits.file_bytes)?;
        let to = staging.join(&f.path);
        // Parent directories, each made here (never followed: the
        // staging directory is private and fresh).
        let mut missing = Vec::new();
        let mut d = to.parent();
        while let Some(p) = d {
            if p == staging || dirs.contains(p) {
                break;
            }
            missing.push(p.to_path_buf());
            d = p.parent();
        }
        for p in missing.into_iter().rev() {
            fs::DirBuilder::new()
                .mode(0o755)
                .create(&p)
                .map_err(failed(&p))?;
            set_mode(&p, 0o755).map_err(failed(&p))?;
            dirs.insert(p);
        }
        let mut out = create_file(&to)?;
        let got = hash_into(
            from,
            Some(&mut out),
            &f.path,
            limits.file_bytes,
            &mut budget,
            limits.tree_bytes,
        )?;
        if !got.eq_ignore_ascii_case(&f.sha256) {
            return Err(ImportError::Refused(format!(
                "{}: its content does not match its sha256 in {MANIFEST}",
                f.path
            )));
        }
        out.sync_all().map_err(failed(&to))?;
    }
    let key = hex::encode(Sha256::digest(&manifest_bytes));
    write_file(&staging.join(MANIFEST), &manifest_bytes)?;
    write_file(&staging.join(KEY_FILE), key.as_bytes())?;
    // Deepest first, then the root.
    for d in dirs.iter().rev() {
        fsync_dir(d)?;
    }
    set_mode(staging, 0o755).map_err(failed(staging))?;
    fsync_dir(staging)?;
    Ok(Imported {
        manifest_bytes,
        manifest: m,
        key,
    })
}

/// Checks a stored tree beneath `dir`: its manifest, and every listed file
/// a regular file whose content has the listed sha256.
pub fn verify(dir: BorrowedFd<'_>, limits: &Limits) -> Result<Vec<u8>, ImportError> {
    let (bytes, m) = read_manifest(dir, limits)?;
    let mut budget = limits.tree_bytes;
    for f in &m.files {
        let from = open_regular(dir, &f.path, limits.file_bytes)?;
        let got = hash_into(
            from,
            None,
            &f.path,
            limits.file_bytes,
            &mut budget,
            limits.tree_bytes,
        )?;
        if !got.eq_ignore_ascii_case(&f.sha256) {
            return Err(ImportError::Refused(format!(
                "{} does not match its sha256 in {MANIFEST}",
                f.path
            )));
        }
    }
    Ok(bytes)
}

/// Opens the directory at `path` with `flags` added to a read-only,
/// close-on-exec directory open.
fn open_directory(path: &Path, flags: libc::c_int) -> io::Result<OwnedFd> {
    let c = cstr(path.as_os_str().as_bytes())?;
    // SAFETY: open with a NUL-terminated path; the result is a new
    // descriptor we own.
    let r = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC | flags,
        )
    };
    // SAFETY: a fresh descriptor from the kernel.
    errno(r as libc::c_long).map(|fd| unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Opens the directory at `path` (following symlinks in `path` itself:
/// it is the caller's choice of tree), without blocking.
pub fn open_dir(path: &Path) -> io::Result<OwnedFd> {
    open_directory(path, libc::O_NONBLOCK)
}

/// Opens one of the agent's own directories, refusing a symlink.
pub fn open_own_dir(path: &Path) -> io::Result<OwnedFd> {
    open_directory(path, libc::O_NOFOLLOW)
}

/// Whether `fd` is a directory.
pub fn is_dir(fd: BorrowedFd<'_>) -> io::Result<bool> {
    let f = File::from(fd.try_clone_to_owned()?);
    Ok(f.metadata()?.is_dir())
}

/// Renames directory `from` to `to` unless `to` exists
/// (`renameat2(RENAME_NOREPLACE)`; where the file system lacks it, a
/// check then a rename, which the caller's lock makes safe).
pub fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    let (a, b) = (
        cstr(from.as_os_str().as_bytes())?,
        cstr(to.as_os_str().as_bytes())?,
    );
    // SAFETY: renameat2 with NUL-terminated paths.
    let r = unsafe {
        libc::syscall(
            libc::SYS_renameat2,
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    match errno(r) {
        Ok(_) => Ok(()),
        Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL) | Some(libc::ENOSYS)) => {
            if fs::symlink_metadata(to).is_ok() {
                return Err(io::Error::from_raw_os_error(libc::EEXIST));
            }
            fs::rename(from, to)
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir_all(d.path().join("quadlet/sub")).unwrap();
        fs::write(d.path().join("quadlet/web.container"), "[Container]\n").unwrap();
        fs::write(d.path().join("quadlet/sub/x"), "x").unwrap();
        d
    }

    fn err_of(r: io::Result<File>) -> Option<i32> {
        r.err().and_then(|e| e.raw_os_error())
    }

    #[test]
    fn both_ways_of_opening_refuse_symlinks_and_escapes() {
        let d = tree();
        std::os::unix::fs::symlink("/etc/hostname", d.path().join("quadlet/link")).unwrap();
        std::os::unix::fs::symlink("sub", d.path().join("quadlet/dirlink")).unwrap();
        let dir = open_dir(d.path()).unwrap();
        for walk in [false, true] {
            let open = |p: &str| open_beneath_with(dir.as_fd(), p, walk);
            assert!(open("quadlet/web.container").is_ok(), "walk={walk}");
            assert!(open("quadlet/sub/x").is_ok(), "walk={walk}");
            assert_eq!(
                err_of(open("quadlet/link")),
                Some(libc::ELOOP),
                "walk={walk}"
            );
            assert_eq!(
                err_of(open("quadlet/dirlink/x")),
                Some(libc::ELOOP),
                "walk={walk}"
            );
            assert!(open("quadlet/../../etc/hostname").is_err(), "walk={walk}");
            assert!(open("/etc/hostname").is_err(), "walk={walk}");
        }
    }

    #[test]
    fn listed_paths_and_app_names_are_checked() {
        for ok in [
            "quadlet/web.container",
            "nixos/apps/web.nix",
            "guix/a",
            "systemd/x.timer",
        ] {
            assert_eq!(check_path(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "/etc/shadow",
            "quadlet/../x",
            "quadlet//x",
            "quadlet/./x",
            "quadlet/",
            "quadlet",
            "etc/x",
            "windlass-generation.json",
            ".content-sha256",
            "quadlet/a\0b",
        ] {
            assert!(check_path(bad).is_err(), "{bad:?}");
        }
        for ok in ["web", "web-1", "a_b.c", "X9"] {
            assert_eq!(check_app_name(ok), Ok(()), "{ok}");
        }
        for bad in ["", ".hidden", "..", "a/b", "../x", "a b", "a\nb", "ä"] {
            assert!(check_app_name(bad).is_err(), "{bad:?}");
        }
        let long = "a".repeat(256);
        assert!(check_app_name(&long).is_err());
    }

    fn manifest(files: &[(&str, &[u8])]) -> Vec<u8> {
        let m = Manifest {
            files: files
                .iter()
                .map(|(p, b)| crate::contract::FileEntry {
                    path: p.to_string(),
                    sha256: hex::encode(Sha256::digest(b)),
                })
                .collect(),
            ..Default::default()
        };
        m.to_json().into_bytes()
    }

    #[test]
    fn a_tree_over_its_caps_is_refused() {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir(d.path().join("quadlet")).unwrap();
        let (a, b) = (vec![b'a'; 600], vec![b'b'; 600]);
        fs::write(d.path().join("quadlet/a"), &a).unwrap();
        fs::write(d.path().join("quadlet/b"), &b).unwrap();
        fs::write(
            d.path().join(MANIFEST),
            manifest(&[("quadlet/a", &a), ("quadlet/b", &b)]),
        )
        .unwrap();
        let dir = open_dir(d.path()).unwrap();
        let run = |limits: Limits| {
            let out = tempfile::tempdir().unwrap();
            let staging = private_dir(out.path()).unwrap();
            import(dir.as_fd(), &staging, &limits)
        };
        let roomy = Limits {
            file_bytes: 4096,
            manifest_bytes: 4096,
            tree_bytes: 4096,
            files: 10,
        };
        assert!(run(roomy).is_ok());
        let e = run(Limits {
            file_bytes: 500,
            ..roomy
        })
        .unwrap_err();
        assert!(
            matches!(&e, ImportError::Refused(m) if m.contains("quadlet/a") && m.contains("500")),
            "{e}"
        );
        let e = run(Limits {
            tree_bytes: 1000,
            ..roomy
        })
        .unwrap_err();
        assert!(
            matches!(&e, ImportError::Refused(m) if m.contains("1000 bytes a tree")),
            "{e}"
        );
        let e = run(Limits { files: 1, ..roomy }).unwrap_err();
        assert!(
            matches!(&e, ImportError::Refused(m) if m.contains("lists 2 files")),
            "{e}"
        );
    }

    #[test]
    fn a_file_listed_also_as_a_directory_or_twice_is_refused() {
        let l = Limits::default();
        let mut m = Manifest::from_slice(&manifest(&[("quadlet/a", b"1")])).unwrap();
        m.files.push(m.files[0].clone());
        assert!(check_manifest(&m, &l).unwrap_err().contains("twice"));
        m.files[1].path = "quadlet/a/b".into();
        assert!(
            check_manifest(&m, &l)
                .unwrap_err()
                .contains("as a directory")
        );
    }

    #[test]
    fn staging_names_carry_the_pid() {
        let d = tempfile::tempdir().unwrap();
        let a = private_dir(d.path()).unwrap();
        let b = private_dir(d.path()).unwrap();
        assert_ne!(a, b);
        let name = a.file_name().unwrap().to_str().unwrap();
        assert_eq!(staging_pid(name), Some(std::process::id()));
        assert_eq!(
            fs::metadata(&a).unwrap().permissions().mode() & 0o777,
            0o700
        );
    }
}
