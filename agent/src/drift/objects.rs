//! Pristine copies of the files native generations install, by content:
//! `<state>/objects/sha256/<hex>` (directories 0700, files 0400). A
//! generation's own directory is the file the host runs from, so a hand
//! edit of `generations/<N>/quadlet/web.container` edits the only other
//! copy; restoring it reads the object instead. Each object is a copy,
//! never a hard link (an in-place append would edit both), written to a
//! temporary file beside it, checked against its name, fsynced, renamed
//! and its directory fsynced; every read hashes it again, so a damaged
//! object is an error, never content.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::{self, Read as _, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};

use crate::durable::fsync_dir;

/// Temporary files of a put: `.tmp-<pid>-<n>`.
const TMP_PREFIX: &str = ".tmp-";

/// The store under a state directory.
#[derive(Debug, Clone)]
pub struct Objects {
    dir: PathBuf,
}

/// Refuses anything but a sha256 as 64 lower-case hex digits: it becomes
/// a file name.
pub fn check_hash(sha256: &str) -> io::Result<()> {
    if sha256.len() == 64
        && sha256
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{sha256:?} is not a sha256 (64 lower-case hex digits)"),
        ))
    }
}

/// The sha256 (lower-case hex) of everything `r` yields, written to
/// `out` as it is read, if any.
fn hash_copy(mut r: impl io::Read, mut out: Option<&mut File>) -> io::Result<String> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        h.update(&buf[..n]);
        if let Some(o) = out.as_deref_mut() {
            o.write_all(&buf[..n])?;
        }
    }
    Ok(hex::encode(h.finalize()))
}

/// Opens `p` for reading, refusing a symlink (as the last component) and
/// anything but a regular file, without blocking on a FIFO.
fn open_regular(p: &Path) -> io::Result<File> {
    let f = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(p)?;
    if !f.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not a regular file", p.display()),
        ));
    }
    Ok(f)
}

impl Objects {
    pub fn new(state_dir: &Path) -> Objects {
        Objects {
            dir: state_dir.join("objects/sha256"),
        }
    }

    /// Where the object `sha256` is (or would be) stored.
    pub fn path(&self, sha256: &str) -> io::Result<PathBuf> {
        check_hash(sha256)?;
        Ok(self.dir.join(sha256))
    }

    /// Whether an intact object `sha256` is stored (its content hashed
    /// again).
    pub fn has(&self, sha256: &str) -> bool {
        self.get(sha256).is_ok()
    }

    /// The content of object `sha256`, hashed again: a missing object is
    /// `NotFound`, a damaged one (content with another sha256, or not a
    /// regular file) `InvalidData`.
    pub fn get(&self, sha256: &str) -> io::Result<Vec<u8>> {
        let p = self.path(sha256)?;
        let mut bytes = Vec::new();
        match open_regular(&p) {
            Ok(mut f) => {
                f.read_to_end(&mut bytes)?;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(e),
            Err(e) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("object {sha256} is damaged: {e}"),
                ));
            }
        }
        if hex::encode(Sha256::digest(&bytes)) != sha256 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("object {sha256} is damaged: its content no longer has that sha256"),
            ));
        }
        Ok(bytes)
    }

    /// Makes the store's directories (0700), and their entries durable.
    fn make_dirs(&self) -> io::Result<()> {
        let top = self.dir.parent().expect("objects/sha256 has a parent");
        for d in [top, self.dir.as_path()] {
            match fs::DirBuilder::new().mode(0o700).create(d) {
                Ok(()) => {
                    fs::set_permissions(d, fs::Permissions::from_mode(0o700))?;
                    fsync_dir(d.parent().unwrap_or(Path::new("/")))?;
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Stores a copy of `src` as object `sha256`, unless an intact one is
    /// stored already (a damaged one is replaced). The copy is hashed as
    /// it is written and refused unless it has `sha256` (the file changed
    /// since it was checked). Durable when it returns: the object fsynced,
    /// renamed into place, its directory fsynced. Returns whether it
    /// wrote the object.
    pub fn put_file(&self, sha256: &str, src: &Path) -> io::Result<bool> {
        let wrote = self.put_one(sha256, src)?;
        if wrote {
            fsync_dir(&self.dir)?;
        }
        Ok(wrote)
    }

    /// [`put_file`](Self::put_file) for each (sha256, source) in turn,
    /// the store's directory fsynced once at the end (every copy is
    /// durable when it returns Ok; after an error, those before it are
    /// stored but perhaps not durably). Returns how many it wrote.
    pub fn put_files<'a>(
        &self,
        files: impl IntoIterator<Item = (&'a str, &'a Path)>,
    ) -> io::Result<usize> {
        let mut wrote = 0;
        for (sha256, src) in files {
            let put = self.put_one(sha256, src).map_err(|e| {
                let name = src.display().to_string();
                if e.to_string().contains(&name) {
                    e
                } else {
                    io::Error::new(e.kind(), format!("{name}: {e}"))
                }
            })?;
            wrote += usize::from(put);
        }
        if wrote > 0 {
            fsync_dir(&self.dir)?;
        }
        Ok(wrote)
    }

    /// A put, up to the rename (the directory not fsynced).
    fn put_one(&self, sha256: &str, src: &Path) -> io::Result<bool> {
        let dest = self.path(sha256)?;
        if self.has(sha256) {
            return Ok(false);
        }
        let from = open_regular(src)?;
        self.make_dirs()?;
        static N: AtomicU64 = AtomicU64::new(0);
        let tmp = self.dir.join(format!(
            "{TMP_PREFIX}{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let res = (|| {
            let mut out = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o400)
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                .open(&tmp)?;
            out.set_permissions(fs::Permissions::from_mode(0o400))?;
            let got = hash_copy(from, Some(&mut out))?;
            if got != sha256 {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "{}: its content does not have sha256 {sha256} (changed since it was checked)",
                        src.display()
                    ),
                ));
            }
            out.sync_all()?;
            fs::rename(&tmp, &dest)
        })();
        if res.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        res?;
        Ok(true)
    }

    /// Removes every object not in `keep`, and the temporary files of
    /// puts by other processes (one agent holds a state directory at a
    /// time: they are dead). Names that are neither are left alone.
    /// Returns how many objects it removed.
    pub fn prune(&self, keep: &BTreeSet<String>) -> io::Result<usize> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e),
        };
        let me = std::process::id();
        let mut removed = 0;
        let mut changed = false;
        for e in entries {
            let e = e?;
            let name = e.file_name();
            let Some(name) = name.to_str() else { continue };
            if check_hash(name).is_ok() {
                if keep.contains(name) {
                    continue;
                }
                fs::remove_file(e.path())?;
                removed += 1;
                changed = true;
            } else if let Some(rest) = name.strip_prefix(TMP_PREFIX) {
                let pid = rest.split('-').next().and_then(|p| p.parse::<u32>().ok());
                if pid != Some(me) {
                    fs::remove_file(e.path())?;
                    changed = true;
                }
            }
        }
        if changed {
            fsync_dir(&self.dir)?;
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn sha(b: &[u8]) -> String {
        hex::encode(Sha256::digest(b))
    }

    #[test]
    fn only_64_lower_case_hex_digits_are_a_hash() {
        assert!(check_hash(EMPTY).is_ok());
        assert!(check_hash(&"0".repeat(64)).is_ok());
        for bad in [
            String::new(),
            EMPTY[..63].to_string(),
            format!("{EMPTY}0"),
            EMPTY.to_uppercase(),
            format!("{}G", &EMPTY[..63]),
            format!("../{}", &EMPTY[..61]),
            format!("{}/", &EMPTY[..63]),
            format!("{}\0", &EMPTY[..63]),
            format!("{} ", &EMPTY[..63]),
            ".tmp-1-0".to_string(),
        ] {
            let e = check_hash(&bad).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{bad:?}");
            assert!(e.to_string().contains("not a sha256"), "{e}");
        }
    }

    #[test]
    fn a_bad_hash_is_refused_by_every_call() {
        let d = tempfile::tempdir().unwrap();
        let o = Objects::new(d.path());
        let src = d.path().join("f");
        fs::write(&src, b"x").unwrap();
        for bad in ["../../etc/passwd", &EMPTY.to_uppercase(), "abc"] {
            assert_eq!(
                o.put_file(bad, &src).unwrap_err().kind(),
                io::ErrorKind::InvalidInput
            );
            assert_eq!(o.get(bad).unwrap_err().kind(), io::ErrorKind::InvalidInput);
            assert!(!o.has(bad));
        }
        assert!(!d.path().join("objects").exists(), "nothing was made");
    }

    #[test]
    fn a_put_copies_checks_and_a_get_hashes_again() {
        let d = tempfile::tempdir().unwrap();
        let o = Objects::new(d.path());
        let src = d.path().join("f");
        fs::write(&src, b"[Container]\n").unwrap();
        let h = sha(b"[Container]\n");
        // The wrong hash: refused, naming it, nothing left behind.
        let e = o.put_file(EMPTY, &src).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert!(e.to_string().contains(EMPTY), "{e}");
        assert_eq!(
            fs::read_dir(d.path().join("objects/sha256"))
                .unwrap()
                .count(),
            0
        );
        assert!(o.put_file(&h, &src).unwrap());
        assert!(!o.put_file(&h, &src).unwrap(), "stored already");
        let p = o.path(&h).unwrap();
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o7777,
            0o400
        );
        for dir in ["objects", "objects/sha256"] {
            let m = fs::metadata(d.path().join(dir))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(m & 0o7777, 0o700, "{dir}");
        }
        // A copy: appending to the source leaves the object alone.
        fs::OpenOptions::new()
            .append(true)
            .open(&src)
            .unwrap()
            .write_all(b"Exec=sh\n")
            .unwrap();
        assert_eq!(o.get(&h).unwrap(), b"[Container]\n");
        // Damaged: an error, and a put replaces it.
        fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).unwrap();
        fs::write(&p, b"[Container]\nExec=sh\n").unwrap();
        let e = o.get(&h).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert!(e.to_string().contains("damaged"), "{e}");
        assert!(!o.has(&h));
        fs::write(&src, b"[Container]\n").unwrap();
        assert!(o.put_file(&h, &src).unwrap());
        assert_eq!(o.get(&h).unwrap(), b"[Container]\n");
        assert_eq!(o.get(EMPTY).unwrap_err().kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn put_files_stores_each_and_names_the_file_it_could_not() {
        let d = tempfile::tempdir().unwrap();
        let o = Objects::new(d.path());
        let (a, b) = (d.path().join("a"), d.path().join("b"));
        fs::write(&a, b"a").unwrap();
        fs::write(&b, b"b").unwrap();
        let (ha, hb) = (sha(b"a"), sha(b"b"));
        let both = [(ha.as_str(), a.as_path()), (hb.as_str(), b.as_path())];
        assert_eq!(o.put_files(both).unwrap(), 2);
        assert_eq!(o.put_files(both).unwrap(), 0);
        assert!(o.has(&ha) && o.has(&hb));
        let gone = d.path().join("gone");
        let e = o.put_files([(EMPTY, gone.as_path())]).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert!(e.to_string().contains(&gone.display().to_string()), "{e}");
    }

    #[test]
    fn a_symlink_is_neither_copied_nor_an_object() {
        let d = tempfile::tempdir().unwrap();
        let o = Objects::new(d.path());
        let real = d.path().join("real");
        fs::write(&real, b"").unwrap();
        let link = d.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        assert!(o.put_file(EMPTY, &link).is_err());
        fs::create_dir_all(d.path().join("objects/sha256")).unwrap();
        std::os::unix::fs::symlink(&real, o.path(EMPTY).unwrap()).unwrap();
        assert_eq!(o.get(EMPTY).unwrap_err().kind(), io::ErrorKind::InvalidData);
        // ... and a put replaces it with a file.
        assert!(o.put_file(EMPTY, &real).unwrap());
        assert!(
            fs::symlink_metadata(o.path(EMPTY).unwrap())
                .unwrap()
                .is_file()
        );
    }

    #[test]
    fn prune_keeps_what_is_asked_and_removes_others_temporaries() {
        let d = tempfile::tempdir().unwrap();
        let o = Objects::new(d.path());
        assert_eq!(o.prune(&BTreeSet::new()).unwrap(), 0, "no store yet");
        let mut hashes = Vec::new();
        for body in [&b"a"[..], b"b", b"c"] {
            let src = d.path().join("f");
            fs::write(&src, body).unwrap();
            hashes.push(sha(body));
            o.put_file(hashes.last().unwrap(), &src).unwrap();
        }
        let dir = d.path().join("objects/sha256");
        let theirs = dir.join(".tmp-4294967295-0");
        let mine = dir.join(format!(".tmp-{}-999999", std::process::id()));
        let other = dir.join("README");
        for p in [&theirs, &mine, &other] {
            fs::write(p, b"").unwrap();
        }
        let keep = BTreeSet::from([hashes[1].clone()]);
        assert_eq!(o.prune(&keep).unwrap(), 2);
        assert!(!o.has(&hashes[0]) && o.has(&hashes[1]) && !o.has(&hashes[2]));
        assert!(!theirs.exists(), "a dead process's temporary is removed");
        assert!(mine.exists() && other.exists());
    }
}
