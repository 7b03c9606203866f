//! The calendar and time span corpora (`tests/data/*-corpus.txt`) checked
//! twice: against `windlass::model::time`, and against the real systemd 257
//! (`systemd-analyze`) in the oracle rootfs, so that neither the port nor the
//! corpus labels can drift from what systemd actually does.

mod common;

use std::fmt::Write as _;
use std::path::Path;

use windlass::model::time::{format_timespan, parse_timespan, validate_calendar};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Label {
    /// systemd accepts the expression.
    Ok,
    /// systemd refuses the expression.
    Bad,
    /// systemd accepts it as infinity; windlass refuses it on purpose.
    Refuse,
}

#[derive(Debug)]
struct Entry {
    /// 1-based line in the corpus file.
    line: usize,
    label: Label,
    /// The expression as written in the corpus (escaped).
    raw: String,
    /// The expression itself.
    expr: String,
    /// For `ok` time spans: systemd's value in microseconds.
    usec: Option<u64>,
}

/// Undoes the corpus escapes: `<empty>`, `\\`, `\t`, `\r`, `\v`, `\f`,
/// `\xHH` (ASCII) and `\u{H...}`.
fn decode(raw: &str, line: usize) -> String {
    if raw == "<empty>" {
        return String::new();
    }
    let mut out = String::new();
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let bad = || panic!("line {line}: unknown escape in {raw:?}");
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('v') => out.push('\x0b'),
            Some('f') => out.push('\x0c'),
            Some('x') => {
                let hex: String = chars.by_ref().take(2).collect();
                match u8::from_str_radix(&hex, 16) {
                    Ok(b) if b.is_ascii() => out.push(char::from(b)),
                    _ => bad(),
                }
            }
            Some('u') => {
                if chars.next() != Some('{') {
                    bad();
                }
                let hex: String = chars.by_ref().take_while(|&c| c != '}').collect();
                match u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32) {
                    Some(c) => out.push(c),
                    None => bad(),
                }
            }
            _ => bad(),
        }
    }
    assert!(
        !out.contains(['\n', '\0']),
        "line {line}: {raw:?} cannot go through the oracle"
    );
    out
}

fn load(name: &str) -> Vec<Entry> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let mut entries = Vec::new();
    for (i, text_line) in text.lines().enumerate() {
        let line = i + 1;
        if text_line.is_empty() || text_line.starts_with('#') {
            continue;
        }
        let (label, rest) = if let Some(rest) = text_line.strip_prefix("ok ") {
            (Label::Ok, rest)
        } else if let Some(rest) = text_line.strip_prefix("bad ") {
            (Label::Bad, rest)
        } else if let Some(rest) = text_line.strip_prefix("refuse ") {
            (Label::Refuse, rest)
        } else {
            panic!("{name}:{line}: expected `ok `, `bad ` or `refuse `, found {text_line:?}");
        };
        let (raw, usec) = match rest.rsplit_once(" => ") {
            Some((raw, value)) if label == Label::Ok => {
                let value = value
                    .parse()
                    .unwrap_or_else(|e| panic!("{name}:{line}: bad microseconds {value:?}: {e}"));
                (raw, Some(value))
            }
            _ => (rest, None),
        };
        entries.push(Entry {
            line,
            label,
            raw: raw.into(),
            expr: decode(raw, line),
            usec,
        });
    }
    entries
}

fn calendar_corpus() -> Vec<Entry> {
    let entries = load("calendar-corpus.txt");
    assert!(
        entries.len() >= 120,
        "calendar corpus shrank to {} entries",
        entries.len()
    );
    assert!(
        entries
            .iter()
            .all(|e| e.label != Label::Refuse && e.usec.is_none())
    );
    entries
}

fn timespan_corpus() -> Vec<Entry> {
    let entries = load("timespan-corpus.txt");
    assert!(
        entries.len() >= 50,
        "time span corpus shrank to {} entries",
        entries.len()
    );
    for e in &entries {
        assert_eq!(
            e.label == Label::Ok,
            e.usec.is_some(),
            "line {}: `ok` lines need `=> USEC`",
            e.line
        );
    }
    entries
}

fn assert_no_mismatches(what: &str, mismatches: &str) {
    assert!(mismatches.is_empty(), "{what}:\n{mismatches}");
}

#[test]
fn validate_calendar_agrees_with_every_calendar_corpus_label() {
    let mut mismatches = String::new();
    for e in calendar_corpus() {
        let got = validate_calendar(&e.expr);
        if got.is_ok() != (e.label == Label::Ok) {
            writeln!(
                mismatches,
                "line {}: {:?} is labelled {:?}, got {got:?}",
                e.line, e.raw, e.label
            )
            .unwrap();
        }
    }
    assert_no_mismatches("validate_calendar disagrees with the corpus", &mismatches);
}

#[test]
fn parse_timespan_agrees_with_every_timespan_corpus_label_and_value() {
    let mut mismatches = String::new();
    for e in timespan_corpus() {
        let got = parse_timespan(&e.expr);
        let agrees = match e.label {
            Label::Ok => got == Ok(e.usec.unwrap()),
            Label::Bad => got.is_err(),
            Label::Refuse => got
                .as_ref()
                .is_err_and(|err| err.message.contains("infinity")),
        };
        if !agrees {
            writeln!(
                mismatches,
                "line {}: {:?} is labelled {:?} {:?}, got {got:?}",
                e.line, e.raw, e.label, e.usec
            )
            .unwrap();
        }
    }
    assert_no_mismatches("parse_timespan disagrees with the corpus", &mismatches);
}

#[test]
fn format_timespan_round_trips_every_accepted_corpus_value() {
    for e in timespan_corpus() {
        if let Some(usec) = e.usec {
            let text = format_timespan(usec);
            assert_eq!(parse_timespan(&text), Ok(usec), "line {}: {text:?}", e.line);
        }
    }
}

/// Prints `cal RC` per calendar line, then `ts 1` or `ts 0 USEC HUMAN` per
/// time span line, then `end`.
const ORACLE_SCRIPT: &str = r#"
set -u
while IFS= read -r l; do
  systemd-analyze calendar -- "$l" >/dev/null 2>&1
  echo "cal $?"
done < /corpus/calendar.txt
while IFS= read -r l; do
  if out=$(systemd-analyze timespan -- "$l" 2>/dev/null); then
    us=$(printf '%s\n' "$out" | sed -n 's/^ *μs: //p')
    human=$(printf '%s\n' "$out" | sed -n 's/^ *Human: //p')
    echo "ts 0 $us $human"
  else
    echo "ts $?"
  fi
done < /corpus/timespan.txt
echo end
"#;

#[test]
fn both_corpora_agree_with_systemd_analyze_in_the_oracle() {
    if !common::oracles_enabled("both_corpora_agree_with_systemd_analyze_in_the_oracle") {
        return;
    }
    let calendar = calendar_corpus();
    let timespan = timespan_corpus();
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, entries: &[Entry]| {
        let text: String = entries.iter().map(|e| format!("{}\n", e.expr)).collect();
        std::fs::write(dir.path().join(name), text).unwrap();
    };
    write("calendar.txt", &calendar);
    write("timespan.txt", &timespan);

    let out = common::oracle(&[(dir.path(), "/corpus")], &["bash", "-c", ORACLE_SCRIPT]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.ends_with("end\n"),
        "oracle run failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let mut lines = stdout.lines();
    let mut mismatches = String::new();

    for e in &calendar {
        let line = lines.next().unwrap_or_default();
        let accepted = match line {
            "cal 0" => true,
            "cal 1" => false,
            _ => panic!(
                "line {}: {:?}: unexpected oracle output {line:?}",
                e.line, e.raw
            ),
        };
        if accepted != (e.label == Label::Ok) {
            let verdict = if accepted { "accepts" } else { "refuses" };
            writeln!(
                mismatches,
                "calendar line {}: {:?} is labelled {:?} but systemd {verdict} it",
                e.line, e.raw, e.label
            )
            .unwrap();
        }
    }

    for e in &timespan {
        let line = lines.next().unwrap_or_default();
        let Some(rest) = line.strip_prefix("ts ") else {
            panic!(
                "line {}: {:?}: unexpected oracle output {line:?}",
                e.line, e.raw
            );
        };
        let (rc, rest) = rest.split_once(' ').unwrap_or((rest, ""));
        let (usec, human) = rest.split_once(' ').unwrap_or((rest, ""));
        let problem = match (e.label, rc) {
            (Label::Bad, "1") => None,
            (Label::Ok, "0") if usec.parse() != Ok(e.usec.unwrap()) => Some(format!(
                "systemd says {usec} microseconds, the corpus says {:?}",
                e.usec
            )),
            (Label::Ok, "0") if format_timespan(e.usec.unwrap()) != human => Some(format!(
                "systemd renders it {human:?}, format_timespan renders {:?}",
                format_timespan(e.usec.unwrap())
            )),
            (Label::Ok, "0") => None,
            (Label::Refuse, "0") if usec == u64::MAX.to_string() => None,
            _ => Some(format!("systemd answered {line:?}")),
        };
        if let Some(problem) = problem {
            writeln!(
                mismatches,
                "timespan line {}: {:?} is labelled {:?}: {problem}",
                e.line, e.raw, e.label
            )
            .unwrap();
        }
    }
    assert_eq!(
        lines.next(),
        Some("end"),
        "the oracle answered more lines than the corpora have"
    );
    assert_no_mismatches("the corpora disagree with systemd 257", &mismatches);
}
