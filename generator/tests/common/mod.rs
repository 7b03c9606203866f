//! Shared helpers for tests that run the real consumers of our output
//! (quadlet, systemd-analyze, nix-instantiate, guile) inside the trixie
//! oracle rootfs built by `tools/oracle-rootfs.sh`.
//!
//! No silent skips: when the oracle cannot be had and `CI=true`, the test
//! fails. Outside CI it fails too unless `WINDLASS_SKIP_ORACLES=1` is set,
//! in which case it says so loudly.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The user docs whose snippets tests read: `README.md` and every
/// `docs/*.md`, as (path from the repository root, text), sorted by path.
pub fn user_docs() -> Vec<(String, String)> {
    let root = repo_root();
    let mut pages = vec!["README.md".to_string()];
    for e in std::fs::read_dir(root.join("docs")).expect("docs/ exists") {
        let name = e.unwrap().file_name().into_string().unwrap();
        if name.ends_with(".md") {
            pages.push(format!("docs/{name}"));
        }
    }
    pages.sort();
    pages
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(root.join(&p))
                .unwrap_or_else(|e| panic!("cannot read {p}: {e}"));
            (p, text)
        })
        .collect()
}

/// The fenced code blocks of `markdown` whose info string starts with the
/// word `lang` (```` ```nix ````), in order. A block ends at a line of at
/// least as many backticks as opened it; fences inside other blocks are
/// text.
pub fn fenced_blocks(markdown: &str, lang: &str) -> Vec<String> {
    let mut out = Vec::new();
    // The open fence's length, and its text when it is a `lang` block.
    let mut open: Option<(usize, Option<String>)> = None;
    for line in markdown.lines() {
        let t = line.trim();
        let ticks = t.bytes().take_while(|&b| b == b'`').count();
        match &mut open {
            None if ticks >= 3 && !t[ticks..].contains('`') => {
                let wanted = t[ticks..].split_whitespace().next() == Some(lang);
                open = Some((ticks, wanted.then(String::new)));
            }
            Some((n, _)) if ticks >= *n && t.len() == ticks => {
                if let Some(b) = open.take().and_then(|(_, b)| b) {
                    out.push(b);
                }
            }
            Some((_, Some(b))) => {
                b.push_str(line);
                b.push('\n');
            }
            _ => {}
        }
    }
    out
}

/// Whether the oracle tests run. Under `CI=true` always (a missing
/// oracle then fails the test). Outside CI they are skipped, saying why,
/// when `WINDLASS_SKIP_ORACLES=1` or when the oracle rootfs is not built
/// yet (`tools/oracle-rootfs.sh` builds it; `tools/test` does), so that a
/// plain `cargo test` is not red for want of a Debian rootfs.
pub fn oracles_enabled(test: &str) -> bool {
    let ci = std::env::var("CI").map(|v| v == "true").unwrap_or(false);
    if ci {
        return true;
    }
    if std::env::var("WINDLASS_SKIP_ORACLES").as_deref() == Ok("1") {
        eprintln!(
            "SKIPPED {test}: oracle disabled by WINDLASS_SKIP_ORACLES=1 (never under CI=true)"
        );
        return false;
    }
    let built = Command::new(repo_root().join("tools/oracle-rootfs.sh"))
        .arg("--check")
        .output()
        .is_ok_and(|o| o.status.success());
    if !built {
        eprintln!(
            "SKIPPED {test}: the oracle rootfs (real quadlet, systemd, nix, guile) is not built; \
             tools/oracle-rootfs.sh builds it (tools/test does). Under CI=true this test fails instead."
        );
    }
    built
}

/// Runs `cmd` inside the oracle rootfs with `binds` (host dir, guest dir)
/// bind-mounted. Panics when the oracle itself cannot be started.
pub fn oracle(binds: &[(&Path, &str)], cmd: &[&str]) -> Output {
    oracle_in(false, binds, cmd)
}

/// [`oracle`] in the rootfs with Podman 6's quadlet
/// (`tools/oracle-rootfs.sh --podman6`: Debian experimental's Podman on sid).
pub fn oracle_podman6(binds: &[(&Path, &str)], cmd: &[&str]) -> Output {
    oracle_in(true, binds, cmd)
}

fn oracle_in(podman6: bool, binds: &[(&Path, &str)], cmd: &[&str]) -> Output {
    let mut c = Command::new(repo_root().join("tools/oracle"));
    if podman6 {
        c.arg("--podman6");
    }
    for (host, guest) in binds {
        c.arg("--bind").arg(format!("{}:{}", host.display(), guest));
    }
    c.args(cmd);
    let out = c.output().expect("cannot start tools/oracle");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("tools/oracle: setup failed"),
        "oracle rootfs unavailable: {stderr}"
    );
    out
}

/// Every file below `root`, by path relative to it, with its bytes.
pub fn read_tree(root: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut std::collections::BTreeMap<String, Vec<u8>>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                out.insert(
                    p.strip_prefix(root).unwrap().to_string_lossy().into_owned(),
                    std::fs::read(&p).unwrap(),
                );
            }
        }
    }
    let mut out = std::collections::BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// The fleet at `dir`, which must be valid.
pub fn load_valid(dir: &Path) -> windlass::model::Fleet {
    let loaded = windlass::model::load_fleet(dir).unwrap();
    let errors: Vec<String> = loaded.errors().map(|d| d.render()).collect();
    loaded
        .fleet
        .unwrap_or_else(|| panic!("invalid fleet: {errors:?}"))
}

/// The app `name` of `fleet`.
pub fn app_named<'a>(fleet: &'a windlass::model::Fleet, name: &str) -> &'a windlass::model::App {
    fleet.apps.iter().find(|a| a.name == name).unwrap()
}

/// The `windlass` binary run with `args`.
pub fn windlass_cli(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_windlass"))
        .args(args)
        .output()
        .unwrap()
}

/// `windlass generate FLEET -o OUT EXTRA…`, which must succeed; the
/// `windlass-generation.json` written.
pub fn generate_contract(fleet: &Path, out: &Path, extra: &[&str]) -> windlass_contract::Manifest {
    let mut args = vec![
        "generate",
        fleet.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let o = windlass_cli(&args);
    assert!(
        o.status.success(),
        "generate failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    windlass_contract::Manifest::read(out).unwrap()
}

/// systemd's debug dump (`SYSTEMD_LOG_LEVEL=debug systemd-analyze
/// verify`), split by unit: `→ Unit NAME:` → the trimmed lines that
/// follow it. systemd writes `→` in a UTF-8 locale and `->` otherwise.
pub fn systemd_dump_units(dump: &str) -> std::collections::BTreeMap<String, Vec<String>> {
    let mut units = std::collections::BTreeMap::new();
    let mut current: Option<String> = None;
    for line in dump.lines() {
        let t = line.trim().replace("-> ", "→ ");
        if let Some(u) = t.strip_prefix("→ Unit ").and_then(|u| u.strip_suffix(':')) {
            current = Some(u.to_string());
            units.entry(u.to_string()).or_insert_with(Vec::new);
        } else if let Some(u) = &current {
            units.get_mut(u).unwrap().push(t);
        }
    }
    units
}

/// The argv of a unit's `→ ExecStart:` `Command Line: …` in its dump lines
/// (see `systemd_dump_units`), as the process gets it: systemd's
/// `quote_command_line()` undone (shell-style quotes, C escapes), then its
/// exec-time `$$` → `$`. A lone `$` (which systemd would expand) fails.
pub fn systemd_exec_start(lines: &[String]) -> Vec<String> {
    let at = lines
        .iter()
        .position(|l| l == "→ ExecStart:")
        .expect("the unit has an ExecStart");
    let line = lines[at + 1]
        .strip_prefix("Command Line: ")
        .expect("ExecStart's command line");
    systemd_command_line(line).unwrap_or_else(|e| panic!("{e}"))
}

/// The `Command Line: …` of each `→ KEY:` entry (`ExecStart`,
/// `ExecStartPre`, …) in a unit's dump lines, in order.
#[allow(dead_code)]
pub fn systemd_command_lines(lines: &[String], key: &str) -> Vec<String> {
    let head = format!("→ {key}:");
    let mut out = Vec::new();
    let mut inside = false;
    for l in lines {
        if l.starts_with("→ ") {
            inside = *l == head;
        } else if inside && let Some(c) = l.strip_prefix("Command Line: ") {
            out.push(c.to_string());
        }
    }
    out
}

/// A dump's `Command Line:` as the process gets it (see
/// `systemd_exec_start`). Err: a lone `$`, which systemd would expand.
pub fn systemd_command_line(line: &str) -> Result<Vec<String>, String> {
    let b = line.as_bytes();
    let mut words = Vec::new();
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && b[i] == b' ' {
            i += 1;
        }
        if i >= b.len() {
            break;
        }
        let (mut w, mut quoted) = (Vec::new(), false);
        while i < b.len() && (quoted || b[i] != b' ') {
            let c = b[i];
            i += 1;
            match c {
                b'"' => quoted = !quoted,
                b'\\' => {
                    let e = b[i];
                    i += 1;
                    match e {
                        b'n' => w.push(b'\n'),
                        b't' => w.push(b'\t'),
                        b'r' => w.push(b'\r'),
                        b'a' => w.push(0x07),
                        b'b' => w.push(0x08),
                        b'f' => w.push(0x0c),
                        b'v' => w.push(0x0b),
                        b'0'..=b'7' => {
                            let oct = std::str::from_utf8(&b[i - 1..i + 2]).unwrap();
                            w.push(u8::from_str_radix(oct, 8).unwrap());
                            i += 2;
                        }
                        b'x' => {
                            let hex = std::str::from_utf8(&b[i..i + 2]).unwrap();
                            w.push(u8::from_str_radix(hex, 16).unwrap());
                            i += 2;
                        }
                        other => w.push(other),
                    }
                }
                c => w.push(c),
            }
        }
        let w = String::from_utf8(w).expect("a UTF-8 argument");
        if w.replace("$$", "").contains('$') {
            return Err(format!(
                "a lone `$` would be expanded by systemd at exec time: {w:?}"
            ));
        }
        words.push(w.replace("$$", "$"));
    }
    Ok(words)
}
