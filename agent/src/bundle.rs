//! Diagnostics bundles: when an operation ends without committing (or
//! every time, when configured), the evidence is collected at once into
//! `operations/<id>.d/`, so that nobody has to log into the host while
//! it is still fresh:
//!
//! * `bundle.json`: the summary (schema below);
//! * `record.json`: the operation's record;
//! * `journal/<unit>.log`: each changed unit's last journal lines;
//! * `operation.log`: the agent's journal of the operation
//!   (`WINDLASS_OPERATION=<id>`);
//! * `hooks/<kind>-<app>.log`: the output of each hook that ran.
//!
//! `bundle.json` (`format` 1): `operation`, `kind`, `result`, `error`,
//! `from_generation`, `to_generation` (strings or null),
//! `changed_units`, `units` (unit → property → value, from `systemctl
//! show`: `ActiveState`, `SubState`, `Result`, `NRestarts`,
//! `ExecMainStatus`, `FragmentPath`, `DropInPaths`) and `files` (every
//! other file of the bundle, relative).
//!
//! Every text goes through [`redact::text`] (URL credentials), and no
//! environment or secret value is read: the bundle has the units'
//! properties above, not their `Environment=`. The bundle is written
//! under a temporary name and renamed; retention keeps the newest
//! [`Retention::keep`] bundles within [`Retention::max_bytes`].

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::record::{OpKind, Record};
use crate::redact;
use crate::systemd::Systemd;

/// The bundle format written.
pub const FORMAT: u32 = 1;

/// Lines of each unit's journal kept.
pub const JOURNAL_LINES: usize = 200;

/// Lines of a hook's output kept (the last ones).
pub const HOOK_LINES: usize = 500;

/// Which bundles are kept, and when one is written.
#[derive(Debug, Clone)]
pub struct Retention {
    /// Also for operations that committed.
    pub always: bool,
    pub keep: usize,
    pub max_bytes: u64,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            always: false,
            keep: 20,
            max_bytes: 50 * 1024 * 1024,
        }
    }
}

#[derive(Serialize)]
struct Summary<'a> {
    format: u32,
    operation: &'a str,
    kind: &'a str,
    result: Option<&'a str>,
    error: String,
    from_generation: Option<String>,
    to_generation: Option<String>,
    changed_units: &'a [String],
    units: BTreeMap<String, BTreeMap<String, String>>,
    files: Vec<String>,
}

/// Where the hooks of operation `id` keep their output until its bundle
/// is written (a dot name: never taken for a record).
pub fn hook_output_dir(operations: &Path, id: &str) -> PathBuf {
    operations.join(format!(".{id}.hooks"))
}

/// Appends `lines` to the output kept of hook `name` (`pre-commit-db`)
/// of operation `id`, keeping the last [`HOOK_LINES`].
pub fn keep_hook_output(operations: &Path, id: &str, name: &str, lines: &[String]) {
    let dir = hook_output_dir(operations, id);
    let path = dir.join(format!("{name}.log"));
    let res = (|| -> std::io::Result<()> {
        fs::create_dir_all(&dir)?;
        let old = fs::read_to_string(&path).unwrap_or_default();
        let mut all: Vec<String> = old.lines().map(str::to_string).collect();
        all.extend(lines.iter().map(|l| redact::text(l)));
        let start = all.len().saturating_sub(HOOK_LINES);
        let mut text = all[start..].join("\n");
        text.push('\n');
        fs::write(&path, text)
    })();
    if let Err(e) = res {
        tracing::warn!(
            WINDLASS_OPERATION = id,
            "cannot keep the output of hook {name}: {e}"
        );
    }
}

fn write_file(path: &Path, text: &str) -> std::io::Result<()> {
    if let Some(d) = path.parent() {
        fs::create_dir_all(d)?;
    }
    let mut f = fs::File::create(path)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()
}

fn lines_text(lines: &[String]) -> String {
    let mut t: String = lines
        .iter()
        .map(|l| redact::text(l))
        .collect::<Vec<_>>()
        .join("\n");
    t.push('\n');
    t
}

/// Writes the bundle of the finished operation `r` into `operations/`;
/// returns its directory.
pub async fn write<S: Systemd, O: OpKind>(
    systemd: &S,
    operations: &Path,
    r: &Record<O>,
    from: Option<String>,
    to: Option<String>,
) -> std::io::Result<PathBuf> {
    let id = r.id.as_str();
    let tmp = operations.join(format!(".{id}.d.tmp"));
    let _ = fs::remove_dir_all(&tmp);
    fs::create_dir_all(&tmp)?;
    // The record's journal is for authorised callers only: root's alone.
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o700))?;
    }
    let mut files = Vec::new();
    let record = serde_json::to_string_pretty(r).map_err(std::io::Error::other)?;
    write_file(&tmp.join("record.json"), &redact::text(&record))?;
    files.push("record.json".to_string());
    let mut units = BTreeMap::new();
    for u in &r.changed_units {
        if u.contains('/') || u.starts_with('.') {
            continue;
        }
        if let Ok(props) = systemd.show(u).await {
            units.insert(u.clone(), props.into_iter().collect());
        }
        if let Ok(lines) = systemd.journal(u, JOURNAL_LINES).await {
            write_file(
                &tmp.join("journal").join(format!("{u}.log")),
                &lines_text(&lines),
            )?;
            files.push(format!("journal/{u}.log"));
        }
    }
    if let Ok(lines) = systemd.operation_journal(id, JOURNAL_LINES * 5).await {
        write_file(&tmp.join("operation.log"), &lines_text(&lines))?;
        files.push("operation.log".into());
    }
    let hooks = hook_output_dir(operations, id);
    if let Ok(entries) = fs::read_dir(&hooks) {
        let mut names: Vec<String> = entries
            .flatten()
            .map(|e| e.file_name().to_string_lossy().to_string())
            .filter(|n| n.ends_with(".log"))
            .collect();
        names.sort();
        for n in names {
            let text = fs::read_to_string(hooks.join(&n)).unwrap_or_default();
            write_file(&tmp.join("hooks").join(&n), &text)?;
            files.push(format!("hooks/{n}"));
        }
    }
    let summary = Summary {
        format: FORMAT,
        operation: id,
        kind: O::KIND.as_str(),
        result: r.result.map(|o| o.as_str()),
        error: redact::text(&r.error),
        from_generation: from,
        to_generation: to,
        changed_units: &r.changed_units,
        units,
        files,
    };
    let mut json = serde_json::to_string_pretty(&summary).map_err(std::io::Error::other)?;
    json.push('\n');
    write_file(&tmp.join("bundle.json"), &json)?;
    let dest = operations.join(format!("{id}.d"));
    let _ = fs::remove_dir_all(&dest);
    fs::rename(&tmp, &dest)?;
    if let Ok(d) = fs::File::open(operations) {
        let _ = d.sync_all();
    }
    let _ = fs::remove_dir_all(&hooks);
    Ok(dest)
}

fn dir_size(p: &Path) -> u64 {
    let Ok(entries) = fs::read_dir(p) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_size(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map(|m| m.len()).unwrap_or(0),
            _ => 0,
        })
        .sum()
}

/// Removes the oldest bundles until at most `keep` are left and they
/// take at most `max_bytes` together. Returns the ones removed.
pub fn retain(operations: &Path, ret: &Retention) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(operations) else {
        return Vec::new();
    };
    // Operation ids sort by time: name order is age order.
    let mut bundles: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".d"))
                .is_some_and(|stem| stem.parse::<crate::record::OpId>().is_ok())
        })
        .collect();
    bundles.sort();
    let mut sizes: Vec<u64> = bundles.iter().map(|b| dir_size(b)).collect();
    let mut removed = Vec::new();
    while !bundles.is_empty()
        && (bundles.len() > ret.keep || sizes.iter().sum::<u64>() > ret.max_bytes)
    {
        let b = bundles.remove(0);
        sizes.remove(0);
        if fs::remove_dir_all(&b).is_ok() {
            removed.push(b);
        }
    }
    removed
}
