//! systemd unit file syntax, and Quadlet's reading of it.
//!
//! Two layers meet in a Quadlet file. Quadlet splits `Environment=`, `Exec=`,
//! `Label=` and `PodmanArgs=` into words (C unescaping, quotes), then writes
//! them into the `ExecStart=` of the service it generates, re-quoted but
//! with `$` and `%` untouched. systemd then expands `%` specifiers and
//! `$VAR`/`${VAR}` in that line. So a literal value is written as a quoted,
//! C-escaped word with `%` doubled and `$` doubled: after both layers the
//! container receives the original bytes. Keys Quadlet copies verbatim
//! (`Image=`, `HealthCmd=`, …) get only the `%`/`$` doubling and must be
//! free of control characters and surrounding white space.

use std::fmt::Write as _;

/// A word for a line systemd (or Quadlet) splits into words: always quoted,
/// C-escaped, with `%` and `$` doubled.
pub fn word(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '%' => out.push_str("%%"),
            '$' => out.push_str("$$"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A command line for a plain systemd `ExecStart=`: each argument a word; a
/// lone `;` (systemd's command separator) is written as `\;`.
pub fn exec_line(args: &[String]) -> String {
    args.iter()
        .map(|a| if a == ";" { "\\;".to_string() } else { word(a) })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A value Quadlet copies verbatim into `ExecStart=`: `%` and `$` doubled.
///
/// Callers guarantee (by validation in `model`) that the value has no
/// control characters and no surrounding white space; a violation is a bug,
/// so it panics rather than writing a unit that means something else.
pub fn verbatim(s: &str) -> String {
    assert!(
        !s.chars().any(char::is_control) && s.trim() == s,
        "verbatim value must be validated before escaping: {s:?}"
    );
    s.replace('%', "%%").replace('$', "$$")
}

/// Free text for settings systemd does not split (`Description=`): `%`
/// doubled. Same preconditions as `verbatim`, except `$` is literal there.
pub fn text(s: &str) -> String {
    assert!(
        !s.chars().any(char::is_control),
        "text must be validated before escaping: {s:?}"
    );
    s.trim().replace('%', "%%")
}

/// The inverse of the two layers, as Quadlet and then systemd apply them,
/// for one word: used by tests to prove `word` exact. Returns None for input
/// `word` never produces.
pub fn unword(w: &str) -> Option<String> {
    let inner = w.strip_prefix('"')?.strip_suffix('"')?;
    let mut out = String::new();
    let mut it = inner.chars().peekable();
    while let Some(c) = it.next() {
        match c {
            '\\' => match it.next()? {
                '"' => out.push('"'),
                '\\' => out.push('\\'),
                'n' => out.push('\n'),
                't' => out.push('\t'),
                'r' => out.push('\r'),
                'x' => {
                    let h: String = [it.next()?, it.next()?].iter().collect();
                    out.push(char::from(u8::from_str_radix(&h, 16).ok()?));
                }
                _ => return None,
            },
            '%' | '$' => {
                if it.next()? != c {
                    return None;
                }
                out.push(c);
            }
            '"' => return None,
            c => out.push(c),
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn words_are_quoted_and_double_specifiers_and_dollars() {
        assert_eq!(word("a b"), "\"a b\"");
        assert_eq!(word("$HOME ${X} %n %%"), "\"$$HOME $${X} %%n %%%%\"");
        assert_eq!(word("l1\nl2\t\"q\" \\"), "\"l1\\nl2\\t\\\"q\\\" \\\\\"");
        assert_eq!(word(""), "\"\"");
        assert_eq!(word("\u{1}"), "\"\\x01\"");
    }

    #[test]
    fn a_lone_semicolon_is_escaped_in_exec_lines() {
        assert_eq!(exec_line(&[";".into(), "a;b".into()]), "\\; \"a;b\"");
    }

    #[test]
    fn verbatim_values_double_specifiers_and_dollars() {
        assert_eq!(
            verbatim("[\"sh\",\"-c\",\"echo $X 100%\"]"),
            "[\"sh\",\"-c\",\"echo $$X 100%%\"]"
        );
    }

    proptest! {
        #[test]
        fn any_string_without_nul_survives_word_escaping(s in "[^\u{0}]*") {
            prop_assert_eq!(unword(&word(&s)), Some(s.clone()));
        }

        #[test]
        fn words_never_span_lines(s in "[^\u{0}]*") {
            let w = word(&s);
            prop_assert!(!w.contains('\n') && !w.contains('\r'));
        }
    }
}
