//! The no-op fast path (`generator/src/record.rs`): a run whose generator,
//! options, inputs and output tree are all as recorded renders and writes
//! nothing, and any other run ends exactly where a cold run would.

mod common;

use common::read_tree;

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What a run that took the fast path says.
const NOOP: &str = "as recorded; nothing rendered";

fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_windlass"))
}

fn run(exe: &Path, args: &[&str]) -> Output {
    Command::new(exe).args(args).output().unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `windlass generate FLEET -o OUT ARGS…`, which must succeed; its stderr.
fn generate(exe: &Path, fleet: &Path, out: &Path, args: &[&str]) -> String {
    let mut all = vec!["generate", s(fleet), "-o", s(out)];
    all.extend_from_slice(args);
    let o = run(exe, &all);
    let err = stderr(&o);
    assert!(o.status.success(), "generate failed: {err}");
    err
}

/// The record beside OUT.
fn record(out: &Path) -> PathBuf {
    out.with_file_name(format!(
        ".{}.windlass-record",
        out.file_name().unwrap().to_str().unwrap()
    ))
}

/// Inode and mtime of every file of a tree, and of the tree itself.
fn stamps(root: &Path) -> BTreeMap<String, (u64, i64, i64)> {
    let mut m: BTreeMap<String, (u64, i64, i64)> = read_tree(root)
        .keys()
        .map(|p| {
            let m = std::fs::symlink_metadata(root.join(p)).unwrap();
            (p.clone(), (m.ino(), m.mtime(), m.mtime_nsec()))
        })
        .collect();
    let d = std::fs::metadata(root).unwrap();
    m.insert(".".into(), (d.ino(), d.mtime(), d.mtime_nsec()));
    m
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let dest = to.join(p.file_name().unwrap());
        if p.is_dir() {
            copy_dir(&p, &dest);
        } else {
            std::fs::copy(&p, &dest).unwrap();
        }
    }
}

/// Replaces `from` by `to` in a file; with `keep_mtime`, puts the old
/// mtime back (as `cp -p` or `touch -r` would), so that only the content
/// and the ctime tell.
fn edit(path: &Path, from: &str, to: &str, keep_mtime: bool) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains(from), "{} lacks {from:?}", path.display());
    let mtime = std::fs::metadata(path).unwrap().modified().unwrap();
    std::fs::write(path, text.replacen(from, to, 1)).unwrap();
    if keep_mtime {
        let f = std::fs::File::options().write(true).open(path).unwrap();
        f.set_modified(mtime).unwrap();
    }
}

/// The record trusts an executable only once it is older than the run
/// that wrote the record by a second or more; wait until `exe` is.
fn settle(exe: &Path) {
    let m = std::fs::metadata(exe).unwrap();
    let newest = m.mtime().max(m.ctime());
    loop {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        if now >= newest + 3 {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn examples() -> PathBuf {
    common::repo_root().join("examples")
}

/// A copy of the example fleet and of one template override.
fn workspace() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let fleet = tmp.path().join("fleet");
    copy_dir(&examples(), &fleet);
    let templates = tmp.path().join("templates");
    std::fs::create_dir_all(templates.join("quadlet")).unwrap();
    let default =
        std::fs::read_to_string(common::repo_root().join("templates/quadlet/container.j2"))
            .unwrap();
    std::fs::write(
        templates.join("quadlet/container.j2"),
        default.replace("[Service]", "[Service]\nCPUWeight=50"),
    )
    .unwrap();
    (tmp, fleet, templates)
}

#[test]
fn a_noop_run_renders_nothing_writes_nothing_and_prints_the_same_warnings() {
    settle(&bin());
    let (tmp, fleet, _) = workspace();
    let out = tmp.path().join("out");
    // Podman 4.4 has no Notify=healthy: the run warns about every app.
    let args = ["--podman-version", "4.4"];
    let cold = generate(&bin(), &fleet, &out, &args);
    assert!(cold.contains("warning: app `lnd`"), "{cold}");
    assert!(!cold.contains(NOOP), "{cold}");
    assert!(record(&out).is_file());
    let tree = read_tree(&out);
    let before = stamps(&out);
    std::thread::sleep(Duration::from_millis(20));
    for _ in 0..3 {
        let warm = generate(&bin(), &fleet, &out, &args);
        assert!(warm.contains(NOOP), "the fast path was not taken: {warm}");
        let warnings = |e: &str| -> Vec<String> {
            e.lines()
                .filter(|l| l.starts_with("warning:"))
                .map(String::from)
                .collect()
        };
        assert_eq!(warnings(&warm), warnings(&cold));
        assert!(
            warm.contains(&format!(
                "unchanged: {} ({} files",
                out.display(),
                tree.len()
            )),
            "{warm}"
        );
        assert_eq!(read_tree(&out), tree);
        assert_eq!(stamps(&out), before, "a no-op run touched the tree");
    }
}

/// A change to the fleet directory, the templates directory, or neither.
type Change = Box<dyn Fn(&Path, &Path)>;

/// One change to a fleet, its templates or the options of a run.
struct Step {
    what: &'static str,
    change: Change,
    args: Vec<String>,
}

fn step(what: &'static str, args: &[&str], change: impl Fn(&Path, &Path) + 'static) -> Step {
    Step {
        what,
        change: Box::new(change),
        args: args.iter().map(|a| a.to_string()).collect(),
    }
}

#[test]
fn a_cold_run_and_a_noop_run_after_any_edit_agree_byte_for_byte() {
    settle(&bin());
    let (tmp, fleet, templates) = workspace();
    let t = s(&templates).to_string();
    let targ = |extra: &[&str]| -> Vec<String> {
        let mut v = vec!["--templates".to_string(), t.clone()];
        v.extend(extra.iter().map(|a| a.to_string()));
        v
    };
    let steps = vec![
        step("a manifest", &[], |f, _| {
            edit(
                &f.join("apps/redis.toml"),
                "redis-server",
                "redis-server-edited",
                false,
            )
        }),
        step("a manifest, same size, mtime put back", &[], |f, _| {
            edit(
                &f.join("apps/redis.toml"),
                "redis-server-edited",
                "redis-server-EDITED",
                true,
            )
        }),
        step("windlass.toml", &[], |f, _| {
            edit(
                &f.join("windlass.toml"),
                "10.89.0.0/24",
                "10.88.0.0/24",
                false,
            )
        }),
        step("windlass.toml, same size, mtime put back", &[], |f, _| {
            edit(
                &f.join("windlass.toml"),
                "10.88.0.0/24",
                "10.87.0.0/24",
                true,
            )
        }),
        step("a new manifest", &[], |f, _| {
            let text = std::fs::read_to_string(f.join("apps/uptime.toml")).unwrap();
            std::fs::write(
                f.join("apps/uptime2.toml"),
                text.replace("3001:3001", "3002:3001"),
            )
            .unwrap();
        }),
        step("a manifest removed", &[], |f, _| {
            std::fs::remove_file(f.join("apps/uptime2.toml")).unwrap();
        }),
        step("templates given", &[], |_, _| {}),
        step("a template override", &[], |_, t| {
            edit(
                &t.join("quadlet/container.j2"),
                "CPUWeight=50",
                "CPUWeight=70",
                false,
            )
        }),
        step(
            "a template override, same size, mtime put back",
            &[],
            |_, t| {
                edit(
                    &t.join("quadlet/container.j2"),
                    "CPUWeight=70",
                    "CPUWeight=60",
                    true,
                )
            },
        ),
        step("a new template override", &[], |_, t| {
            std::fs::create_dir_all(t.join("systemd")).unwrap();
            let default =
                std::fs::read_to_string(common::repo_root().join("templates/systemd/job.timer.j2"))
                    .unwrap();
            std::fs::write(
                t.join("systemd/job.timer.j2"),
                default.replace("[Timer]", "[Timer]\nAccuracySec=1s"),
            )
            .unwrap();
        }),
        step("a template override removed", &[], |_, t| {
            std::fs::remove_file(t.join("quadlet/container.j2")).unwrap();
        }),
        step("the targets", &["--target", "quadlet,systemd"], |_, _| {}),
        step(
            "the targets again",
            &["--target", "quadlet,nixos"],
            |_, _| {},
        ),
        step(
            "the Podman version",
            &["--podman-version", "5.5"],
            |_, _| {},
        ),
        step(
            "the NixOS backend",
            &["--nixos-backend", "quadlet"],
            |_, _| {},
        ),
        step("back to the defaults", &[], |_, _| {}),
    ];
    let warm = tmp.path().join("warm");
    generate(&bin(), &fleet, &warm, &[]);
    for (i, st) in steps.iter().enumerate() {
        (st.change)(&fleet, &templates);
        // From "templates given" on, every step passes --templates.
        let mut args = if i >= 6 && st.what != "back to the defaults" {
            targ(&[])
        } else {
            Vec::new()
        };
        args.extend(st.args.iter().cloned());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let err = generate(&bin(), &fleet, &warm, &args);
        assert!(
            !err.contains(NOOP),
            "after a change to {}, the run was taken for a no-op: {err}",
            st.what
        );
        let cold = tmp.path().join(format!("cold-{i}"));
        generate(&bin(), &fleet, &cold, &args);
        assert_eq!(
            read_tree(&warm),
            read_tree(&cold),
            "after a change to {}, the warm tree is not the cold one",
            st.what
        );
        let again = generate(&bin(), &fleet, &warm, &args);
        assert!(
            again.contains(NOOP),
            "after a change to {}, the second run was not a no-op: {again}",
            st.what
        );
        assert_eq!(read_tree(&warm), read_tree(&cold));
    }
}

#[test]
fn a_record_of_another_generator_version_is_never_used() {
    settle(&bin());
    let (tmp, fleet, _) = workspace();
    let out = tmp.path().join("out");
    generate(&bin(), &fleet, &out, &[]);
    assert!(generate(&bin(), &fleet, &out, &[]).contains(NOOP));
    let rec = std::fs::read_to_string(record(&out)).unwrap();
    let ours = format!("\nversion {}\n", env!("CARGO_PKG_VERSION"));
    assert!(rec.contains(&ours), "{rec}");
    std::fs::write(record(&out), rec.replace(&ours, "\nversion 0.0.0-older\n")).unwrap();
    let tree = read_tree(&out);
    let err = generate(&bin(), &fleet, &out, &[]);
    assert!(!err.contains(NOOP), "{err}");
    assert!(err.contains("unchanged"), "{err}");
    assert_eq!(read_tree(&out), tree);
    // The full run wrote a record of its own version.
    assert!(
        std::fs::read_to_string(record(&out))
            .unwrap()
            .contains(&ours)
    );
    assert!(generate(&bin(), &fleet, &out, &[]).contains(NOOP));
}

#[test]
fn another_windlass_binary_never_uses_the_record() {
    settle(&bin());
    let (tmp, fleet, _) = workspace();
    let out = tmp.path().join("out");
    generate(&bin(), &fleet, &out, &[]);
    assert!(generate(&bin(), &fleet, &out, &[]).contains(NOOP));
    // Same version string, another executable (as after a rebuild).
    let other = tmp.path().join("windlass-other");
    // Copied by another process: a write descriptor open in this one
    // could leak into a child another test thread forks at that moment,
    // and exec'ing the copy would then fail with ETXTBSY.
    let cp = Command::new("cp").arg(bin()).arg(&other).status().unwrap();
    assert!(cp.success());
    let err = generate(&other, &fleet, &out, &[]);
    assert!(!err.contains(NOOP), "{err}");
    let err = generate(&bin(), &fleet, &out, &[]);
    assert!(!err.contains(NOOP), "{err}");
}

#[test]
fn a_record_cut_short_or_garbled_is_ignored() {
    settle(&bin());
    let (tmp, fleet, _) = workspace();
    let out = tmp.path().join("out");
    generate(&bin(), &fleet, &out, &[]);
    let rec = std::fs::read_to_string(record(&out)).unwrap();
    let tree = read_tree(&out);
    let cut = rec.strip_suffix("end\n").unwrap().to_string();
    let garbled = rec.replacen("output ", "output x", 1);
    let half = rec[..rec.len() / 2].to_string();
    for bad in [cut, garbled, half, String::new()] {
        std::fs::write(record(&out), bad).unwrap();
        let err = generate(&bin(), &fleet, &out, &[]);
        assert!(!err.contains(NOOP), "{err}");
        assert_eq!(read_tree(&out), tree);
    }
}

#[test]
fn a_tampered_output_tree_is_repaired_as_a_cold_run_would() {
    settle(&bin());
    let (tmp, fleet, _) = workspace();
    let out = tmp.path().join("out");
    let cold = tmp.path().join("cold");
    generate(&bin(), &fleet, &cold, &[]);
    let want = read_tree(&cold);
    generate(&bin(), &fleet, &out, &[]);
    type Tamper = fn(&Path);
    let cases: [(&str, Tamper, &str, &str); 7] = [
        (
            "same size, mtime put back",
            |out| edit(&out.join("quadlet/lnd.container"), "lnd", "lnx", true),
            "would change: quadlet/lnd.container",
            "(0 added, 1 changed, 0 removed)",
        ),
        (
            "the generation manifest, same size",
            |out| edit(&out.join("windlass-generation.json"), "lnd", "lnx", true),
            "would change: windlass-generation.json",
            "(0 added, 1 changed, 0 removed)",
        ),
        (
            "deleted",
            |out| std::fs::remove_file(out.join("nixos/apps/redis.nix")).unwrap(),
            "would add: nixos/apps/redis.nix",
            "(1 added, 0 changed, 0 removed)",
        ),
        (
            "mode changed",
            |out| {
                use std::os::unix::fs::PermissionsExt;
                let p = out.join("quadlet/lnd.container");
                std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o600)).unwrap();
            },
            "would change: quadlet/lnd.container",
            "(0 added, 1 changed, 0 removed)",
        ),
        (
            "a symlink to the same content in place of a file",
            |out| {
                let p = out.join("nixos/apps/redis.nix");
                let elsewhere = out.parent().unwrap().join("redis.nix");
                std::fs::rename(&p, &elsewhere).unwrap();
                std::os::unix::fs::symlink(&elsewhere, &p).unwrap();
            },
            "would change: nixos/apps/redis.nix",
            "(0 added, 1 changed, 0 removed)",
        ),
        (
            "an extra file",
            |out| std::fs::write(out.join("quadlet/extra.container"), "[Unit]\n").unwrap(),
            "would remove: quadlet/extra.container",
            "(0 added, 0 changed, 1 removed)",
        ),
        (
            "an extra file in a new directory",
            |out| {
                std::fs::create_dir(out.join("quadlet/sub")).unwrap();
                std::fs::write(out.join("quadlet/sub/x"), "x").unwrap();
            },
            "would remove: quadlet/sub/x",
            "(0 added, 0 changed, 1 removed)",
        ),
    ];
    for (what, tamper, check_says, write_says) in cases {
        assert!(generate(&bin(), &fleet, &out, &[]).contains(NOOP), "{what}");
        tamper(&out);
        let o = run(&bin(), &["generate", s(&fleet), "-o", s(&out), "--check"]);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{what}: {err}");
        assert!(err.contains(check_says), "{what}: {err}");
        let err = generate(&bin(), &fleet, &out, &[]);
        assert!(err.contains(write_says), "{what}: {err}");
        assert_eq!(read_tree(&out), want, "{what}: not repaired");
        for p in want.keys() {
            let m = std::fs::symlink_metadata(out.join(p)).unwrap();
            assert!(
                m.is_file() && m.mode() & 0o7777 == 0o644,
                "{what}: {p} is not a regular file of mode 0644: {:o}",
                m.mode()
            );
        }
    }
}

#[test]
fn check_uses_the_record_and_never_writes_it() {
    settle(&bin());
    let (tmp, fleet, _) = workspace();
    let out = tmp.path().join("out");
    generate(&bin(), &fleet, &out, &[]);
    // Make sure the record needs no renewal, then keep it as it is.
    generate(&bin(), &fleet, &out, &[]);
    let rec = std::fs::read(record(&out)).unwrap();
    let rec_stamp = std::fs::metadata(record(&out)).unwrap().ino();
    let o = run(&bin(), &["generate", s(&fleet), "-o", s(&out), "--check"]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(err.contains(NOOP), "{err}");
    edit(&fleet.join("apps/lnd.toml"), "my node", "my nodf", true);
    let o = run(&bin(), &["generate", s(&fleet), "-o", s(&out), "--check"]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("would change: quadlet/lnd.container"), "{err}");
    assert_eq!(std::fs::read(record(&out)).unwrap(), rec);
    assert_eq!(std::fs::metadata(record(&out)).unwrap().ino(), rec_stamp);
    // Without a record, --check does not write one.
    std::fs::remove_file(record(&out)).unwrap();
    edit(&fleet.join("apps/lnd.toml"), "my nodf", "my node", false);
    let o = run(&bin(), &["generate", s(&fleet), "-o", s(&out), "--check"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(!record(&out).exists());
}

#[test]
fn inputs_edited_long_after_the_record_keeping_size_and_mtime_are_noticed() {
    settle(&bin());
    let (tmp, fleet, templates) = workspace();
    let args = ["--templates", s(&templates)];
    // Old enough that the record trusts their stat data without reading
    // them: only the ctime can tell the edits below.
    settle(&fleet.join("apps/redis.toml"));
    settle(&templates.join("quadlet/container.j2"));
    let out = tmp.path().join("out");
    generate(&bin(), &fleet, &out, &args);
    assert!(generate(&bin(), &fleet, &out, &args).contains(NOOP));
    let edits: [(&str, PathBuf, &str, &str); 3] = [
        (
            "a manifest",
            fleet.join("apps/redis.toml"),
            "redis-server",
            "redis-servex",
        ),
        (
            "windlass.toml",
            fleet.join("windlass.toml"),
            "10.89.0.0/24",
            "10.88.0.0/24",
        ),
        (
            "a template override",
            templates.join("quadlet/container.j2"),
            "CPUWeight=50",
            "CPUWeight=60",
        ),
    ];
    for (i, (what, path, from, to)) in edits.iter().enumerate() {
        edit(path, from, to, true);
        let err = generate(&bin(), &fleet, &out, &args);
        assert!(!err.contains(NOOP), "{what}: {err}");
        assert!(err.contains("changed"), "{what}: {err}");
        let cold = tmp.path().join(format!("cold-{i}"));
        generate(&bin(), &fleet, &cold, &args);
        assert_eq!(read_tree(&out), read_tree(&cold), "{what}");
    }
}

#[test]
fn the_record_holds_every_file_s_own_sha256() {
    settle(&bin());
    let (tmp, fleet, _) = workspace();
    let out = tmp.path().join("out");
    generate(&bin(), &fleet, &out, &[]);
    let text = std::fs::read_to_string(record(&out)).unwrap();
    let mut outputs = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("output ") {
            let f: Vec<&str> = rest.splitn(10, ' ').collect();
            outputs.insert(f[9].to_string(), f[8].to_string());
        }
    }
    let tree = read_tree(&out);
    assert_eq!(
        outputs.keys().collect::<Vec<_>>(),
        tree.keys().collect::<Vec<_>>()
    );
    for (path, content) in &tree {
        use sha2::Digest;
        let sha = hex::encode(sha2::Sha256::digest(content));
        assert_eq!(outputs[path], sha, "{path}: the record's sha256");
    }
    // The generation manifest among them, hashed while the tree is written.
    assert!(outputs.contains_key("windlass-generation.json"));
}

#[test]
fn the_record_lives_beside_the_tree_and_leaves_nothing_else_behind() {
    settle(&bin());
    let (tmp, fleet, _) = workspace();
    let out = tmp.path().join("out");
    generate(&bin(), &fleet, &out, &[]);
    generate(&bin(), &fleet, &out, &[]);
    edit(
        &fleet.join("apps/redis.toml"),
        "redis-server",
        "redis-servex",
        false,
    );
    generate(&bin(), &fleet, &out, &[]);
    generate(&bin(), &fleet, &out, &[]);
    let mut names: Vec<String> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [".out.windlass-record", "fleet", "out", "templates"],
        "stray files beside the tree"
    );
    assert!(
        !read_tree(&out).keys().any(|p| p.contains("record")),
        "the record must not be part of the tree"
    );
}

#[test]
fn a_record_others_could_write_or_that_is_not_ours_is_never_used() {
    use std::os::unix::fs::PermissionsExt;
    settle(&bin());
    let (tmp, fleet, _) = workspace();
    let out = tmp.path().join("out");
    generate(&bin(), &fleet, &out, &[]);
    let tree = read_tree(&out);
    let warm = generate(&bin(), &fleet, &out, &[]);
    assert!(warm.contains(NOOP), "the fast path was not taken: {warm}");
    let rec = record(&out);
    let undo = |mode: u32| {
        std::fs::set_permissions(&rec, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    for (what, mode) in [("group-writable", 0o664), ("world-writable", 0o646)] {
        undo(mode);
        let err = generate(&bin(), &fleet, &out, &[]);
        assert!(!err.contains(NOOP), "a {what} record was used: {err}");
        assert_eq!(read_tree(&out), tree);
    }
    // Another user's record (the tests run as root, so chown works).
    let o = Command::new("chown")
        .arg("65534")
        .arg(&rec)
        .status()
        .unwrap();
    assert!(o.success());
    undo(0o644);
    let err = generate(&bin(), &fleet, &out, &[]);
    assert!(!err.contains(NOOP), "another user's record was used: {err}");
    // A symlink in its place is not followed.
    let real = tmp.path().join("elsewhere");
    generate(&bin(), &fleet, &out, &[]);
    std::fs::rename(&rec, &real).unwrap();
    std::os::unix::fs::symlink(&real, &rec).unwrap();
    let err = generate(&bin(), &fleet, &out, &[]);
    assert!(!err.contains(NOOP), "a symlinked record was used: {err}");
    assert_eq!(read_tree(&out), tree);
}

/// What `generate --check` said: its exit code, whether it found OUT up to
/// date, and its `would …` lines (sorted), without the fast path's words.
fn check_verdict(
    fleet: &Path,
    out: &Path,
    args: &[&str],
) -> (Option<i32>, bool, Vec<String>, bool) {
    let mut all = vec!["generate", s(fleet), "-o", s(out), "--check"];
    all.extend_from_slice(args);
    let o = run(&bin(), &all);
    let err = stderr(&o);
    let mut would: Vec<String> = err
        .lines()
        .filter(|l| l.starts_with("would "))
        .map(String::from)
        .collect();
    would.sort();
    let ok = err.contains(&format!("ok: {} is up to date", out.display()));
    (o.status.code(), ok, would, err.contains(NOOP))
}

#[test]
fn check_says_the_same_with_and_without_the_record() {
    settle(&bin());
    let (tmp, fleet, templates) = workspace();
    let out = tmp.path().join("out");
    let t = s(&templates).to_string();
    generate(&bin(), &fleet, &out, &["--templates", &t]);
    // Renewed once, so the record is trusted without reading the tree.
    generate(&bin(), &fleet, &out, &["--templates", &t]);
    let pristine = tmp.path().join("pristine");
    copy_dir(&fleet, &pristine.join("fleet"));
    copy_dir(&templates, &pristine.join("templates"));
    copy_dir(&out, &pristine.join("out"));
    let record_text = std::fs::read(record(&out)).unwrap();
    /// A change to the fleet, the templates or the tree; whether the run
    /// passes `--templates`; its other options.
    type Situation = (
        &'static str,
        fn(&Path, &Path, &Path),
        bool,
        &'static [&'static str],
    );
    let situations: [Situation; 8] = [
        ("up to date", |_, _, _| {}, true, &[]),
        (
            "a manifest edited",
            |f, _, _| {
                edit(
                    &f.join("apps/redis.toml"),
                    "redis-server",
                    "redis-servex",
                    true,
                )
            },
            true,
            &[],
        ),
        (
            "windlass.toml edited",
            |f, _, _| {
                edit(
                    &f.join("windlass.toml"),
                    "10.89.0.0/24",
                    "10.88.0.0/24",
                    true,
                )
            },
            true,
            &[],
        ),
        (
            "a template override edited",
            |_, t, _| {
                edit(
                    &t.join("quadlet/container.j2"),
                    "CPUWeight=50",
                    "CPUWeight=60",
                    true,
                )
            },
            true,
            &[],
        ),
        (
            "an output file edited",
            |_, _, o| edit(&o.join("quadlet/lnd.container"), "lnd", "lnx", true),
            true,
            &[],
        ),
        (
            "an output file deleted",
            |_, _, o| std::fs::remove_file(o.join("nixos/apps/redis.nix")).unwrap(),
            true,
            &[],
        ),
        (
            "other targets",
            |_, _, _| {},
            true,
            &["--target", "quadlet"],
        ),
        ("no template override", |_, _, _| {}, false, &[]),
    ];
    for (what, change, with_templates, extra) in situations {
        change(&fleet, &templates, &out);
        let mut args: Vec<&str> = Vec::new();
        if with_templates {
            args.extend(["--templates", t.as_str()]);
        }
        args.extend_from_slice(extra);
        let (code, ok, would, fast) = check_verdict(&fleet, &out, &args);
        assert_eq!(
            fast,
            what == "up to date",
            "{what}: fast path taken: {fast}"
        );
        // The same question without the record: the full comparison.
        std::fs::remove_file(record(&out)).unwrap();
        let (slow_code, slow_ok, slow_would, slow_fast) = check_verdict(&fleet, &out, &args);
        assert!(!slow_fast, "{what}: no record, yet the fast path");
        assert_eq!(
            (code, ok, &would),
            (slow_code, slow_ok, &slow_would),
            "{what}: --check with the record and without it disagree"
        );
        assert_eq!(ok, what == "up to date", "{what}: {code:?} {would:?}");
        assert_eq!(code, Some(if ok { 0 } else { 1 }), "{what}: {would:?}");
        // Back to the recorded state: the inputs, the tree and the record.
        for (dir, name) in [(&fleet, "fleet"), (&templates, "templates"), (&out, "out")] {
            std::fs::remove_dir_all(dir).unwrap();
            copy_dir(&pristine.join(name), dir);
        }
        std::fs::write(record(&out), &record_text).unwrap();
    }
}

/// The record can only vouch for inputs it knows of: the fleet's files
/// (found by `model::input_files`, read by `input_file::read`), the
/// template overrides (likewise), the options and the binary. A new way
/// for `generate` to read a file or the environment would make a no-op run
/// miss its changes, so every such call in the generator's source must be
/// one of those listed here, each with the reason it is safe.
#[test]
fn generate_reads_nothing_the_record_does_not_cover() {
    const CALLS: &[&str] = &[
        "fs::read(",
        "File::open(",
        "OpenOptions::new(",
        "openat(",
        "read_to_string(",
        "read_dir(",
        "read_link(",
        "env::var(",
        "env::vars(",
        "env::var_os(",
        "env::vars_os(",
        "current_dir(",
        "canonicalize(",
    ];
    // (file under generator/src, call, how many, why the record covers it)
    const ALLOWED: &[(&str, &str, usize, &str)] = &[
        (
            "input_file.rs",
            "File::open(",
            1,
            "the reader of every recorded input",
        ),
        (
            "model/build.rs",
            "read_dir(",
            1,
            "`discover`, which the record shares",
        ),
        (
            "output.rs",
            "fs::read(",
            1,
            "OUT, whose files the record holds",
        ),
        (
            "output.rs",
            "read_dir(",
            2,
            "OUT, whose files the record holds",
        ),
        (
            "output.rs",
            "File::open(",
            3,
            "OUT's new files and directories, to create files in them and fsync (or syncfs) them",
        ),
        ("output.rs", "openat(", 1, "OUT's new files, to write them"),
        (
            "output.rs",
            "read_to_string(",
            2,
            "the umask (/proc/self/status): whether to chmod, the mode is 0644 either way; \
             /proc/meminfo: how to fsync, never what is written",
        ),
        (
            "par.rs",
            "env::var(",
            1,
            "WINDLASS_THREADS: how many threads, never what is written",
        ),
        ("record.rs", "fs::read(", 1, "a recorded file, to verify it"),
        (
            "record.rs",
            "read_dir(",
            1,
            "OUT, whose files the record holds",
        ),
        ("record.rs", "OpenOptions::new(", 2, "the record itself"),
        ("main.rs", "read_to_string(", 2, "`import podman` only"),
        ("main.rs", "env::vars(", 1, "`import` only"),
    ];
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let src = common::repo_root().join("generator/src");
    let mut files = Vec::new();
    walk(&src, &mut files);
    assert!(files.len() > 20, "generator/src not found: {files:?}");
    let mut found = BTreeMap::new();
    for f in files {
        let rel = f.strip_prefix(&src).unwrap().to_str().unwrap().to_string();
        // `windlass import` reads compose files and env files; `generate`
        // never calls it.
        if rel.starts_with("import/") || rel == "import.rs" {
            continue;
        }
        let text = std::fs::read_to_string(&f).unwrap();
        // Unit tests read what they like.
        let code = text.split("\n#[cfg(test)]\n").next().unwrap();
        for call in CALLS {
            let n = code.matches(call).count();
            if n > 0 {
                found.insert((rel.clone(), call.to_string()), n);
            }
        }
    }
    let allowed: BTreeMap<(String, String), usize> = ALLOWED
        .iter()
        .map(|(f, c, n, _)| ((f.to_string(), c.to_string()), *n))
        .collect();
    assert_eq!(
        found, allowed,
        "a new file or environment read in generator/src: route it through \
         input_file::read and the record (generator/src/record.rs), or list \
         it here with the reason the no-op record still covers it"
    );
}
