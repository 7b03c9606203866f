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
    word_of(&[s])
}

/// The [`word`] of `parts` written one after the other (`["--flag=", v]`,
/// `[key, "=", value]`), without joining them first.
pub fn word_of(parts: &[&str]) -> String {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    let mut out = String::with_capacity(len + 2);
    out.push('"');
    for part in parts {
        push_word_body(&mut out, part);
    }
    out.push('"');
    out
}

/// Appends `s` escaped as the inside of a [`word`]. Every byte escaped is
/// ASCII, so the text between them is copied in runs, never split inside
/// a UTF-8 sequence (whose bytes are all 0x80 and above).
fn push_word_body(out: &mut String, s: &str) {
    let mut run = 0;
    for (i, &b) in s.as_bytes().iter().enumerate() {
        let escaped = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\t' => "\\t",
            b'\r' => "\\r",
            b'%' => "%%",
            b'$' => "$$",
            b if b < 0x20 || b == 0x7f => "",
            _ => continue,
        };
        out.push_str(&s[run..i]);
        if escaped.is_empty() {
            let _ = write!(out, "\\x{b:02x}");
        } else {
            out.push_str(escaped);
        }
        run = i + 1;
    }
    out.push_str(&s[run..]);
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
    double_specifiers_and_dollars(s)
}

/// `s` with `%` and `$` doubled; copied once when it has neither.
fn double_specifiers_and_dollars(s: &str) -> String {
    if memchr::memchr2(b'%', b'$', s.as_bytes()).is_none() {
        return s.to_string();
    }
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

    /// [`word`] as it was written before it copied runs: char by char.
    fn word_by_chars(s: &str) -> String {
        let mut out = String::from("\"");
        for c in s.chars() {
            match c {
                '"' | '\\' => {
                    out.push('\\');
                    out.push(c);
                }
                '\n' => out.push_str("\\n"),
                '\t' => out.push_str("\\t"),
                '\r' => out.push_str("\\r"),
                '%' | '$' => {
                    out.push(c);
                    out.push(c);
                }
                c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                    out.push_str(&format!("\\x{:02x}", c as u32));
                }
                c => out.push(c),
            }
        }
        out.push('"');
        out
    }

    proptest! {
        #[test]
        fn words_are_what_escaping_char_by_char_gives(s in "[^\u{0}]*", cut in 0usize..8) {
            prop_assert_eq!(word(&s), word_by_chars(&s));
            // In parts, cut anywhere between characters: the same word.
            let at = s.char_indices().map(|(i, _)| i).nth(cut).unwrap_or(s.len());
            prop_assert_eq!(word_of(&[&s[..at], &s[at..]]), word_by_chars(&s));
        }

        #[test]
        fn verbatim_doubling_is_the_two_replacements(s in "[a-z%$ ]{0,12}") {
            prop_assert_eq!(
                double_specifiers_and_dollars(&s),
                s.replace('%', "%%").replace('$', "$$")
            );
        }

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
