//! The bad-input corpus: every directory under `tests/bad/` is a small fleet
//! that must be refused.
//!
//! For each case the real binary runs `generate` (into a fresh, absent output
//! directory and into a pre-populated one) and `validate`, with the working
//! directory set to `tests/` so paths in messages stay short and stable. Each
//! run must exit 1, write nothing, and print rustc-style errors: every
//! headline followed by `  --> path:line:col` pointing into the case's files,
//! naming the key in backticks (syntax, UTF-8 and whole-file errors aside),
//! and ending in an `error: N errors in M files; nothing was written` summary
//! whose counts agree with the headlines. The stderr text is snapshot-tested
//! (`tests/snapshots/bad_input__<case>.snap`).
//!
//! Adding a case is adding a directory. Cases that show a generator defect
//! are listed in `KNOWN_GAPS`: they are still checked to write nothing and
//! fail, but have no snapshot; `known_gaps_still_reproduce` checks that each
//! defect is still there (and fails once it is fixed, so the entry gets
//! removed and the case snapshot-tested like the rest).

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A secret value written into some manifests; it must never be echoed.
const SECRET_VALUE: &str = "hunter2";

/// A case whose current output is not acceptable.
struct Gap {
    case: &'static str,
    /// Text in the current `generate` stderr that shows the defect.
    symptom: &'static str,
    what: &'static str,
}

const KNOWN_GAPS: &[Gap] = &[];

fn gap(case: &str) -> Option<&'static Gap> {
    KNOWN_GAPS.iter().find(|g| g.case == case)
}

fn tests_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests")
}

fn corpus_dir() -> PathBuf {
    tests_dir().join("bad")
}

/// Every case directory, sorted.
fn cases() -> Vec<String> {
    let mut cases: Vec<String> = fs::read_dir(corpus_dir())
        .expect("tests/bad exists")
        .map(|e| e.expect("readable tests/bad"))
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.file_name().into_string().expect("UTF-8 case name"))
        .collect();
    cases.sort();
    cases
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn windlass(args: &[OsString]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_windlass"))
        .current_dir(tests_dir())
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("cannot run windlass");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .map(|rd| {
            rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Everything one case produced.
struct Outcome {
    case: String,
    generate: Run,
    /// `generate` into an existing output directory.
    generate_existing: Run,
    validate: Run,
    /// Violations of "nothing is written": these hold for every case, gaps included.
    writes: Vec<String>,
}

const KEEP_MANIFEST: &[u8] = b"{}";
const KEEP_TXT: &[u8] = b"written by an earlier run; must survive a failed one\n";

fn exercise(case: &str) -> Outcome {
    let rel = format!("bad/{case}");
    let mut writes = Vec::new();

    // 1. Output directory that does not exist yet.
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let generate = windlass(&[
        "generate".into(),
        rel.clone().into(),
        "-o".into(),
        out.clone().into(),
    ]);
    if out.exists() {
        writes.push(format!("generate created {}", out.display()));
    }
    let left = listing(tmp.path());
    if !left.is_empty() {
        writes.push(format!(
            "generate left {left:?} beside the absent output directory"
        ));
    }

    // 2. Output directory from an earlier run.
    let tmp2 = tempfile::tempdir().unwrap();
    let out2 = tmp2.path().join("out");
    fs::create_dir(&out2).unwrap();
    fs::write(out2.join("windlass-generation.json"), KEEP_MANIFEST).unwrap();
    fs::write(out2.join("keep.txt"), KEEP_TXT).unwrap();
    let generate_existing = windlass(&[
        "generate".into(),
        rel.clone().into(),
        "-o".into(),
        out2.clone().into(),
    ]);
    let left = listing(tmp2.path());
    if left != ["out"] {
        writes.push(format!(
            "generate into an existing directory left {left:?} beside it"
        ));
    }
    let inside = listing(&out2);
    if inside != ["keep.txt", "windlass-generation.json"] {
        writes.push(format!("existing output directory now holds {inside:?}"));
    }
    for (name, want) in [
        ("windlass-generation.json", KEEP_MANIFEST),
        ("keep.txt", KEEP_TXT),
    ] {
        if fs::read(out2.join(name)).ok().as_deref() != Some(want) {
            writes.push(format!("existing {name} was changed or removed"));
        }
    }

    let validate = windlass(&["validate".into(), rel.into()]);
    Outcome {
        case: case.to_string(),
        generate,
        generate_existing,
        validate,
        writes,
    }
}

/// Runs every case, several at a time; results in `cases` order.
fn exercise_all(cases: &[String]) -> Vec<Outcome> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Outcome>>> = Mutex::new((0..cases.len()).map(|_| None).collect());
    let threads = std::thread::available_parallelism()
        .map_or(4, |n| n.get())
        .min(16);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(case) = cases.get(i) else { break };
                    let o = exercise(case);
                    results.lock().unwrap()[i] = Some(o);
                }
            });
        }
    });
    results
        .into_inner()
        .unwrap()
        .into_iter()
        .map(|o| o.expect("every case ran"))
        .collect()
}

/// Headlines that may name no key: the file as a whole is unreadable.
fn whole_file_error(headline: &str) -> bool {
    [
        "error: invalid TOML: ",
        "error: expected UTF-8",
        "error: cannot read file",
    ]
    .iter()
    .any(|p| headline.starts_with(p))
}

fn parse_summary(line: &str) -> Option<(usize, usize)> {
    let rest = line
        .strip_prefix("error: ")?
        .strip_suffix("; nothing was written")?;
    let (errors, files) = rest.split_once(" in ")?;
    let (n, word) = errors.split_once(' ')?;
    let (m, fword) = files.split_once(' ')?;
    let n: usize = n.parse().ok()?;
    let m: usize = m.parse().ok()?;
    let ok_word = word == if n == 1 { "error" } else { "errors" };
    let ok_fword = fword == if m == 1 { "file" } else { "files" };
    (ok_word && ok_fword).then_some((n, m))
}

/// `  --> path:line:col`
fn parse_location(line: &str) -> Option<(String, usize, usize)> {
    let rest = line.strip_prefix("  --> ")?;
    let (rest, col) = rest.rsplit_once(':')?;
    let (path, line) = rest.rsplit_once(':')?;
    Some((path.to_string(), line.parse().ok()?, col.parse().ok()?))
}

/// The file a location names: relative to the working directory, or (as the
/// generator prints today) to the parent of the fleet directory.
fn resolve(path: &str) -> Option<PathBuf> {
    [tests_dir().join(path), corpus_dir().join(path)]
        .into_iter()
        .find(|p| p.is_file())
}

/// Everything wrong with a case's error output; empty when acceptable.
fn problems(o: &Outcome) -> Vec<String> {
    let mut p = o.writes.clone();
    for (what, run) in [
        ("generate", &o.generate),
        ("generate (existing out)", &o.generate_existing),
        ("validate", &o.validate),
    ] {
        if run.code != Some(1) {
            p.push(format!("{what}: exit code {:?}, expected 1", run.code));
        }
        if !run.stdout.is_empty() {
            p.push(format!("{what}: printed to stdout: {:?}", run.stdout));
        }
    }
    if o.validate.stderr != o.generate.stderr {
        p.push("validate and generate print different errors".to_string());
    }
    if o.generate_existing.stderr != o.generate.stderr {
        p.push("generate prints different errors when the output directory exists".to_string());
    }

    let err = &o.generate.stderr;
    if err.contains(SECRET_VALUE) {
        p.push(format!(
            "the secret value {SECRET_VALUE:?} appears in the error output"
        ));
    }
    if let Some(c) = err.chars().find(|c| c.is_control() && *c != '\n') {
        p.push(format!(
            "control character U+{:04X} in the error output",
            c as u32
        ));
    }
    if !err.ends_with('\n') {
        p.push("error output does not end with a newline".to_string());
    }

    let lines: Vec<&str> = err.lines().collect();
    let Some(summary) = lines.last() else {
        p.push("no error output".to_string());
        return p;
    };
    let counts = parse_summary(summary);
    if counts.is_none() {
        p.push(format!(
            "last line is not `error: N errors in M files; nothing was written`: {summary:?}"
        ));
    }

    let mut headlines = 0;
    let mut files = BTreeSet::new();
    for (i, line) in lines[..lines.len() - 1].iter().enumerate() {
        if !line.starts_with("error") && !line.starts_with("warning") {
            continue;
        }
        if !line.starts_with("error: ") {
            p.push(format!("unexpected headline {line:?}"));
            continue;
        }
        headlines += 1;
        let names_key = line
            .strip_prefix("error: `")
            .and_then(|r| r.split_once("`: "))
            .is_some_and(|(key, _)| !key.is_empty());
        if !names_key && !whole_file_error(line) {
            p.push(format!("headline names no key in backticks: {line:?}"));
        }
        let Some((path, l, c)) = lines.get(i + 1).and_then(|n| parse_location(n)) else {
            p.push(format!(
                "headline not followed by `  --> path:line:col`: {line:?}"
            ));
            continue;
        };
        files.insert(path.clone());
        let Some(file) = resolve(&path) else {
            p.push(format!("{path}: no such file in the corpus"));
            continue;
        };
        let text = String::from_utf8_lossy(&fs::read(&file).unwrap()).into_owned();
        let Some(src) = l.checked_sub(1).and_then(|n| text.lines().nth(n)) else {
            if !(l == 1 && c == 1 && text.is_empty()) {
                p.push(format!("{path}:{l}:{c}: line {l} does not exist"));
            }
            continue;
        };
        if c == 0 || c - 1 > src.chars().count() {
            p.push(format!("{path}:{l}:{c}: column {c} is outside the line"));
            continue;
        }
        // The quoted line and the caret under it.
        let shown: String = src
            .chars()
            .map(|ch| if ch.is_control() { ' ' } else { ch })
            .collect();
        let quote = format!("{l} | {shown}");
        // A line that may hold a secret value is withheld, on purpose.
        if lines
            .get(i + 2)
            .is_some_and(|q| q.contains("(source line not shown: it may hold a secret value)"))
        {
            continue;
        }
        match lines.get(i + 3) {
            Some(q) if *q == quote.trim_end() || *q == quote => {
                let caret = lines.get(i + 4).copied().unwrap_or_default();
                let gutter = " ".repeat(l.to_string().len());
                let under = caret
                    .strip_prefix(&format!("{gutter} | "))
                    .unwrap_or_default();
                let pad = under.chars().take_while(|ch| *ch == ' ').count();
                if pad != c - 1 || !under[pad..].starts_with('^') {
                    p.push(format!(
                        "{path}:{l}:{c}: caret line {caret:?} does not point at column {c}"
                    ));
                }
            }
            other => p.push(format!(
                "{path}:{l}:{c}: expected the quoted line {quote:?}, found {other:?}"
            )),
        }
    }
    if let Some((n, m)) = counts {
        if n != headlines {
            p.push(format!(
                "summary counts {n} errors, output has {headlines} headlines"
            ));
        }
        if m != files.len() {
            p.push(format!(
                "summary counts {m} files, errors point into {} files",
                files.len()
            ));
        }
    }
    if headlines == 0 {
        p.push("no error headline before the summary".to_string());
    }
    p
}

/// The case's input files, for the snapshot header.
fn describe(case: &str) -> String {
    fn walk(dir: &Path, base: &Path, out: &mut Vec<(String, String)>) {
        for e in fs::read_dir(dir).unwrap() {
            let path = e.unwrap().path();
            if path.is_dir() {
                walk(&path, base, out);
            } else {
                let rel = path
                    .strip_prefix(base)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                out.push((
                    rel,
                    String::from_utf8_lossy(&fs::read(&path).unwrap()).into_owned(),
                ));
            }
        }
    }
    let mut files = Vec::new();
    walk(&corpus_dir().join(case), &corpus_dir(), &mut files);
    files.sort();
    files
        .iter()
        .map(|(p, t)| format!("# {p}\n{t}"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn bad_inputs_are_refused_with_positioned_errors() {
    let cases = cases();
    assert!(
        cases.len() >= 40,
        "the corpus has only {} cases",
        cases.len()
    );
    for g in KNOWN_GAPS {
        assert!(
            cases.iter().any(|c| c == g.case),
            "KNOWN_GAPS names {}, which is not in tests/bad",
            g.case
        );
    }

    let outcomes = exercise_all(&cases);
    let mut failures = Vec::new();
    for o in &outcomes {
        if gap(&o.case).is_none() {
            failures.extend(problems(o).into_iter().map(|p| format!("{}: {p}", o.case)));
            continue;
        }
        // A known gap still writes nothing and is still refused.
        failures.extend(o.writes.iter().map(|w| format!("{}: {w}", o.case)));
        for (what, run) in [
            ("generate", &o.generate),
            ("generate (existing out)", &o.generate_existing),
            ("validate", &o.validate),
        ] {
            if run.code == Some(0) {
                failures.push(format!("{}: {what} accepted it (exit 0)", o.case));
            }
        }
    }

    for o in outcomes.iter().filter(|o| gap(&o.case).is_none()) {
        let mut settings = insta::Settings::clone_current();
        settings.set_description(describe(&o.case));
        settings.set_omit_expression(true);
        settings.bind(|| insta::assert_snapshot!(o.case.as_str(), &o.generate.stderr));
    }

    assert!(
        failures.is_empty(),
        "{} problem(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Each known gap must still show its defect. When one no longer does, it
/// was probably fixed: remove it from `KNOWN_GAPS` so the case is checked
/// and snapshot-tested like the others.
#[test]
fn known_gaps_still_reproduce() {
    let mut fixed = Vec::new();
    for g in KNOWN_GAPS {
        let o = exercise(g.case);
        eprintln!("KNOWN GAP {}: {}", g.case, g.what);
        for p in problems(&o) {
            eprintln!("    {p}");
        }
        if !o.generate.stderr.contains(g.symptom) {
            fixed.push(format!(
                "{}: the symptom {:?} is gone ({}); problems left: {:?}",
                g.case,
                g.symptom,
                g.what,
                problems(&o)
            ));
        }
    }
    assert!(
        fixed.is_empty(),
        "known gaps that no longer reproduce; remove them from KNOWN_GAPS:\n{}",
        fixed.join("\n")
    );
}
