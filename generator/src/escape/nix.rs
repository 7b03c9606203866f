//! Nix expressions, built as values and rendered with correct escaping.
//!
//! Emitters describe what they want as a [`Nix`] tree; only this module
//! turns it into text. Strings become `"…"` literals in which `\`, `"` and
//! every `$` are escaped (so neither `${` nor `$${` can start or change an
//! interpolation), or, for multi-line text that reads better that way,
//! `''…''` literals with `''` escaped and `$` written as `${"$"}`. Attribute names that
//! are not plain identifiers are quoted the same way. The only unescaped
//! text is [`Nix::Code`], which takes `&'static str`: code written into
//! windlass itself, never a value from a manifest.

use std::fmt::Write as _;

#[derive(Debug, Clone, PartialEq)]
pub enum Nix {
    Null,
    Bool(bool),
    Int(i64),
    Str(String),
    /// Multi-line text, written as an indented string when that is exact.
    Text(String),
    List(Vec<Nix>),
    /// `{ a.b = v; }`: each entry is an attribute path and its value, in the
    /// order given.
    Attrs(Vec<(Vec<String>, Nix)>),
    /// A fixed piece of Nix written by windlass (an identifier, a path
    /// such as `./apps/x.nix` built from a checked name, `lib.mkForce`).
    Code(&'static str),
    /// A path or identifier composed by windlass from checked names only.
    Checked(String),
    /// `f a b`: function application.
    Apply(Box<Nix>, Vec<Nix>),
}

impl Nix {
    pub fn str(s: impl Into<String>) -> Nix {
        Nix::Str(s.into())
    }

    pub fn strs<I, S>(items: I) -> Nix
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Nix::List(items.into_iter().map(|s| Nix::Str(s.into())).collect())
    }

    pub fn apply(f: &'static str, args: Vec<Nix>) -> Nix {
        Nix::Apply(Box::new(Nix::Code(f)), args)
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        self.write(&mut out, 0);
        out
    }

    /// Renders at `indent` levels of two spaces (for use inside templates).
    pub fn render_at(&self, indent: usize) -> String {
        let mut out = String::new();
        self.write(&mut out, indent);
        out
    }

    fn is_atom(&self) -> bool {
        match self {
            Nix::Apply(..) => false,
            Nix::Code(c) => !c.contains(' '),
            Nix::Checked(c) => !c.contains(' '),
            _ => true,
        }
    }

    fn write(&self, out: &mut String, indent: usize) {
        match self {
            Nix::Null => out.push_str("null"),
            Nix::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Nix::Int(i) => {
                if *i < 0 {
                    // `-1` parses as a negation; parenthesise inside lists.
                    let _ = write!(out, "({i})");
                } else {
                    let _ = write!(out, "{i}");
                }
            }
            Nix::Str(s) => write_string(s, out),
            Nix::Text(s) => match indented(s, indent + 1) {
                Some(t) => out.push_str(&t),
                None => write_string(s, out),
            },
            Nix::Code(c) => out.push_str(c),
            Nix::Checked(c) => out.push_str(c),
            Nix::List(items) => {
                if items.is_empty() {
                    out.push_str("[ ]");
                    return;
                }
                out.push_str("[\n");
                for item in items {
                    pad(out, indent + 1);
                    if item.is_atom() {
                        item.write(out, indent + 1);
                    } else {
                        out.push('(');
                        item.write(out, indent + 1);
                        out.push(')');
                    }
                    out.push('\n');
                }
                pad(out, indent);
                out.push(']');
            }
            Nix::Attrs(entries) => {
                if entries.is_empty() {
                    out.push_str("{ }");
                    return;
                }
                out.push_str("{\n");
                for (path, value) in entries {
                    pad(out, indent + 1);
                    for (i, seg) in path.iter().enumerate() {
                        if i > 0 {
                            out.push('.');
                        }
                        if is_identifier(seg) {
                            out.push_str(seg);
                        } else {
                            write_string(seg, out);
                        }
                    }
                    out.push_str(" = ");
                    value.write(out, indent + 1);
                    out.push_str(";\n");
                }
                pad(out, indent);
                out.push('}');
            }
            Nix::Apply(f, args) => {
                f.write(out, indent);
                for a in args {
                    out.push(' ');
                    if a.is_atom() {
                        a.write(out, indent);
                    } else {
                        out.push('(');
                        a.write(out, indent);
                        out.push(')');
                    }
                }
            }
        }
    }
}

fn pad(out: &mut String, indent: usize) {
    for _ in 0..indent {
        out.push_str("  ");
    }
}

/// A `"…"` literal whose value is exactly `s`.
pub fn string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    write_string(s, &mut out);
    out
}

/// [`string`], appended to `out`.
fn write_string(s: &str, out: &mut String) {
    out.reserve(s.len() + 2);
    out.push('"');
    let mut rest = s;
    // Runs without a byte to escape are copied whole.
    while let Some(n) = rest
        .bytes()
        .position(|b| matches!(b, b'"' | b'\\' | b'$' | b'\n' | b'\r' | b'\t'))
    {
        out.push_str(&rest[..n]);
        out.push_str(match rest.as_bytes()[n] {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'$' => "\\$",
            b'\n' => "\\n",
            b'\r' => "\\r",
            _ => "\\t",
        });
        rest = &rest[n + 1..];
    }
    out.push_str(rest);
    out.push('"');
}

const KEYWORDS: &[&str] = &[
    "if", "then", "else", "assert", "with", "let", "in", "rec", "inherit", "or",
];

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    (first.is_ascii_alphabetic() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '\'' | '-'))
        && !KEYWORDS.contains(&s)
}

/// An attribute name: bare when it is an identifier, else a string.
pub fn attr_name(s: &str) -> String {
    if is_identifier(s) {
        s.to_string()
    } else {
        string(s)
    }
}

/// A `''…''` literal whose value is exactly `text`, with its lines indented
/// `indent` levels, or `None` when the indented form cannot carry `text`
/// exactly (Nix strips the common indentation of every line, drops the
/// first line break, and cannot hold a carriage return there).
pub fn indented(text: &str, indent: usize) -> Option<String> {
    if !text.ends_with('\n') || text.contains('\r') || text.contains('\t') {
        return None;
    }
    let body = &text[..text.len() - 1];
    let lines: Vec<&str> = body.split('\n').collect();
    // Some non-blank line must start without a space, so the common
    // indentation Nix strips is exactly ours.
    if !lines
        .iter()
        .any(|l| !l.trim().is_empty() && !l.starts_with(' '))
    {
        return None;
    }
    // A line of only spaces would not count towards the common indentation
    // but would lose up to that many spaces.
    if lines.iter().any(|l| !l.is_empty() && l.trim().is_empty()) {
        return None;
    }
    let mut out = String::from("''\n");
    for line in &lines {
        if !line.is_empty() {
            pad(&mut out, indent);
            let mut rest = *line;
            while let Some(c) = rest.chars().next() {
                if rest.starts_with("''") {
                    out.push_str("'''");
                    rest = &rest[2..];
                    continue;
                }
                match c {
                    // Not `''$`: after a literal `'` that would read `'''`.
                    '$' => out.push_str("${\"$\"}"),
                    c => out.push(c),
                }
                rest = &rest[c.len_utf8()..];
            }
            // A line ending in `'` cannot run into the closing `''`: that
            // is always on its own line.
        }
        out.push('\n');
    }
    pad(&mut out, indent.saturating_sub(1));
    out.push_str("''");
    Some(out)
}

/// The check of an emitted file: [`check_lexical`] always, and the full
/// parse ([`check`]) too when `exhaustive` (a file rendered from a
/// template given with `--templates`), and for every file in debug builds,
/// so in every test.
pub fn check_emitted(text: &str, exhaustive: bool) -> Result<(), String> {
    check_lexical(text)?;
    if exhaustive || cfg!(debug_assertions) {
        check(text)?;
    }
    Ok(())
}

/// A linear check of `text` with rnix's tokenizer alone (no syntax tree):
/// every token is valid Nix, and every string, indented string,
/// interpolation, brace, bracket and parenthesis is closed by its own
/// closer. This is what an escaping bug breaks (an unterminated string, a
/// `${` that opens an interpolation); the grammar of what the built-in
/// templates lay out is the full parse's job, in the tests.
///
/// The text is first read by [`lexically_plain`], a byte scanner several
/// times faster than rnix's tokenizer that accepts only text it can vouch
/// for; anything else (an error, or Nix the scanner does not read: floats,
/// absolute and search paths, URIs, interpolated paths, `'` in
/// identifiers) is read by rnix, whose verdict and message are the answer.
pub fn check_lexical(text: &str) -> Result<(), String> {
    if lexically_plain(text) {
        return Ok(());
    }
    check_lexical_rnix(text)
}

/// What a [`lexically_plain`] scan has open.
#[derive(Clone, Copy, PartialEq)]
enum Open {
    Brace,
    Brack,
    Paren,
    Interpol,
    Str,
    Indented,
}

/// Classes of bytes for [`lexically_plain`], looked up in one load each:
/// a path's characters (`[A-Za-z0-9_.+-]`), an identifier's after its
/// first (`[A-Za-z0-9_-]`), and white space (` `, tab, line feed, carriage
/// return).
const PATH: u8 = 1;
const IDENT: u8 = 2;
const SPACE: u8 = 4;
static CLASS: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let c = i as u8;
        let alnum = c.is_ascii_alphanumeric();
        if alnum || matches!(c, b'_' | b'.' | b'+' | b'-') {
            table[i] |= PATH;
        }
        if alnum || matches!(c, b'_' | b'-') {
            table[i] |= IDENT;
        }
        if matches!(c, b' ' | b'\t' | b'\n' | b'\r') {
            table[i] |= SPACE;
        }
        i += 1;
    }
    table
};

/// Whether `text` is certainly lexically sound by [`check_lexical_rnix`]'s
/// rules: `true` only when every token is one whose reading by rnix's
/// tokenizer (0.15) is mirrored here and every opener is closed by its own
/// closer. `false` means "not known", never "broken": the tests check
/// that rnix accepts whatever this accepts.
fn lexically_plain(text: &str) -> bool {
    let b = text.as_bytes();
    let at = |i: usize| b.get(i).copied();
    let path_char = |c: u8| CLASS[usize::from(c)] & PATH != 0;
    let space = |c: u8| CLASS[usize::from(c)] & SPACE != 0;
    let mut open: Vec<Open> = Vec::new();
    let mut i = 0usize;
    // The end of the current run of path characters (`/` excepted): rnix
    // decides whether a token starts a path or a URI from what follows the
    // run it starts in, and every token inside one run shares its end.
    let mut run_end = 0usize;
    loop {
        if let Some(&Open::Str | &Open::Indented) = open.last() {
            // A "…" body: a backslash escapes the next byte. An
            // indented body: two quotes then a quote, a dollar or a
            // backslash and a byte are escapes; two quotes otherwise
            // close it. In both, `$$` is two literal dollars and `${`
            // opens an interpolation (rnix's reading).
            let indented = open.last() == Some(&Open::Indented);
            loop {
                let next = if indented {
                    memchr::memchr2(b'\'', b'$', &b[i..])
                } else {
                    memchr::memchr3(b'"', b'\\', b'$', &b[i..])
                };
                match next {
                    Some(n) => i += n,
                    None => return false,
                }
                match b[i] {
                    b'$' => match at(i + 1) {
                        Some(b'$') => i += 2,
                        Some(b'{') => {
                            i += 2;
                            open.push(Open::Interpol);
                            break;
                        }
                        _ => i += 1,
                    },
                    b'"' => {
                        i += 1;
                        open.pop();
                        break;
                    }
                    b'\\' => {
                        if i + 1 >= b.len() {
                            return false;
                        }
                        i += 2;
                    }
                    // A quote in an indented body.
                    _ => match (at(i + 1), at(i + 2)) {
                        (None, _) => return false,
                        (Some(b'\''), Some(b'\'' | b'$')) => i += 3,
                        (Some(b'\''), Some(b'\\')) => {
                            if i + 3 >= b.len() {
                                return false;
                            }
                            i += 4;
                        }
                        (Some(b'\''), _) => {
                            i += 2;
                            open.pop();
                            break;
                        }
                        _ => i += 1,
                    },
                }
            }
            continue;
        }
        let Some(c) = at(i) else {
            return open.is_empty();
        };
        match c {
            c if space(c) => i += b[i..].iter().take_while(|&&c| space(c)).count(),
            b'#' => match memchr::memchr(b'\n', &b[i..]) {
                Some(n) => i += n,
                None => i = b.len(),
            },
            b'/' => match at(i + 1) {
                Some(b'/') => i += 2,
                Some(b'*') => match text[i + 2..].find("*/") {
                    Some(n) => i += n + 4,
                    None => return false,
                },
                _ => return false,
            },
            b'.' if b[i..].starts_with(b"...") => i += 3,
            c if path_char(c) => {
                if run_end <= i {
                    run_end = i + b[i..].iter().take_while(|&&c| path_char(c)).count();
                    match at(run_end) {
                        Some(b'>') => return false,
                        // `name:` then anything a URI may hold is a URI.
                        Some(b':')
                            if at(run_end + 1)
                                .is_some_and(|c| path_char(c) || b"/%?:@&=$,!~*'".contains(&c)) =>
                        {
                            return false;
                        }
                        Some(b'/') => match at(run_end + 1) {
                            Some(b'/' | b'*') => {}
                            None => return false,
                            Some(c) if space(c) => return false,
                            Some(_) => {
                                // A relative path: path characters and `/`,
                                // neither ending in `/` nor holding `//`,
                                // and not interpolated.
                                let end = i + b[i..]
                                    .iter()
                                    .take_while(|&&c| path_char(c) || c == b'/')
                                    .count();
                                let path = &b[i..end];
                                if path.ends_with(b"/")
                                    || path.windows(2).any(|w| w == b"//")
                                    || at(end) == Some(b'$')
                                {
                                    return false;
                                }
                                i = end;
                                continue;
                            }
                        },
                        _ => {}
                    }
                }
                match c {
                    b'a'..=b'z' | b'A'..=b'Z' | b'_' => {
                        i += b[i..]
                            .iter()
                            .take_while(|&&c| CLASS[usize::from(c)] & IDENT != 0)
                            .count();
                        if at(i) == Some(b'\'') {
                            return false;
                        }
                    }
                    b'0'..=b'9' => {
                        i += b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
                        if at(i) == Some(b'.') {
                            return false;
                        }
                    }
                    b'.' => {
                        if at(i + 1).is_some_and(|c| c.is_ascii_digit()) {
                            return false;
                        }
                        i += 1;
                    }
                    // `+`, `++`, `-` or `->`, one byte at a time.
                    _ => i += 1,
                }
            }
            b'=' | b'!' | b'@' | b':' | b',' | b'?' | b';' | b'*' | b'>' => i += 1,
            b'&' | b'|' => {
                if at(i + 1) != Some(c) {
                    return false;
                }
                i += 2;
            }
            b'{' | b'[' | b'(' => {
                open.push(match c {
                    b'{' => Open::Brace,
                    b'[' => Open::Brack,
                    _ => Open::Paren,
                });
                i += 1;
            }
            b'}' | b']' | b')' => {
                let want = match (c, open.last()) {
                    (b'}', Some(Open::Interpol)) => Open::Interpol,
                    (b'}', _) => Open::Brace,
                    (b']', _) => Open::Brack,
                    _ => Open::Paren,
                };
                if open.pop() != Some(want) {
                    return false;
                }
                i += 1;
            }
            b'$' if at(i + 1) == Some(b'{') => {
                open.push(Open::Interpol);
                i += 2;
            }
            b'"' => {
                open.push(Open::Str);
                i += 1;
            }
            b'\'' if at(i + 1) == Some(b'\'') => {
                open.push(Open::Indented);
                i += 2;
            }
            _ => return false,
        }
    }
}

/// [`check_lexical`] by rnix's tokenizer alone.
fn check_lexical_rnix(text: &str) -> Result<(), String> {
    use rnix::SyntaxKind::*;
    let mut open: Vec<rnix::SyntaxKind> = Vec::new();
    let mut at = 0usize;
    for (kind, token) in rnix::tokenize(text) {
        let closes = match kind {
            TOKEN_ERROR => {
                return Err(format!("invalid token {token:?} at byte {at}"));
            }
            TOKEN_L_BRACE | TOKEN_L_BRACK | TOKEN_L_PAREN | TOKEN_INTERPOL_START
            | TOKEN_STRING_START => {
                open.push(kind);
                None
            }
            TOKEN_R_BRACE => Some(TOKEN_L_BRACE),
            TOKEN_R_BRACK => Some(TOKEN_L_BRACK),
            TOKEN_R_PAREN => Some(TOKEN_L_PAREN),
            TOKEN_INTERPOL_END => Some(TOKEN_INTERPOL_START),
            TOKEN_STRING_END => Some(TOKEN_STRING_START),
            _ => None,
        };
        if let Some(opener) = closes
            && open.pop() != Some(opener)
        {
            return Err(format!("unexpected {token:?} at byte {at}"));
        }
        at += token.len();
    }
    if at != text.len() {
        return Err(format!("unreadable text at byte {at}"));
    }
    match open.last() {
        None => Ok(()),
        Some(k) => Err(format!("unclosed {k:?} at the end of the file")),
    }
}

/// Parses `text` with rnix; `Err` lists every syntax error.
pub fn check(text: &str) -> Result<(), String> {
    let parse = rnix::Root::parse(text);
    let errors = parse.errors();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The byte classes are the predicates the scanner spelt out before.
    #[test]
    fn byte_classes_are_the_scanners_predicates() {
        for c in 0..=255u8 {
            let class = CLASS[usize::from(c)];
            let alnum = c.is_ascii_alphanumeric();
            assert_eq!(
                class & PATH != 0,
                alnum || matches!(c, b'_' | b'.' | b'+' | b'-'),
                "{c}"
            );
            assert_eq!(class & IDENT != 0, alnum || matches!(c, b'_' | b'-'), "{c}");
            assert_eq!(
                class & SPACE != 0,
                matches!(c, b' ' | b'\t' | b'\n' | b'\r'),
                "{c}"
            );
        }
    }
    use proptest::prelude::*;

    #[test]
    fn strings_escape_backslash_quote_and_every_dollar() {
        assert_eq!(string(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(string("${x} $${y} $"), r#""\${x} \$\${y} \$""#);
        assert_eq!(string("l1\nl2\t\r"), r#""l1\nl2\t\r""#);
    }

    #[test]
    fn attribute_names_are_quoted_unless_identifiers() {
        assert_eq!(attr_name("caddy"), "caddy");
        assert_eq!(attr_name("my-app_2"), "my-app_2");
        assert_eq!(attr_name("caddy.container"), "\"caddy.container\"");
        assert_eq!(attr_name("in"), "\"in\"");
        assert_eq!(attr_name("2x"), "\"2x\"");
        assert_eq!(attr_name(""), "\"\"");
        assert_eq!(attr_name("${x}"), "\"\\${x}\"");
    }

    #[test]
    fn indented_strings_escape_quotes_and_dollars() {
        let t = indented("[Unit]\nA=''$x${y}\n\n  B\n", 1).unwrap();
        assert_eq!(t, "''\n  [Unit]\n  A='''${\"$\"}x${\"$\"}{y}\n\n    B\n''");
        assert!(indented("  all indented\n", 1).is_none());
        assert!(indented("no newline", 1).is_none());
        assert!(indented("a\n   \nb\n", 1).is_none());
    }

    #[test]
    fn the_lexical_check_finds_broken_strings_and_delimiters() {
        for ok in [
            r#"{ a = "x\"y"; b = [ 1 (f 2) ]; c = ''
  t '''x ''${y} ${z}
''; d = "${e}"; }"#,
            "[ ]",
        ] {
            check_lexical(ok).unwrap_or_else(|e| panic!("{ok:?}: {e}"));
            check(ok).unwrap();
        }
        for bad in [
            r#"{ a = "x; }"#,
            r#"{ a = "${b"; }"#,
            "{ a = [ 1 }",
            "{ a = ''x; }",
            "{ a = 1; ",
            "{ a = 1; } }",
            r#"{ a = "x" "; }"#,
        ] {
            assert!(check_lexical(bad).is_err(), "{bad:?} passed");
        }
    }

    #[test]
    fn rendered_expressions_parse() {
        let e = Nix::Attrs(vec![
            (vec!["a".into(), "b-c".into()], Nix::Int(-3)),
            (
                vec!["x.y".into()],
                Nix::List(vec![
                    Nix::str("${"),
                    Nix::apply("lib.mkForce", vec![Nix::Int(1)]),
                ]),
            ),
            (vec!["t".into()], Nix::Text("[Unit]\n$''\n".into())),
            (vec!["n".into()], Nix::Null),
        ]);
        check(&e.render()).unwrap();
        assert!(check("{ a = ; }").is_err());
    }

    /// Pieces of Nix text, lexically sound or not, that random texts for
    /// the scanner's agreement test are made of.
    const PIECES: &[&str] = &[
        " ", "\n", "\t", "\r", "\u{a0}", "#c\n", "/*", "*/", "{", "}", "[", "]", "(", ")", "${",
        "$", "$$", "\"", "''", "'", "'''", "''$", "''\\", "\\", "\\\"", "a", "a_b", "x-y", "in",
        "0", "12", ".", "...", "1.5", ".5", "1e3", "e", "/", "//", "./p", "a/b", "/abs", "~/h",
        "<n>", "<", ">", "->", ":", "a:b", "http://x", ";", "=", "==", "!", "!=", ",", "?", "@",
        "+", "++", "-", "*", "&", "&&", "|", "||", "|>", "<|", "%", "^", "`", "é", "x'", "\u{0}",
    ];

    /// The printable texts of the bytewise agreement test.
    const BYTEWISE: &str = "[ -~\n\t]{0,40}";

    /// The agreement tests are not vacuous: a fair share of the random
    /// texts they draw are ones the scanner vouches for (and so ones whose
    /// verdict rnix is asked to confirm).
    #[test]
    fn the_agreement_tests_draw_texts_the_scanner_vouches_for() {
        use proptest::strategy::{Strategy, ValueTree};
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        let pieces = proptest::collection::vec(proptest::sample::select(PIECES), 0..24);
        let bytes = proptest::string::string_regex(BYTEWISE).unwrap();
        let (mut from_pieces, mut from_bytes) = (0, 0);
        for _ in 0..2000 {
            let text = pieces.new_tree(&mut runner).unwrap().current().concat();
            from_pieces += usize::from(lexically_plain(&text));
            let text = bytes.new_tree(&mut runner).unwrap().current();
            from_bytes += usize::from(lexically_plain(&text));
        }
        assert!(from_pieces >= 60, "{from_pieces} of 2000 texts of pieces");
        assert!(from_bytes >= 60, "{from_bytes} of 2000 printable texts");
    }

    #[test]
    fn the_scanner_vouches_for_what_windlass_writes() {
        let e = Nix::Attrs(vec![
            (vec!["a".into(), "b-c".into()], Nix::Int(-3)),
            (
                vec!["x.y".into()],
                Nix::List(vec![Nix::str("${ $${ \\ \" ''"), Nix::Null]),
            ),
            (
                vec!["t".into()],
                Nix::Text("[Unit]\n$'' ${x} '''\n\\\n".into()),
            ),
        ]);
        for ok in [
            e.render(),
            "{ config, lib, ... }:\nlet\n  e = config.a.b;\nin\n{ imports = [ ./apps/x.nix ]; a = b // { c = 1; } ++ [ ]; }".into(),
            "# c\n/* d */ { a = \"${b}\"; c = ''\n  ${d} '''\n''; }".into(),
        ] {
            assert!(lexically_plain(&ok), "{ok}");
            check(&ok).unwrap();
        }
    }

    proptest! {
        // About one text in twelve is one the scanner vouches for.
        #![proptest_config(ProptestConfig::with_cases(4096))]

        /// Whatever the byte scanner accepts, rnix's tokenizer accepts: the
        /// scanner may only leave a text to rnix, never pass a broken one.
        #[test]
        fn the_scanner_accepts_nothing_rnix_refuses(
            parts in proptest::collection::vec(proptest::sample::select(PIECES), 0..24)
        ) {
            let text = parts.concat();
            prop_assert!(
                !lexically_plain(&text) || check_lexical_rnix(&text).is_ok(),
                "{text:?}"
            );
            prop_assert_eq!(check_lexical(&text).is_ok(), check_lexical_rnix(&text).is_ok());
        }

        #[test]
        fn the_scanner_accepts_nothing_rnix_refuses_bytewise(text in BYTEWISE) {
            prop_assert!(
                !lexically_plain(&text) || check_lexical_rnix(&text).is_ok(),
                "{text:?}"
            );
        }

    }

    proptest! {
        #[test]
        fn any_string_literal_parses(s in "\\PC*") {
            check(&string(&s)).unwrap();
            check_lexical(&string(&s)).unwrap();
            prop_assert!(lexically_plain(&string(&s)));
        }

        #[test]
        fn any_indented_literal_parses(s in "[ -~\n]{0,60}\n") {
            match indented(&s, 2) {
                Some(t) => {
                    check(&t).unwrap();
                    check_lexical(&t).unwrap();
                    prop_assert!(lexically_plain(&t));
                }
                // Only a text whose every non-blank line starts with a
                // space, or that has a line of spaces, is refused.
                None => prop_assert!(
                    !s.lines().any(|l| !l.trim().is_empty() && !l.starts_with(' '))
                        || s.lines().any(|l| !l.is_empty() && l.trim().is_empty()),
                    "{s:?}"
                ),
            }
        }
    }
}
