//! The no-op record: a private file beside OUT (`.OUT.windlass-record`)
//! that lets a run with nothing to do skip loading, rendering and writing,
//! and still end exactly where a cold run would.
//!
//! It holds everything a run's output depends on besides what is compiled
//! into the binary: the generator's version and the identity of its
//! executable (device, inode, size, times), the options (the fleet
//! directory as named, `--podman-version`, `--templates`, the targets, the
//! NixOS backend), every input file (the fleet's, and each template
//! override, present or absent), every file of the tree, each with its
//! sha256 and its stat data, and the warnings the run printed.
//!
//! A run is a no-op when the options are the same, the same input files
//! are found, the tree holds exactly the recorded files (a directory walk:
//! an extra or missing file is seen) and every one of them is unchanged.
//! *Unchanged* is decided the way git's index decides it: the same stat
//! data (device, inode, mode, size, mtime and ctime to the nanosecond) mean
//! the same content, unless the file is *racy*: its mtime or ctime is not
//! older than the moment its stat data were taken, so a change within the
//! same timestamp tick could have left them equal. A racy file, or one
//! whose stat data differ, is read and its sha256 compared with the
//! recorded one; equal content is still a no-op (and the record is renewed,
//! so the next run need not read it again). ctime cannot be set from user
//! space, so an edit that restores size and mtime (`touch -r`, `cp -p`)
//! still shows.
//!
//! The moment stat data were taken (the reference of the racy test): for
//! the tree, the mtime of the record's own new file, created in OUT's
//! parent (the same file system, clock and timestamp granularity) after the
//! tree was written and before its stat data are taken; for input files,
//! which may be on another file system, the coarse real-time clock (the one
//! Linux stamps files with) at the start of the run, rounded down to the
//! second, minus one second (file systems with 2-second timestamps).
//!
//! Anything uncertain means the full run: no record, another format or
//! version, a path that is not UTF-8 or holds a line break, an executable
//! changed within the last second. A record is written only after a full
//! run that wrote or confirmed the tree, and removed before a tree is
//! replaced; it is not fsynced (a record cut short by a crash lacks its
//! last line and is ignored). `--check` reads it but never writes it.
//!
//! Limit: a change made to OUT by another process *while* a full run is
//! writing it may be recorded as the run's own output. The full run has the
//! same window (it compares a file of the old tree, then links it).

use std::fmt::Write as _;
use std::fs::{self, Metadata};
use std::io::Write as _;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::output_file::sha256_hex;

use crate::model;
use crate::output::FILE_MODE;
use crate::pipeline::{Built, Options};
use crate::templates::DEFAULTS;

const FORMAT: &str = "windlass-record 1";

/// Seconds and nanoseconds since the epoch.
type Time = (i64, i64);

/// The stat data that stand for a file's content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    mode: u32,
    size: u64,
    mtime: Time,
    ctime: Time,
}

impl Stamp {
    fn of(m: &Metadata) -> Stamp {
        Stamp {
            dev: m.dev(),
            ino: m.ino(),
            mode: m.mode(),
            size: m.size(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        }
    }

    /// Whether a change at `since` or later could have left these equal.
    fn racy(&self, since: Time) -> bool {
        self.mtime >= since || self.ctime >= since
    }

    fn write(&self, out: &mut String) {
        // A record holds thousands of these: itoa, not `write!`.
        let mut b = itoa::Buffer::new();
        out.push_str(b.format(self.dev));
        for n in [self.ino, u64::from(self.mode), self.size] {
            out.push(' ');
            out.push_str(b.format(n));
        }
        for n in [self.mtime.0, self.mtime.1, self.ctime.0, self.ctime.1] {
            out.push(' ');
            out.push_str(b.format(n));
        }
    }

    fn parse(f: &[&str]) -> Option<Stamp> {
        let [dev, ino, mode, size, ms, mn, cs, cn] = f else {
            return None;
        };
        Some(Stamp {
            dev: dev.parse().ok()?,
            ino: ino.parse().ok()?,
            mode: mode.parse().ok()?,
            size: size.parse().ok()?,
            mtime: (ms.parse().ok()?, mn.parse().ok()?),
            ctime: (cs.parse().ok()?, cn.parse().ok()?),
        })
    }
}

/// The start of a run on the clock file timestamps come from, rounded down
/// to the second, minus one second: any input file changed after it has a
/// timestamp at or after it. Take it before any input is looked at.
#[derive(Debug, Clone, Copy)]
pub struct Since(Time);

impl Since {
    pub fn now() -> Since {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid timespec for the call to fill in.
        let rc = unsafe { libc::clock_gettime(libc::CLOCK_REALTIME_COARSE, &mut ts) };
        if rc != 0 {
            // No clock: every file counts as racy.
            return Since((i64::MIN, 0));
        }
        Since((ts.tv_sec - 1, 0))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A fleet file (`windlass.toml`, a manifest), in the order read.
    Input,
    /// A template override candidate, in `DEFAULTS` order.
    Template,
    /// A file of the tree, sorted by path (relative to OUT).
    Output,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Input => "input",
            Kind::Template => "template",
            Kind::Output => "output",
        }
    }
}

/// One recorded file. A template candidate that was absent has no stamp.
#[derive(Debug, Clone)]
struct Entry<'a> {
    kind: Kind,
    path: &'a str,
    stamp: Option<Stamp>,
    sha256: &'a str,
}

/// A parsed record: its header (the key) is checked by the caller.
struct Record<'a> {
    since_in: Time,
    since_out: Time,
    entries: Vec<Entry<'a>>,
    warnings: &'a str,
}

/// A path as a record line can hold it.
fn line_safe(s: &str) -> Option<&str> {
    (!s.contains(['\n', '\r'])).then_some(s)
}

/// Where the record of OUT lives: `.NAME.windlass-record` beside it.
pub fn path(out: &Path) -> Option<PathBuf> {
    let name = out.file_name()?.to_str()?;
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    Some(parent.join(format!(".{name}.windlass-record")))
}

/// The record's text, if it is a regular file of this user that no one
/// else may write. OUT's parent may be shared (`/tmp`): a record planted
/// or edited by someone else could otherwise make a run skip its work and
/// leave a stale tree in place.
fn read_own(path: &Path) -> Option<String> {
    let mut f = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .ok()?;
    let m = f.metadata().ok()?;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if !m.is_file() || m.uid() != me || m.mode() & 0o022 != 0 {
        return None;
    }
    // A record of 1,000 apps is 650 KB: read at once, not grown from empty.
    let bytes = crate::input_file::read_sized(&mut f, m.len()).ok()?;
    String::from_utf8(bytes).ok()
}

/// The record's first lines for this run: format, generator, options. A
/// record is for this run only when it starts with exactly these.
fn key(apps_dir: &Path, opts: &Options) -> Option<(String, Stamp)> {
    let exe = Stamp::of(&fs::metadata(std::env::current_exe().ok()?).ok()?);
    let mut k = String::new();
    let _ = writeln!(k, "{FORMAT}");
    let _ = writeln!(k, "version {}", env!("CARGO_PKG_VERSION"));
    k.push_str("exe ");
    exe.write(&mut k);
    k.push('\n');
    let _ = writeln!(k, "fleet {}", line_safe(apps_dir.to_str()?)?);
    match &opts.podman_version {
        None => k.push_str("podman-version none\n"),
        Some(v) => {
            let _ = writeln!(k, "podman-version some {}", line_safe(v)?);
        }
    }
    match &opts.templates {
        None => k.push_str("templates none\n"),
        Some(d) => {
            let _ = writeln!(k, "templates some {}", line_safe(d.to_str()?)?);
        }
    }
    let targets: Vec<&str> = opts.targets.iter().map(|t| t.name()).collect();
    let _ = writeln!(k, "targets {}", targets.join(","));
    let _ = writeln!(k, "nixos-backend {}", opts.nixos_backend.name());
    Some((k, exe))
}

fn parse_time(s: &str, n: &str) -> Option<Time> {
    Some((s.parse().ok()?, n.parse().ok()?))
}

impl<'a> Record<'a> {
    /// Parses what follows the key; `None` for anything malformed or cut
    /// short.
    fn parse(body: &'a str) -> Option<Record<'a>> {
        // A record has thousands of lines of ten fields: they are cut with
        // `memchr`, not `str::split`'s search for a `char` (a fifth of a
        // no-op run's instructions).
        let mut lines = Split::new(body, b'\n');
        let refs: Vec<&str> = Split::new(lines.next()?, b' ').collect();
        let ["since", is, in_, os, on] = refs[..] else {
            return None;
        };
        let mut rec = Record {
            since_in: parse_time(is, in_)?,
            since_out: parse_time(os, on)?,
            // One entry a line: room for all of them at once.
            entries: Vec::with_capacity(memchr::memchr_iter(b'\n', body.as_bytes()).count()),
            warnings: "",
        };
        let mut ended = false;
        for line in lines.by_ref() {
            let (kind, rest) = cut(line, b' ');
            let rest = rest.unwrap_or("");
            let kind = match kind {
                "input" => Kind::Input,
                "template" => Kind::Template,
                "output" => Kind::Output,
                "template-absent" => {
                    rec.entries.push(Entry {
                        kind: Kind::Template,
                        path: rest,
                        stamp: None,
                        sha256: "",
                    });
                    continue;
                }
                "warnings" => {
                    rec.warnings = rest;
                    continue;
                }
                "end" if rest.is_empty() => {
                    ended = true;
                    break;
                }
                _ => return None,
            };
            // Nine fields, then the path (which may hold spaces).
            let mut f = [""; 10];
            let mut left = Some(rest);
            for slot in &mut f[..9] {
                let (field, after) = cut(left?, b' ');
                *slot = field;
                left = after;
            }
            f[9] = left?;
            if f[8].len() != 64 {
                return None;
            }
            rec.entries.push(Entry {
                kind,
                path: f[9],
                stamp: Some(Stamp::parse(&f[..8])?),
                sha256: f[8],
            });
        }
        // Nothing may follow `end` but the final line break.
        (ended && lines.next() == Some("") && lines.next().is_none()).then_some(rec)
    }
}

/// `s` cut at its first `sep` (an ASCII byte): before it, and after it
/// when there is one (`str::split_once`).
fn cut(s: &str, sep: u8) -> (&str, Option<&str>) {
    debug_assert!(sep.is_ascii());
    match memchr::memchr(sep, s.as_bytes()) {
        // An ASCII byte is a character boundary on both sides.
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    }
}

/// `str::split` at an ASCII byte, cut with [`cut`].
struct Split<'a> {
    rest: Option<&'a str>,
    sep: u8,
}

impl<'a> Split<'a> {
    fn new(s: &'a str, sep: u8) -> Split<'a> {
        Split { rest: Some(s), sep }
    }
}

impl<'a> Iterator for Split<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let (piece, rest) = cut(self.rest?, self.sep);
        self.rest = rest;
        Some(piece)
    }
}

/// The longest an entry's line can be, besides its path: the longest
/// kind (`template-absent`), a stamp of eight 64-bit numbers, the sha256,
/// the spaces and the line break.
const LINE_BUT_PATH: usize = "template-absent".len() + 8 * 20 + 7 + 64 + 3 + 1;

/// The record's text, in parts to be written one after the other: the
/// key and references, the entries' lines in blocks (laid out on all
/// cores), and the end. Not joined into one string: for 10,000 apps that
/// is 5 MB copied once more into memory faulted in for it.
fn render(
    key: &str,
    since_in: Time,
    since_out: Time,
    entries: &[Entry],
    warnings: &str,
) -> Vec<String> {
    let mut head = String::with_capacity(key.len() + 128);
    head.push_str(key);
    let _ = writeln!(
        head,
        "since {} {} {} {}",
        since_in.0, since_in.1, since_out.0, since_out.1
    );
    let blocks: Vec<&[Entry]> = entries.chunks(256).collect();
    let mut parts = Vec::with_capacity(blocks.len() + 2);
    parts.push(head);
    parts.extend(crate::par::map(&blocks, |block| {
        // Room for every line at its longest: never copied to grow.
        let room = block.iter().map(|e| e.path.len() + LINE_BUT_PATH).sum();
        let mut s = String::with_capacity(room);
        for e in *block {
            match e.stamp {
                None => {
                    s.push_str("template-absent ");
                    s.push_str(e.path);
                    s.push('\n');
                }
                Some(st) => {
                    s.push_str(e.kind.name());
                    s.push(' ');
                    st.write(&mut s);
                    s.push(' ');
                    s.push_str(e.sha256);
                    s.push(' ');
                    s.push_str(e.path);
                    s.push('\n');
                }
            }
        }
        debug_assert_eq!(s.capacity(), room, "a block outgrew its room");
        s
    }));
    parts.push(format!("warnings {warnings}\nend\n"));
    parts
}

/// Removes OUT's record: before OUT is replaced, so that no record ever
/// describes a tree in the middle of being written.
pub fn forget(out: &Path) {
    if let Some(p) = path(out) {
        let _ = fs::remove_file(p);
    }
}

/// A record's new file, created before the stat data it will hold are
/// taken: its mtime is the reference for the tree's racy test.
struct NewRecord {
    tmp: PathBuf,
    dest: PathBuf,
    file: fs::File,
    since_out: Time,
}

impl NewRecord {
    fn create(out: &Path, since: Since) -> Option<NewRecord> {
        let dest = path(out)?;
        let mut tmp = dest.clone().into_os_string();
        tmp.push(format!(".{}", std::process::id()));
        let tmp = PathBuf::from(tmp);
        let _ = fs::remove_file(&tmp);
        let file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&tmp)
            .ok()?;
        let stamp = file.metadata().ok().map(|m| Stamp::of(&m));
        let out_dev = fs::metadata(out).ok().map(|m| m.dev());
        // Not on OUT's file system (OUT is a mount point): its clock and
        // granularity may differ, so use the input files' reference.
        let since_out = match stamp {
            Some(st) if Some(st.dev) == out_dev => st.mtime,
            _ => since.0,
        };
        Some(NewRecord {
            tmp,
            dest,
            file,
            since_out,
        })
    }

    fn commit(mut self, parts: &[String]) {
        let ok = parts
            .iter()
            .all(|p| self.file.write_all(p.as_bytes()).is_ok())
            && fs::rename(&self.tmp, &self.dest).is_ok();
        if !ok {
            let _ = fs::remove_file(&self.tmp);
        }
    }

    fn abandon(self) {
        let _ = fs::remove_file(&self.tmp);
    }
}

/// Records a full run that left OUT holding exactly `built.files`, so
/// that the next run with the same inputs and options has nothing to do.
/// `since` must have been taken before the run read its inputs. Best
/// effort: a record that cannot be written only costs the next run time.
///
/// `stats` holds the stat data of the files the write created, taken as
/// each was written (`None`, or a short list, for the files to stat now).
pub fn save(
    out: &Path,
    apps_dir: &Path,
    opts: &Options,
    built: &Built,
    since: Since,
    stats: &[Option<Metadata>],
) {
    let Some((key, _)) = key(apps_dir, opts) else {
        return;
    };
    let Some(new) = NewRecord::create(out, since) else {
        return;
    };
    let template_paths: Option<Vec<String>> = match &opts.templates {
        None => Some(Vec::new()),
        Some(dir) => DEFAULTS
            .iter()
            .map(|(name, _)| dir.join(name).to_str().map(str::to_string))
            .collect(),
    };
    let entries = template_paths
        .as_deref()
        .and_then(|templates| entries_of_run(out, built, stats, templates));
    match entries {
        Some(entries) => {
            let text = render(
                &key,
                since.0,
                new.since_out,
                &entries,
                &hex::encode(built.warnings_text()),
            );
            new.commit(&text);
        }
        None => new.abandon(),
    }
}

/// Every file of a run: its inputs as read, the template candidates (at
/// `template_paths`, in [`DEFAULTS`]' order), and the tree as it is now:
/// the stat data the write took of each file it created, and for the
/// others a stat taken after the record's file was created. `None` when a
/// path cannot be recorded or an output is not a regular file.
fn entries_of_run<'a>(
    out: &Path,
    built: &'a Built,
    stats: &[Option<Metadata>],
    template_paths: &'a [String],
) -> Option<Vec<Entry<'a>>> {
    let mut entries =
        Vec::with_capacity(built.inputs_read.len() + template_paths.len() + built.files.len());
    for f in &built.inputs_read {
        entries.push(Entry {
            kind: Kind::Input,
            path: line_safe(f.path.to_str()?)?,
            stamp: Some(Stamp::of(&f.meta)),
            sha256: &f.sha256,
        });
    }
    for p in template_paths {
        let read = built.templates_read.iter().find(|f| f.path == Path::new(p));
        entries.push(Entry {
            kind: Kind::Template,
            path: line_safe(p)?,
            stamp: read.map(|f| Stamp::of(&f.meta)),
            sha256: read.map_or("", |f| f.sha256.as_str()),
        });
    }
    // The outputs' stamps on all cores: a linked file is stat'd now.
    let all: Vec<usize> = (0..built.files.len()).collect();
    let stamps = crate::par::map(&all, |&i| -> Option<Stamp> {
        let taken;
        let m = match stats.get(i) {
            Some(Some(m)) => m,
            _ => {
                taken = fs::symlink_metadata(out.join(&built.files[i].path)).ok()?;
                &taken
            }
        };
        m.is_file().then(|| Stamp::of(m))
    });
    for (f, stamp) in built.files.iter().zip(stamps) {
        debug_assert!(!f.sha256.is_empty(), "{} recorded unhashed", f.path);
        entries.push(Entry {
            kind: Kind::Output,
            path: line_safe(&f.path)?,
            stamp: Some(stamp?),
            sha256: &f.sha256,
        });
    }
    Some(entries)
}

/// A run found to have nothing to do.
#[derive(Debug)]
pub struct NoOp {
    /// Files in the tree, the generation manifest included.
    pub files: usize,
    /// The warnings the recorded run printed, to print again.
    pub warnings: String,
}

/// One file as it is now. `stamp` is `None` for an absent template.
struct Now {
    kind: Kind,
    path: String,
    stamp: Option<Stamp>,
}

/// The fleet's files and the template candidates as they are now, in the
/// order a run reads them. Reads no file.
fn snapshot_inputs(apps_dir: &Path, opts: &Options, now: &mut Vec<Now>) -> Option<()> {
    for (p, meta) in model::input_files(apps_dir).ok()? {
        now.push(Now {
            kind: Kind::Input,
            path: p.into_os_string().into_string().ok()?,
            stamp: Some(Stamp::of(&meta)),
        });
    }
    if let Some(dir) = &opts.templates {
        for (name, _) in DEFAULTS {
            let p = dir.join(name);
            let stamp = fs::metadata(&p)
                .ok()
                .filter(Metadata::is_file)
                .map(|m| Stamp::of(&m));
            now.push(Now {
                kind: Kind::Template,
                path: p.into_os_string().into_string().ok()?,
                stamp,
            });
        }
    }
    Some(())
}

/// The files of OUT (relative to it, sorted), with their own stat data
/// (symlinks not followed); `stamp` is `None` for anything but a regular
/// file. Directories are walked, not listed (like `output::diff`); the
/// stat calls go to the open directories (`statx` on the directory's
/// descriptor), so no path is walked twice.
fn snapshot_tree(out: &Path, now: &mut Vec<Now>) -> Option<()> {
    fn walk(dir: &Path, prefix: &str, out: &mut Vec<(String, fs::DirEntry)>) -> Option<()> {
        for entry in fs::read_dir(dir).ok()? {
            let entry = entry.ok()?;
            let name = entry.file_name();
            let name = name.to_str()?;
            let mut rel = String::with_capacity(prefix.len() + 1 + name.len());
            if !prefix.is_empty() {
                rel.push_str(prefix);
                rel.push('/');
            }
            rel.push_str(name);
            if entry.file_type().ok()?.is_dir() {
                walk(&entry.path(), &rel, out)?;
            } else {
                out.push((rel, entry));
            }
        }
        Some(())
    }
    // As many as recorded, when nothing was added.
    let mut files = Vec::with_capacity(now.capacity().saturating_sub(now.len()));
    walk(out, "", &mut files)?;
    files.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    for (path, e) in files {
        let m = e.metadata().ok()?;
        now.push(Now {
            kind: Kind::Output,
            path,
            stamp: m.is_file().then(|| Stamp::of(&m)),
        });
    }
    Some(())
}

/// The inputs and the tree as they are now. One thread: spreading the
/// stat calls over two was slower on a busy 2-core machine (each thread
/// waits for a core) and saved little on an idle one.
fn snapshot(out: &Path, apps_dir: &Path, opts: &Options, expect: usize) -> Option<Vec<Now>> {
    let mut now = Vec::with_capacity(expect);
    snapshot_inputs(apps_dir, opts, &mut now)?;
    snapshot_tree(out, &mut now)?;
    Some(now)
}

/// Whether each recorded file is still there, alone with the other
/// recorded ones, and still holds its recorded content. `trusted(i)` says
/// whether entry `i`'s recorded stamp stands for its recorded content
/// without reading it. Returns the current stamps and, per file, whether
/// it had to be read; `None` when anything differs.
fn verify(
    out: &Path,
    rec: &[Entry],
    now: Vec<Now>,
    trusted: impl Fn(usize) -> bool,
) -> Option<(Vec<Option<Stamp>>, Vec<bool>)> {
    if now.len() != rec.len() {
        return None;
    }
    let mut stamps = Vec::with_capacity(now.len());
    let mut read = Vec::with_capacity(now.len());
    for (i, (e, n)) in rec.iter().zip(now).enumerate() {
        if e.kind != n.kind || e.path != n.path {
            return None;
        }
        match (e.stamp, n.stamp) {
            (None, None) if e.kind == Kind::Template => {
                stamps.push(None);
                read.push(false);
            }
            (Some(recorded), Some(st)) => {
                // A file of the tree is as a run writes it only with its
                // mode (`output::diff` counts any other as changed).
                if e.kind == Kind::Output && st.mode & 0o7777 != FILE_MODE {
                    return None;
                }
                if st == recorded && trusted(i) {
                    read.push(false);
                } else {
                    let path = match e.kind {
                        Kind::Output => out.join(e.path),
                        _ => PathBuf::from(e.path),
                    };
                    // Read after its stat data were taken.
                    let bytes = fs::read(&path).ok()?;
                    if sha256_hex(&bytes) != e.sha256 {
                        return None;
                    }
                    read.push(true);
                }
                stamps.push(Some(st));
            }
            _ => return None,
        }
    }
    Some((stamps, read))
}

/// The fast path: whether OUT already holds what this run would write,
/// decided from the record without loading or rendering anything. When
/// some file had to be read to decide, and `renew` is set, the record is
/// renewed with the files' current stat data.
pub fn lookup(out: &Path, apps_dir: &Path, opts: &Options, renew: bool) -> Option<NoOp> {
    // Every recorded tree holds its generation manifest: without one (OUT
    // gone, emptied or replaced), there is no need to read the record.
    fs::symlink_metadata(out.join(windlass_contract::MANIFEST)).ok()?;
    let text = read_own(&path(out)?)?;
    let (key, exe) = key(apps_dir, opts)?;
    let body = text.strip_prefix(&key)?;
    let rec = Record::parse(body)?;
    let now = snapshot(out, apps_dir, opts, rec.entries.len())?;
    if exe.racy(rec.since_in) {
        return None;
    }
    let reference = |e: &Entry| match e.kind {
        Kind::Output => rec.since_out,
        _ => rec.since_in,
    };
    let (_, read) = verify(out, &rec.entries, now, |i| {
        let e = &rec.entries[i];
        e.stamp.is_some_and(|st| !st.racy(reference(e)))
    })?;
    let warnings = String::from_utf8(hex::decode(rec.warnings).ok()?).ok()?;
    let files = rec
        .entries
        .iter()
        .filter(|e| e.kind == Kind::Output)
        .count();
    if renew && read.iter().any(|&r| r) {
        // Stat again after the new record's file exists (its mtime is the
        // new reference); a file read above is read again after its new
        // stat data were taken, so the renewed record is as sound as one
        // written by a full run. Trusted: what the first pass did not have
        // to read (`verify` checks that its stamp is still the recorded one).
        let since = Since::now();
        if let Some(new) = NewRecord::create(out, since) {
            let renewed = snapshot(out, apps_dir, opts, rec.entries.len())
                .and_then(|now| verify(out, &rec.entries, now, |i| !read[i]));
            match renewed {
                Some((stamps, _)) => {
                    let entries: Vec<Entry> = rec
                        .entries
                        .iter()
                        .zip(stamps)
                        .map(|(e, stamp)| Entry { stamp, ..e.clone() })
                        .collect();
                    let text = render(&key, since.0, new.since_out, &entries, rec.warnings);
                    new.commit(&text);
                }
                None => new.abandon(),
            }
        }
    }
    Some(NoOp { files, warnings })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(m: i64, c: i64) -> Stamp {
        Stamp {
            dev: 1,
            ino: 2,
            mode: 0o100644,
            size: 3,
            mtime: (m, 500),
            ctime: (c, 500),
        }
    }

    #[test]
    fn a_file_stamped_at_or_after_the_reference_is_racy() {
        assert!(!stamp(9, 9).racy((10, 0)));
        assert!(stamp(10, 9).racy((10, 0)));
        assert!(stamp(9, 10).racy((10, 0)));
        assert!(stamp(9, 9).racy((9, 500)));
        assert!(!stamp(9, 9).racy((9, 501)));
    }

    #[test]
    fn split_and_cut_are_strs() {
        for s in [
            "",
            " ",
            "a",
            "a b",
            " a ",
            "a  b",
            "é ü",
            "line\nnext\n",
            "x y z w",
        ] {
            for sep in [b' ', b'\n'] {
                let c = sep as char;
                assert_eq!(
                    Split::new(s, sep).collect::<Vec<_>>(),
                    s.split(c).collect::<Vec<_>>(),
                    "{s:?}"
                );
                assert_eq!(
                    cut(s, sep),
                    s.split_once(c).map_or((s, None), |(a, b)| (a, Some(b))),
                    "{s:?}"
                );
            }
        }
    }

    #[test]
    fn a_rendered_record_parses_back_and_any_cut_is_refused() {
        let (sha_a, sha_b) = ("a".repeat(64), "b".repeat(64));
        let entries = vec![
            Entry {
                kind: Kind::Input,
                path: "fleet/apps/a b.toml",
                stamp: Some(stamp(1, 2)),
                sha256: &sha_a,
            },
            Entry {
                kind: Kind::Template,
                path: "t/quadlet/volume.j2",
                stamp: None,
                sha256: "",
            },
            Entry {
                kind: Kind::Output,
                path: "quadlet/a.container",
                stamp: Some(stamp(3, 4)),
                sha256: &sha_b,
            },
        ];
        let text = render("KEY\n", (5, 0), (6, 7), &entries, "6869").concat();
        let body = text.strip_prefix("KEY\n").unwrap();
        let rec = Record::parse(body).unwrap();
        assert_eq!((rec.since_in, rec.since_out), ((5, 0), (6, 7)));
        assert_eq!(rec.warnings, "6869");
        assert_eq!(rec.entries.len(), 3);
        for (a, b) in rec.entries.iter().zip(&entries) {
            assert_eq!(
                (a.kind, a.path, a.stamp, a.sha256),
                (b.kind, b.path, b.stamp, b.sha256)
            );
        }
        for cut in 0..body.len() {
            assert!(Record::parse(&body[..cut]).is_none(), "cut at {cut}");
        }
        assert!(Record::parse(&format!("{body}output")).is_none());
    }

    #[test]
    fn the_key_names_every_option_and_the_generator() {
        let opts = |targets: &[crate::emit::Target]| Options {
            podman_version: Some("5.5".into()),
            templates: Some(PathBuf::from("tpl")),
            targets: targets.iter().copied().collect(),
            nixos_backend: crate::emit::NixosBackend::Quadlet,
        };
        let (k, _) = key(Path::new("fleet"), &opts(&[crate::emit::Target::Guix])).unwrap();
        for line in [
            "windlass-record 1\n",
            &format!("\nversion {}\n", env!("CARGO_PKG_VERSION")),
            "\nexe ",
            "\nfleet fleet\n",
            "\npodman-version some 5.5\n",
            "\ntemplates some tpl\n",
            "\ntargets guix\n",
            "\nnixos-backend quadlet\n",
        ] {
            assert!(k.contains(line), "{line:?} missing from {k}");
        }
        let (k2, _) = key(
            Path::new("fleet"),
            &opts(&[crate::emit::Target::Guix, crate::emit::Target::Quadlet]),
        )
        .unwrap();
        assert_ne!(k, k2);
        assert!(key(Path::new("a\nb"), &opts(&[])).is_none());
    }

    #[test]
    fn the_record_sits_beside_the_tree() {
        assert_eq!(
            path(Path::new("/srv/out")).unwrap(),
            Path::new("/srv/.out.windlass-record")
        );
        assert_eq!(
            path(Path::new("out")).unwrap(),
            Path::new("./.out.windlass-record")
        );
        assert!(path(Path::new("/")).is_none());
    }
}
