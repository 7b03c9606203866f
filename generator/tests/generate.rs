//! The `generate` command end to end: golden output for the example fleet,
//! determinism, idempotence (mtimes kept), `--check`, Podman version
//! targeting, template overrides and the schema.

mod common;

use common::read_tree;

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn windlass(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_windlass"))
        .args(args)
        .output()
        .unwrap()
}

fn examples() -> PathBuf {
    common::repo_root().join("examples")
}

fn torture() -> PathBuf {
    common::repo_root().join("generator/tests/fleets/torture")
}

fn hooks() -> PathBuf {
    common::repo_root().join("generator/tests/fleets/hooks")
}

fn settings() -> PathBuf {
    common::repo_root().join("generator/tests/fleets/settings")
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn generate_ok(fleet: &Path, out: &Path, extra: &[&str]) {
    let mut args = vec!["generate", s(fleet), "-o", s(out)];
    args.extend_from_slice(extra);
    let o = windlass(&args);
    assert!(
        o.status.success(),
        "generate failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn example_fleet_output_matches_the_golden_files() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    generate_ok(&examples(), &out, &[]);
    for (path, bytes) in read_tree(&out) {
        let name = format!("examples__{}", path.replace('/', "__"));
        insta::assert_snapshot!(name, String::from_utf8(bytes).unwrap());
    }
}

#[test]
fn two_runs_give_byte_identical_trees() {
    let tmp = tempfile::tempdir().unwrap();
    for fleet in [examples(), torture(), hooks()] {
        let a = tmp.path().join(format!(
            "a-{}",
            fleet.file_name().unwrap().to_string_lossy()
        ));
        let b = tmp.path().join(format!(
            "b-{}",
            fleet.file_name().unwrap().to_string_lossy()
        ));
        generate_ok(&fleet, &a, &[]);
        generate_ok(&fleet, &b, &[]);
        let (ta, tb) = (read_tree(&a), read_tree(&b));
        assert!(ta.len() > 5);
        assert_eq!(ta, tb);
    }
}

#[test]
fn a_run_on_unchanged_input_rewrites_no_file() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    generate_ok(&examples(), &out, &[]);
    let stamp = |root: &Path| -> BTreeMap<String, (u64, i64, i64)> {
        read_tree(root)
            .keys()
            .map(|p| {
                let m = std::fs::metadata(root.join(p)).unwrap();
                (p.clone(), (m.ino(), m.mtime(), m.mtime_nsec()))
            })
            .collect()
    };
    let before = stamp(&out);
    let dir_ino = std::fs::metadata(&out).unwrap().ino();
    std::thread::sleep(std::time::Duration::from_millis(20));
    generate_ok(&examples(), &out, &[]);
    assert_eq!(stamp(&out), before, "an unchanged generation touched files");
    assert_eq!(
        std::fs::metadata(&out).unwrap().ino(),
        dir_ino,
        "an unchanged generation replaced the directory"
    );
}

#[test]
fn a_changed_manifest_rewrites_only_what_changed_and_keeps_other_mtimes() {
    let tmp = tempfile::tempdir().unwrap();
    let fleet = tmp.path().join("fleet");
    copy_dir(&examples(), &fleet);
    let out = tmp.path().join("out");
    generate_ok(&fleet, &out, &[]);
    let before: BTreeMap<String, i64> = read_tree(&out)
        .keys()
        .map(|p| {
            (
                p.clone(),
                std::fs::metadata(out.join(p)).unwrap().mtime_nsec(),
            )
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(20));
    edit(
        &fleet.join("apps/redis.toml"),
        "redis-server",
        "redis-server-edited",
    );
    generate_ok(&fleet, &out, &[]);
    for (p, t) in &before {
        let now = std::fs::metadata(out.join(p)).unwrap().mtime_nsec();
        if [
            "quadlet/redis.container",
            "nixos/apps/redis.nix",
            // One Guix module holds every app.
            "guix/windlass-apps.scm",
            "windlass-generation.json",
        ]
        .contains(&p.as_str())
        {
            continue;
        }
        assert_eq!(
            now, *t,
            "{p} was rewritten although its content did not change"
        );
    }
    let redis = std::fs::read_to_string(out.join("quadlet/redis.container")).unwrap();
    assert!(redis.contains("redis-server-edited"));
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

fn edit(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains(from));
    std::fs::write(path, text.replace(from, to)).unwrap();
}

#[test]
fn check_is_zero_on_fresh_output_and_one_after_a_manifest_edit() {
    let tmp = tempfile::tempdir().unwrap();
    let fleet = tmp.path().join("fleet");
    copy_dir(&examples(), &fleet);
    let out = tmp.path().join("out");
    generate_ok(&fleet, &out, &[]);
    let tree = read_tree(&out);
    let o = windlass(&["generate", s(&fleet), "-o", s(&out), "--check"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    edit(
        &fleet.join("apps/lnd.toml"),
        "ALIAS = \"my node\"",
        "ALIAS = \"renamed\"",
    );
    let o = windlass(&["generate", s(&fleet), "-o", s(&out), "--check"]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("would change: quadlet/lnd.container"), "{err}");
    assert_eq!(read_tree(&out), tree, "--check wrote something");
    let missing = tmp.path().join("missing");
    let o = windlass(&["generate", s(&fleet), "-o", s(&missing), "--check"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(!missing.exists());
}

#[test]
fn a_directory_not_written_by_windlass_is_never_replaced() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("precious");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("notes.txt"), "keep me").unwrap();
    let o = windlass(&["generate", s(&examples()), "-o", s(&out)]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not written by windlass"));
    assert_eq!(read_tree(&out).len(), 1);
}

/// Quadlet keys of one Podman version, straight from the shared table;
/// for Podman 6 (which the table lacks), 5.8's plus `[Volume] UID=` and
/// `GID=` (podman-container-tools/podman v6.0.0-rc1, quadlet.go).
fn version_keys(v: &str) -> BTreeMap<String, BTreeSet<String>> {
    let text =
        std::fs::read_to_string(common::repo_root().join("generator/data/quadlet-keys.json"))
            .unwrap();
    let table: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> =
        serde_json::from_str(&text).unwrap();
    if v.starts_with("6.") {
        let mut keys = table["v5.8.0"].clone();
        let volume = keys.get_mut("Volume").unwrap();
        volume.insert("UID".into());
        volume.insert("GID".into());
        return keys;
    }
    table[&format!("v{v}.0")].clone()
}

fn quadlet_keys_used(out: &Path) -> Vec<(String, String, String)> {
    let mut used = Vec::new();
    for (path, bytes) in read_tree(out) {
        if !path.starts_with("quadlet/") {
            continue;
        }
        let mut section = String::new();
        for line in String::from_utf8(bytes).unwrap().lines() {
            if let Some(sec) = line.strip_prefix('[') {
                section = sec.trim_end_matches(']').to_string();
            } else if let Some((k, _)) = line.split_once('=')
                && !line.starts_with('#')
            {
                used.push((path.clone(), section.clone(), k.to_string()));
            }
        }
    }
    used
}

#[test]
fn every_podman_version_gets_only_keys_it_knows() {
    let versions = [
        "4.4", "4.5", "4.6", "4.7", "4.8", "4.9", "5.0", "5.1", "5.2", "5.3", "5.4", "5.5", "5.6",
        "5.7", "5.8", "6.0", "6.1",
    ];
    let tmp = tempfile::tempdir().unwrap();
    for v in versions {
        let keys = version_keys(v);
        for fleet in [examples(), torture(), settings()] {
            let out = tmp.path().join(format!(
                "{v}-{}",
                fleet.file_name().unwrap().to_string_lossy()
            ));
            generate_ok(&fleet, &out, &["--podman-version", v]);
            let used = quadlet_keys_used(&out);
            assert!(used.len() > 20);
            for (path, section, key) in used {
                if let Some(known) = keys.get(&section) {
                    assert!(
                        known.contains(&key),
                        "Podman {v}: {path} uses [{section}] {key}, which it does not know"
                    );
                }
            }
        }
    }
}

/// Podman 6 targets generate every fleet (all targets), and since the
/// only keys 6.0 adds (`[Volume] UID=`/`GID=`) are ones windlass does not
/// write, their Quadlet files are 5.8's, byte for byte; the Podman 5.4
/// oracle runs on 5.x output only (no 6.x Quadlet can be had offline).
#[test]
fn podman_6_targets_generate_and_write_the_quadlet_files_of_5_8() {
    let tmp = tempfile::tempdir().unwrap();
    for fleet in [examples(), torture(), settings()] {
        let name = fleet.file_name().unwrap().to_string_lossy().into_owned();
        let quadlet = |v: &str| {
            let out = tmp.path().join(format!("{name}-{v}"));
            generate_ok(&fleet, &out, &["--podman-version", v]);
            read_tree(&out)
                .into_iter()
                .filter(|(p, _)| p.starts_with("quadlet/") || p.starts_with("systemd/"))
                .collect::<BTreeMap<_, _>>()
        };
        let v58 = quadlet("5.8");
        assert!(!v58.is_empty());
        for v in ["6.0", "6.1"] {
            assert_eq!(quadlet(v), v58, "{name}: Podman {v}");
        }
    }
    // `[host] podman` takes 6.x as well.
    let fleet = tmp.path().join("fleet");
    std::fs::create_dir_all(fleet.join("apps")).unwrap();
    std::fs::write(fleet.join("windlass.toml"), "[host]\npodman = \"6.1.3\"\n").unwrap();
    std::fs::write(
        fleet.join("apps/web.toml"),
        "[container]\nimage = \"docker.io/library/busybox:1.36\"\nmemory = \"64Mi\"\n",
    )
    .unwrap();
    let out = tmp.path().join("host-6.1");
    generate_ok(&fleet, &out, &[]);
    let web = std::fs::read_to_string(out.join("quadlet/web.container")).unwrap();
    assert!(web.contains("\nMemory=67108864\n"), "{web}");
}

#[test]
fn memory_is_a_key_from_podman_5_5_and_a_flag_before() {
    let tmp = tempfile::tempdir().unwrap();
    for (v, key) in [("4.9", false), ("5.4", false), ("5.5", true)] {
        let out = tmp.path().join(v);
        generate_ok(&examples(), &out, &["--podman-version", v]);
        let lnd = std::fs::read_to_string(out.join("quadlet/lnd.container")).unwrap();
        assert_eq!(
            lnd.contains("\nMemory=2147483648\n"),
            key,
            "Podman {v}:\n{lnd}"
        );
        assert_eq!(
            lnd.contains("--memory=2147483648"),
            !key,
            "Podman {v}:\n{lnd}"
        );
        assert_eq!(lnd.contains("Notify=healthy"), v != "4.9");
    }
}

/// Each container setting is its own Quadlet key from the Podman version
/// whose Quadlet has it (per the key table), and its `podman run` flag in
/// `PodmanArgs=` before; `privileged`, `label=user:` and a sysctl value
/// with spaces are always flags.
#[test]
fn container_settings_are_keys_where_quadlet_has_them_and_flags_before() {
    // (key line, flag, first Podman version whose Quadlet has the key)
    let table: &[(&str, &str, &str)] = &[
        ("ShmSize=268435456", "--shm-size=268435456", "4.7"),
        (
            "NoNewPrivileges=true",
            "--security-opt=no-new-privileges",
            "4.4",
        ),
        (
            "SecurityLabelType=container_runtime_t",
            "--security-opt=label=type:container_runtime_t",
            "4.5",
        ),
        (
            "SecurityLabelLevel=s0:c100,c200",
            "--security-opt=label=level:s0:c100,c200",
            "4.5",
        ),
        (
            "SecurityLabelFileType=container_file_t",
            "--security-opt=label=filetype:container_file_t",
            "4.5",
        ),
        (
            "SeccompProfile=unconfined",
            "--security-opt=seccomp=unconfined",
            "4.4",
        ),
        (
            "AppArmor=unconfined",
            "--security-opt=apparmor=unconfined",
            "5.8",
        ),
        (
            "Mask=/proc/acpi:/proc/kcore",
            "--security-opt=mask=/proc/acpi:/proc/kcore",
            "4.6",
        ),
        ("Unmask=/proc/sys", "--security-opt=unmask=/proc/sys", "4.6"),
        (
            "Ulimit=nofile=20000:40000",
            "--ulimit=nofile=20000:40000",
            "4.7",
        ),
        ("Ulimit=core=-1", "--ulimit=core=-1", "4.7"),
        ("DropCapability=ALL", "--cap-drop=ALL", "4.4"),
        (
            "AddCapability=CAP_NET_ADMIN",
            "--cap-add=CAP_NET_ADMIN",
            "4.4",
        ),
        (
            "Tmpfs=/tmp:rw,size=64m,mode=1777,noexec",
            "--tmpfs=/tmp:rw,size=64m,mode=1777,noexec",
            "4.5",
        ),
        (
            "Sysctl=net.core.somaxconn=1024",
            "--sysctl=net.core.somaxconn=1024",
            "4.6",
        ),
        ("DNS=2001:db8::53", "--dns=2001:db8::53", "4.7"),
        (
            "HostName=db.example.internal",
            "--hostname=db.example.internal",
            "4.6",
        ),
        (
            "AddDevice=/dev/null:/dev/mynull:rw",
            "--device=/dev/null:/dev/mynull:rw",
            "4.4",
        ),
        ("RunInit=true", "--init", "4.4"),
        ("StopSignal=SIGINT", "--stop-signal=SIGINT", "5.2"),
        ("PidsLimit=512", "--pids-limit=512", "4.7"),
        ("Volume=pgdata.volume:/var/lib/postgresql/data:Z", "", "4.4"),
        ("Volume=/srv/pg/conf:/etc/postgresql:ro,z", "", "4.4"),
    ];
    let always_flags = [
        "\"--security-opt=label=user:system_u\"",
        "\"--sysctl=kernel.sem=250 32000 100 128\"",
    ];
    let version = |v: &str| {
        let (a, b) = v.split_once('.').unwrap();
        (a.parse::<u32>().unwrap(), b.parse::<u32>().unwrap())
    };
    let tmp = tempfile::tempdir().unwrap();
    for v in [
        "4.4", "4.5", "4.6", "4.7", "4.8", "4.9", "5.0", "5.1", "5.2", "5.3", "5.4", "5.5", "5.6",
        "5.7", "5.8", "6.0", "6.1",
    ] {
        let out = tmp.path().join(v);
        generate_ok(&settings(), &out, &["--podman-version", v]);
        let unit = std::fs::read_to_string(out.join("quadlet/hardened.container")).unwrap();
        let lines: Vec<&str> = unit.lines().collect();
        let args = lines
            .iter()
            .find(|l| l.starts_with("PodmanArgs="))
            .copied()
            .unwrap_or_default();
        for (key, flag, since) in table {
            let has = version(v) >= version(since);
            assert_eq!(lines.contains(key), has, "Podman {v}: {key}\n{unit}");
            if !flag.is_empty() {
                assert_eq!(
                    args.contains(&format!("\"{flag}\"")),
                    !has,
                    "Podman {v}: {flag}\n{unit}"
                );
            }
        }
        for flag in always_flags {
            assert!(args.contains(flag), "Podman {v}: {flag}\n{unit}");
        }
        let privileged = std::fs::read_to_string(out.join("quadlet/privileged.container")).unwrap();
        let args = privileged
            .lines()
            .find(|l| l.starts_with("PodmanArgs="))
            .unwrap_or_default();
        assert!(args.contains("\"--privileged\""), "{privileged}");
    }
}

/// `label=nested` is a Quadlet key from Podman 4.6 and a flag in 4.5;
/// Podman 4.4 hands it to SELinux, which refuses it, so windlass refuses
/// it for 4.4 naming the app, the flag and the version it needs.
#[test]
fn a_setting_older_podman_cannot_run_is_refused_for_that_version() {
    let tmp = tempfile::tempdir().unwrap();
    let fleet = tmp.path().join("fleet");
    std::fs::create_dir_all(&fleet).unwrap();
    std::fs::write(
        fleet.join("nest.toml"),
        "[container]\nimage = \"quay.io/podman/stable:v5.4\"\nsecurity_opt = [\"label=nested\"]\n",
    )
    .unwrap();
    let out = tmp.path().join("out");
    let o = windlass(&[
        "generate",
        s(&fleet),
        "-o",
        s(&out),
        "--podman-version",
        "4.4",
    ]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{stderr}");
    assert!(
        stderr.contains(
            "app `nest`: Podman 4.4 cannot carry --security-opt=label=nested (it needs Podman 4.5)"
        ),
        "{stderr}"
    );
    assert!(!out.exists());
    for (v, line) in [
        ("4.5", "PodmanArgs=\"--security-opt=label=nested\""),
        ("4.6", "SecurityLabelNested=true"),
    ] {
        let out = tmp.path().join(v);
        generate_ok(
            &fleet,
            &out,
            &["--podman-version", v, "--target", "quadlet"],
        );
        let unit = std::fs::read_to_string(out.join("quadlet/nest.container")).unwrap();
        assert!(unit.lines().any(|l| l == line), "Podman {v}:\n{unit}");
    }
}

/// NixOS and Guix have no options for these settings: each is one whole
/// `podman run` argument in `extraOptions` / `extra-arguments`, and volume
/// options reach both unchanged.
#[test]
fn container_settings_are_podman_flags_for_nixos_and_guix() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    generate_ok(&settings(), &out, &[]);
    let nix = std::fs::read_to_string(out.join("nixos/apps/hardened.nix")).unwrap();
    let scm = std::fs::read_to_string(out.join("guix/windlass-apps.scm")).unwrap();
    for arg in [
        "--shm-size=268435456",
        "--security-opt=no-new-privileges",
        "--security-opt=label=level:s0:c100,c200",
        "--security-opt=apparmor=unconfined",
        "--ulimit=nofile=20000:40000",
        "--cap-drop=ALL",
        "--cap-add=CAP_SYS_NICE",
        "--tmpfs=/run",
        "--sysctl=kernel.sem=250 32000 100 128",
        "--dns=10.98.0.1",
        "--hostname=db.example.internal",
        "--device=/dev/fuse",
        "--init",
        "--stop-signal=SIGINT",
        "--pids-limit=512",
        "pgdata:/var/lib/postgresql/data:Z",
        "/srv/pg/conf:/etc/postgresql:ro,z",
    ] {
        let quoted = format!("\"{arg}\"");
        assert!(nix.contains(&quoted), "NixOS lacks {arg}:\n{nix}");
        assert!(scm.contains(&quoted), "Guix lacks {arg}:\n{scm}");
    }
    let nix = std::fs::read_to_string(out.join("nixos/apps/privileged.nix")).unwrap();
    assert!(nix.contains("\"--privileged\""), "{nix}");
    assert!(scm.contains("\"--privileged\""), "{scm}");
}

#[test]
fn an_unsupported_podman_version_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    for v in ["4.3", "5.9", "6.2", "7.0", "4.10", "x"] {
        let o = windlass(&[
            "generate",
            s(&examples()),
            "-o",
            s(&out),
            "--podman-version",
            v,
        ]);
        assert_eq!(o.status.code(), Some(2), "{v}");
        assert!(!out.exists());
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("from 4.4 to 6.1"), "{v}: {err}");
        if v == "6.2" || v == "7.0" {
            assert!(err.contains("newer than the newest"), "{v}: {err}");
        }
    }
}

#[test]
fn overridden_templates_are_used_and_still_validated() {
    let tmp = tempfile::tempdir().unwrap();
    let tdir = tmp.path().join("templates/quadlet");
    std::fs::create_dir_all(&tdir).unwrap();
    let default =
        std::fs::read_to_string(common::repo_root().join("templates/quadlet/container.j2"))
            .unwrap();
    std::fs::write(
        tdir.join("container.j2"),
        default.replace("[Service]", "[Service]\nCPUWeight=50"),
    )
    .unwrap();
    let out = tmp.path().join("out");
    generate_ok(
        &examples(),
        &out,
        &["--templates", s(&tmp.path().join("templates"))],
    );
    assert!(
        std::fs::read_to_string(out.join("quadlet/lnd.container"))
            .unwrap()
            .contains("\nCPUWeight=50\n")
    );

    // An override that writes a key Podman 5.4 does not know is refused,
    // and so is one that prints a raw, unescaped value; nothing is written.
    let refused = |template: String, expected: &str| {
        std::fs::write(tdir.join("container.j2"), template).unwrap();
        let out2 = tmp.path().join("out2");
        let templates = tmp.path().join("templates");
        let o = windlass(&[
            "generate",
            s(&examples()),
            "-o",
            s(&out2),
            "--templates",
            s(&templates),
        ]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{err}");
        assert!(err.contains(expected), "{err}");
        assert!(!out2.exists());
    };
    refused(
        default.replace("[Container]", "[Container]\nMemory=1"),
        "`Memory`",
    );
    refused(
        "[Container]\nImage={{ 'raw' ~ name }}\n".to_string(),
        "unescaped",
    );
    // A value Quadlet reads whole, with a quote at an end (which Quadlet
    // 5.0-5.8.1 would remove), for the default target (5.4).
    refused(
        default.replace("[Container]", "[Container]\nStopSignal=\"SIGTERM\""),
        "`StopSignal=\"SIGTERM\"` in [Container]: Podman 5.0 to 5.8.1's Quadlet removes",
    );
}

#[test]
fn generation_manifest_lists_every_file_and_input_with_sha256() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    generate_ok(&examples(), &out, &[]);
    let tree = read_tree(&out);
    let m: serde_json::Value = serde_json::from_slice(&tree["windlass-generation.json"]).unwrap();
    let files = m["files"].as_array().unwrap();
    assert_eq!(files.len(), tree.len() - 1);
    for f in files {
        let path = f["path"].as_str().unwrap();
        use sha2::Digest;
        assert_eq!(
            f["sha256"].as_str().unwrap(),
            hex::encode(sha2::Sha256::digest(&tree[path]))
        );
    }
    let inputs: Vec<&str> = m["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["path"].as_str().unwrap())
        .collect();
    assert!(
        inputs.contains(&"windlass.toml") && inputs.contains(&"apps/lnd.toml"),
        "{inputs:?}"
    );
    assert_eq!(m["generator"]["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(m["apps"].as_array().unwrap().len(), 7);
}

/// windlass-contract's fixture is this generator's output, so the
/// contract is held against what is written today.
#[test]
fn the_contract_fixture_is_what_the_examples_generate() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    generate_ok(&examples(), &out, &[]);
    let fixture = common::repo_root()
        .join("contract/tests/fixtures/examples")
        .join(windlass_contract::MANIFEST);
    let written = std::fs::read_to_string(out.join(windlass_contract::MANIFEST)).unwrap();
    assert!(
        written == std::fs::read_to_string(&fixture).unwrap(),
        "{} is not what `windlass generate examples` writes; copy the new manifest there",
        fixture.display()
    );
}

#[test]
fn schema_is_json_and_names_every_section() {
    let o = windlass(&["schema"]);
    assert!(o.status.success());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    for key in [
        "container",
        "health",
        "depends",
        "update",
        "release",
        "jobs",
        "hooks",
    ] {
        assert!(v["properties"][key].is_object(), "{key}");
    }
    assert_eq!(v["additionalProperties"], false);
    assert_eq!(v["properties"]["container"]["required"][0], "image");
}

#[test]
fn secret_markers_never_reach_any_output() {
    // Secrets are references only; no output of any target (Quadlet,
    // systemd, NixOS with either backend, Guix) may carry anything but the
    // reference. A marker planted in every manifest (a comment, where a
    // careless tool might copy it) and in the env files and secret files
    // the manifests point at (which windlass must never read) must not
    // appear anywhere.
    let marker = "POISON-7f3a9c-secret-value";
    for source in [examples(), torture(), hooks()] {
        let tmp = tempfile::tempdir().unwrap();
        let fleet = tmp.path().join("fleet");
        copy_dir(&source, &fleet);
        let apps = fleet.join("apps");
        for e in std::fs::read_dir(&apps).unwrap() {
            let p = e.unwrap().path();
            let text = std::fs::read_to_string(&p).unwrap();
            std::fs::write(&p, format!("# wallet password: {marker}\n{text}")).unwrap();
        }
        std::fs::write(fleet.join("secret.env"), format!("PASSWORD={marker}\n")).unwrap();
        let mut scanned = 0;
        for backend in ["oci-containers", "quadlet"] {
            let out = tmp.path().join(format!("out-{backend}"));
            generate_ok(&fleet, &out, &["--nixos-backend", backend]);
            let tree = read_tree(&out);
            assert!(tree.keys().any(|p| p.starts_with("nixos/")));
            for (path, bytes) in tree {
                scanned += 1;
                assert!(
                    !String::from_utf8_lossy(&bytes).contains(marker),
                    "{path} carries the secret marker"
                );
            }
        }
        assert!(scanned > 10);
    }
}

/// Every command path of the clap definitions (`["generate"]`,
/// `["import", "quadlet"]`, …), hidden ones (`man`) included or not.
fn command_paths(hidden: bool) -> Vec<Vec<String>> {
    fn walk(cmd: &clap::Command, path: &[String], hidden: bool, out: &mut Vec<Vec<String>>) {
        for sub in cmd.get_subcommands() {
            if sub.get_name() == "help" || (sub.is_hide_set() && !hidden) {
                continue;
            }
            let mut p = path.to_vec();
            p.push(sub.get_name().to_string());
            out.push(p.clone());
            walk(sub, &p, hidden, out);
        }
    }
    let cmd = <windlass::cli::Cli as clap::CommandFactory>::command();
    let mut out = Vec::new();
    walk(&cmd, &[], hidden, &mut out);
    out
}

/// `windlass completions SHELL` and `windlass man` give what shells and
/// man(1) read, built from the same clap definitions as the parser: the
/// bash script passes `bash -n` and, sourced, completes every command
/// (nested ones after their parent); every other shell's script names
/// every command; `windlass man` is windlass(1), and `windlass man --dir`
/// writes it and one page per command, each of which groff renders
/// without a warning (`-ww`) and which windlass(1) lists.
#[test]
fn completions_and_the_man_page_cover_every_command() {
    let paths = command_paths(true);
    assert!(paths.len() >= 8, "{paths:?}");
    let tmp = tempfile::tempdir().unwrap();
    let bash = windlass(&["completions", "bash"]);
    assert!(bash.status.success());
    let script = tmp.path().join("windlass.bash");
    std::fs::write(&script, &bash.stdout).unwrap();
    let syntax = Command::new("bash")
        .arg("-n")
        .arg(&script)
        .output()
        .unwrap();
    assert!(
        syntax.status.success(),
        "bash -n: {}",
        String::from_utf8_lossy(&syntax.stderr)
    );
    for path in &paths {
        let (last, parent) = path.split_last().unwrap();
        let words: Vec<&str> = std::iter::once("windlass")
            .chain(parent.iter().map(String::as_str))
            .collect();
        // What bash does on TAB after `windlass PARENT… `.
        let probe = format!(
            "source {}; COMP_WORDS=({} \"\"); COMP_CWORD={}; _windlass windlass \"\" {}; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            script.display(),
            words.join(" "),
            words.len(),
            words.last().unwrap()
        );
        let o = Command::new("bash").arg("-c").arg(&probe).output().unwrap();
        let offered = String::from_utf8_lossy(&o.stdout);
        assert!(
            offered.lines().any(|l| l == last),
            "bash does not complete `{}` after `{}`: {offered}",
            last,
            words.join(" ")
        );
    }
    for shell in ["zsh", "fish", "elvish", "powershell"] {
        let o = windlass(&["completions", shell]);
        assert!(o.status.success(), "{shell}");
        let text = String::from_utf8_lossy(&o.stdout);
        for path in &paths {
            let last = path.last().unwrap();
            assert!(
                text.contains(last.as_str()),
                "{shell} completion lacks {last}"
            );
        }
    }
    assert!(!windlass(&["completions", "tcsh"]).status.success());

    let man = windlass(&["man"]);
    assert!(man.status.success());
    let man = String::from_utf8(man.stdout).unwrap();
    assert!(man.contains(".TH windlass 1"), "{man}");
    assert!(man.is_ascii(), "non-ASCII in the roff: {man}");
    let dir = tmp.path().join("man1");
    std::fs::create_dir(&dir).unwrap();
    let o = windlass(&["man", "--dir", s(&dir)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        std::fs::read_to_string(dir.join("windlass.1")).unwrap(),
        man
    );
    let visible = command_paths(false);
    let mut want: BTreeSet<String> = visible
        .iter()
        .map(|p| format!("windlass-{}.1", p.join("-")))
        .collect();
    want.insert("windlass.1".into());
    let got: BTreeSet<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(got, want);
    for p in visible.iter().filter(|p| p.len() == 1) {
        assert!(
            man.contains(&format!("windlass\\-{}(1)", p[0])),
            "windlass(1) does not list windlass-{}(1):\n{man}",
            p[0]
        );
    }
    // groff renders every page without a warning: from tools/test's
    // groff-base; under CI its absence fails the test.
    let groff = Command::new("groff").arg("--version").output();
    if groff.is_err() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "groff is missing (tools/test installs groff-base)"
        );
        eprintln!("SKIPPED rendering the man pages: no groff (tools/test installs groff-base)");
        return;
    }
    for page in &got {
        let o = Command::new("groff")
            .args(["-man", "-Tutf8", "-ww", "-z"])
            .arg(dir.join(page))
            .env("LC_ALL", "C")
            .output()
            .unwrap();
        assert!(
            o.status.success() && o.stderr.is_empty(),
            "groff on {page}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
}
