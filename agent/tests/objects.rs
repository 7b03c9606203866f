//! Pristine copies of what native generations install (the drift plan's
//! objects store, `docs/design/drift.md` 4.1), in process on the native
//! platform: staging keeps a copy of every listed file (a copy, not a
//! link), `pristine` answers the staged content whatever became of the
//! generation's own file, falls back to another generation's identical
//! file when the copy is damaged and says what to do when nothing intact
//! is left; backfill copies only what still verifies; prune keeps exactly
//! what stored generations list.

mod common;

use std::collections::BTreeSet;
use std::io::Write as _;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::PathBuf;

use sha2::{Digest, Sha256};
use windlass_agent::contract::{GenerationId, Manifest};
use windlass_agent::platform::{Platform, PlatformError, native::Native};

const WEB: &str = "quadlet/web.container";
const DB: &str = "quadlet/db.container";

fn sha256(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

struct Host {
    tmp: tempfile::TempDir,
    native: Native,
}

impl Host {
    fn new() -> Host {
        let tmp = tempfile::tempdir().unwrap();
        let native = Native::new(&tmp.path().join("state"), &tmp.path().join("run"));
        Host { tmp, native }
    }

    /// The basic fleet generated with web on `port` (so web's Quadlet
    /// file differs between ports and db's does not).
    fn tree(&self, port: u16) -> PathBuf {
        let out = self.tmp.path().join(format!("tree-{port}"));
        if !out.exists() {
            common::generation(&common::basic_fleet(), &out, |t| {
                t.replace("\"8080\"", &format!("\"{port}\""))
            });
        }
        out
    }

    fn stage(&self, port: u16) -> GenerationId {
        self.native.stage(&self.tree(port)).unwrap()
    }

    fn manifest(&self, g: GenerationId) -> Manifest {
        Manifest::read(&self.native.dir(g)).unwrap()
    }

    fn hash_of(&self, g: GenerationId, rel: &str) -> String {
        let m = self.manifest(g);
        m.files.into_iter().find(|f| f.path == rel).unwrap().sha256
    }

    fn hashes(&self, g: GenerationId) -> BTreeSet<String> {
        self.manifest(g)
            .files
            .into_iter()
            .map(|f| f.sha256)
            .collect()
    }

    fn objects_dir(&self) -> PathBuf {
        self.native.state_dir.join("objects/sha256")
    }

    fn object(&self, sha: &str) -> PathBuf {
        self.objects_dir().join(sha)
    }

    /// The objects stored (file names), temporaries aside.
    fn stored(&self) -> BTreeSet<String> {
        std::fs::read_dir(self.objects_dir())
            .map(|d| {
                d.map(|e| e.unwrap().file_name().into_string().unwrap())
                    .filter(|n| !n.starts_with('.'))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Appends to the generation's file in place (the `echo >>` of an
    /// operator: same inode).
    fn append(&self, g: GenerationId, rel: &str, text: &str) {
        let p = self.native.dir(g).join(rel);
        let ino = std::fs::metadata(&p).unwrap().ino();
        std::fs::OpenOptions::new()
            .append(true)
            .open(&p)
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().ino(), ino);
    }

    /// Overwrites a stored object (a damaged disk, or a stray hand).
    fn damage(&self, sha: &str) {
        let p = self.object(sha);
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::write(&p, b"[Container]\nImage=evil\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o400)).unwrap();
    }
}

fn failed(r: Result<Vec<u8>, PlatformError>) -> String {
    match r {
        Err(PlatformError::Failed(m)) => m,
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[test]
fn staging_keeps_a_read_only_copy_of_every_listed_file() {
    let h = Host::new();
    let g = h.stage(8081);
    let m = h.manifest(g);
    assert!(m.files.iter().any(|f| f.path == WEB) && m.files.len() > 2);
    for f in &m.files {
        let obj = h.object(&f.sha256);
        let meta = std::fs::symlink_metadata(&obj)
            .unwrap_or_else(|e| panic!("no copy of {}: {e}", f.path));
        assert!(meta.is_file(), "{}", f.path);
        assert_eq!(meta.permissions().mode() & 0o7777, 0o400, "{}", f.path);
        assert_eq!(meta.nlink(), 1, "{}: a copy, not a link", f.path);
        let bytes = std::fs::read(&obj).unwrap();
        assert_eq!(sha256(&bytes), f.sha256, "{}", f.path);
        assert_eq!(bytes, std::fs::read(h.native.dir(g).join(&f.path)).unwrap());
    }
    let distinct: BTreeSet<_> = m.files.iter().map(|f| f.sha256.clone()).collect();
    assert_eq!(h.stored(), distinct, "exactly the listed files");
    for d in ["objects", "objects/sha256"] {
        let mode = std::fs::metadata(h.native.state_dir.join(d))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o7777, 0o700, "{d}");
    }
    // An in-place edit of the generation's file leaves the copy as staged.
    let web = h.hash_of(g, WEB);
    let before = std::fs::read(h.object(&web)).unwrap();
    h.append(g, WEB, "PublishPort=9999:9999\n");
    assert_eq!(std::fs::read(h.object(&web)).unwrap(), before);
    assert_eq!(sha256(&before), web);
    assert_ne!(std::fs::read(h.native.dir(g).join(WEB)).unwrap(), before);
}

#[test]
fn pristine_is_the_staged_content_after_an_edit_and_after_a_removal() {
    let h = Host::new();
    let g = h.stage(8081);
    let staged = std::fs::read(h.native.dir(g).join(WEB)).unwrap();
    assert_eq!(h.native.pristine(g, WEB).unwrap(), staged);
    h.append(g, WEB, "\n[Service]\nExecStartPre=/bin/true\n");
    assert_eq!(h.native.pristine(g, WEB).unwrap(), staged);
    std::fs::remove_file(h.native.dir(g).join(WEB)).unwrap();
    assert_eq!(h.native.pristine(g, WEB).unwrap(), staged);
    // Not a listed file, no such generation.
    assert!(matches!(
        h.native.pristine(g, "quadlet/other.container"),
        Err(PlatformError::Invalid(m)) if m.contains("quadlet/other.container")
    ));
    assert!(matches!(
        h.native.pristine(GenerationId(9), WEB),
        Err(PlatformError::NotFound(GenerationId(9)))
    ));
}

#[test]
fn a_damaged_copy_falls_back_to_intact_files_then_fails_saying_what_to_do() {
    let h = Host::new();
    let (g1, g2) = (h.stage(8081), h.stage(8082));
    assert_eq!((g1, g2), (GenerationId(1), GenerationId(2)));
    let db = h.hash_of(g1, DB);
    assert_eq!(db, h.hash_of(g2, DB), "db's file is the same in both");
    let staged = std::fs::read(h.object(&db)).unwrap();

    // The copy damaged, the generation's own file intact: that file.
    h.damage(&db);
    assert_eq!(h.native.pristine(g1, DB).unwrap(), staged);
    assert_eq!(
        std::fs::read(h.object(&db)).unwrap(),
        staged,
        "copy made again"
    );

    // The copy damaged and g1's file edited: g2's identical file.
    h.damage(&db);
    h.append(g1, DB, "Exec=sleep 1\n");
    assert_eq!(h.native.pristine(g1, DB).unwrap(), staged);
    assert_eq!(
        std::fs::read(h.object(&db)).unwrap(),
        staged,
        "copy made again"
    );

    // Nothing intact left: a clear failure, nothing damaged returned.
    h.damage(&db);
    h.append(g2, DB, "Exec=sleep 2\n");
    let m = failed(h.native.pristine(g1, DB));
    assert_eq!(
        m,
        format!("no intact copy of {DB} (sha256 {db}): stage the generation again")
    );
    // The copy missing altogether: the same.
    std::fs::remove_file(h.object(&db)).unwrap();
    assert_eq!(failed(h.native.pristine(g2, DB)), m);

    // Staging the tree again (g1 is damaged, so a new generation) makes
    // the copy again: g1's content can be restored.
    let g3 = h.stage(8081);
    assert_eq!(g3, GenerationId(3));
    assert_eq!(h.native.pristine(g1, DB).unwrap(), staged);
}

#[test]
fn staging_an_identical_tree_again_makes_lost_copies_again() {
    let h = Host::new();
    let g = h.stage(8081);
    std::fs::remove_dir_all(h.native.state_dir.join("objects")).unwrap();
    assert_eq!(h.stage(8081), g, "the same generation");
    assert_eq!(h.stored(), h.hashes(g));
}

#[test]
fn backfill_copies_the_files_that_still_verify() {
    let h = Host::new();
    let (g1, g2) = (h.stage(8081), h.stage(8082));
    let all: BTreeSet<String> = h.hashes(g1).union(&h.hashes(g2)).cloned().collect();
    // As staged before the store existed.
    std::fs::remove_dir_all(h.native.state_dir.join("objects")).unwrap();
    // g1's web file is only in g1; its db file is in g2 too.
    let web1 = h.hash_of(g1, WEB);
    assert!(!h.hashes(g2).contains(&web1));
    h.append(g1, WEB, "Exec=sleep 1\n");
    h.append(g1, DB, "Exec=sleep 1\n");

    assert_eq!(h.native.backfill_objects(), all.len() - 1);
    let mut want = all.clone();
    want.remove(&web1);
    assert_eq!(
        h.stored(),
        want,
        "all but the edited file no other generation has"
    );
    for sha in &want {
        assert_eq!(sha256(&std::fs::read(h.object(sha)).unwrap()), *sha);
        let mode = std::fs::metadata(h.object(sha))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o7777, 0o400);
    }
    assert_eq!(h.native.backfill_objects(), 0, "nothing left to copy");
    assert!(h.native.pristine(g1, WEB).is_err());
    let db = h.hash_of(g1, DB);
    assert_eq!(sha256(&h.native.pristine(g1, DB).unwrap()), db);
    assert!(
        std::fs::read_dir(h.objects_dir())
            .unwrap()
            .all(|e| { !e.unwrap().file_name().to_string_lossy().starts_with('.') }),
        "no temporary left by the refused copy"
    );
}

#[test]
fn prune_keeps_what_stored_generations_list_and_removes_the_rest() {
    let h = Host::new();
    let (g1, g2) = (h.stage(8081), h.stage(8082));
    let extra = h.tmp.path().join("extra");
    std::fs::write(&extra, b"no generation lists this\n").unwrap();
    let extra_sha = sha256(b"no generation lists this\n");
    assert!(h.native.objects().put_file(&extra_sha, &extra).unwrap());
    let stale = h.objects_dir().join(".tmp-4294967295-7");
    std::fs::write(&stale, b"half a copy").unwrap();

    assert_eq!(h.native.prune_objects().unwrap(), 1);
    let both: BTreeSet<String> = h.hashes(g1).union(&h.hashes(g2)).cloned().collect();
    assert_eq!(h.stored(), both);
    assert!(!stale.exists(), "a dead process's temporary is removed");

    // A generation removed: the copies only it listed go.
    let only_g2 = h.hashes(g2).difference(&h.hashes(g1)).count();
    assert!(only_g2 > 0);
    std::fs::remove_dir_all(h.native.dir(g2)).unwrap();
    assert_eq!(h.native.prune_objects().unwrap(), only_g2);
    assert_eq!(h.stored(), h.hashes(g1));

    // A manifest that cannot be read: nothing is removed.
    let g3 = h.stage(8083);
    std::fs::write(h.native.dir(g3).join("windlass-generation.json"), b"{").unwrap();
    let before = h.stored();
    assert!(matches!(
        h.native.prune_objects(),
        Err(PlatformError::Failed(m)) if m.contains(&format!("generation {g3}"))
    ));
    assert_eq!(h.stored(), before);
}

#[test]
fn hashes_that_are_not_lower_case_sha256_never_become_file_names() {
    let h = Host::new();
    let objects = h.native.objects();
    let src = h.tmp.path().join("src");
    std::fs::write(&src, b"x").unwrap();
    let x = sha256(b"x");
    for bad in [
        "../../escaped".to_string(),
        x.to_uppercase(),
        x[..63].to_string(),
        format!("{x}0"),
        format!("{}/", &x[..63]),
    ] {
        let e = objects.put_file(&bad, &src).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput, "{bad}");
        assert_eq!(
            objects.get(&bad).unwrap_err().kind(),
            std::io::ErrorKind::InvalidInput
        );
        assert!(!objects.has(&bad));
    }
    assert!(!h.native.state_dir.join("objects").exists());
    assert!(!h.native.state_dir.join("escaped").exists());

    // A manifest listing a hash in upper case is staged (hashes compare
    // without case); its copy is stored under the lower-case name.
    let tree = h.tree(8081);
    let p = tree.join("windlass-generation.json");
    let mut m: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
    let files = m["files"].as_array_mut().unwrap();
    let web = files.iter_mut().find(|f| f["path"] == WEB).unwrap();
    let lower = web["sha256"].as_str().unwrap().to_string();
    web["sha256"] = lower.to_uppercase().into();
    std::fs::write(&p, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
    let g = h.native.stage(&tree).unwrap();
    assert!(h.object(&lower).is_file());
    assert_eq!(sha256(&h.native.pristine(g, WEB).unwrap()), lower);

    // A stored manifest edited to list a path as its hash: never a path.
    let gp = h.native.dir(g).join("windlass-generation.json");
    let mut m: serde_json::Value = serde_json::from_slice(&std::fs::read(&gp).unwrap()).unwrap();
    let files = m["files"].as_array_mut().unwrap();
    files.iter_mut().find(|f| f["path"] == WEB).unwrap()["sha256"] = "../../../escaped".into();
    std::fs::write(&gp, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
    std::fs::remove_dir_all(h.native.state_dir.join("objects")).unwrap();
    h.native.backfill_objects();
    assert!(matches!(
        h.native.pristine(g, WEB),
        Err(PlatformError::Failed(_))
    ));
    assert!(!h.native.state_dir.join("escaped").exists());
    assert!(!h.tmp.path().join("escaped").exists());
}
