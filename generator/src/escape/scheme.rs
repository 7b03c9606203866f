//! Scheme (Guile) data for the Guix target: a small typed expression tree
//! and the one writer that turns it into text.
//!
//! Emitters build [`Datum`]s and never format a value into Scheme text by
//! hand, so a string can never close its own quotes or smuggle code. String
//! literals are written in the subset of Guile's syntax that reads the same
//! whatever the reader options: `\\`, `\"`, `\n`, `\t`, `\r`, and `\uHHHH` /
//! `\UHHHHHH` for every other control character and everything outside
//! ASCII. (Guile's `\xHH` escape is deliberately avoided: without the
//! `r6rs-hex-escapes` read option it takes exactly two digits and no `;`,
//! with it a `;` terminator is required, so one spelling cannot serve both.)
//! The output is therefore pure printable ASCII, independent of the locale
//! Guile reads it in.
//!
//! [`check_sexprs`] reads rendered text back (balanced lists, closed
//! strings, known escapes) so that a template override can never produce a
//! file Guile would refuse. [`read_string`] is the inverse of string
//! rendering, used to prove the escaping exact.

use std::fmt::Write as _;

/// A Scheme datum or expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Datum {
    /// An identifier; see [`Datum::sym`] for the characters allowed.
    Symbol(String),
    Str(String),
    Int(i64),
    Bool(bool),
    /// A Guile keyword, `#:name`.
    Keyword(String),
    List(Vec<Datum>),
    /// `'datum`
    Quote(Box<Datum>),
    /// `(car . cdr)`
    Pair(Box<Datum>, Box<Datum>),
    /// A G-expression, `#~datum` (Guix's `(guix gexp)` reader syntax).
    Gexp(Box<Datum>),
    /// `#$datum` inside a G-expression.
    Ungexp(Box<Datum>),
    /// A datum already laid out by [`Datum::pretty`] for `indent` (see
    /// [`Datum::laid`]), placed as it is: a large tree can be laid out a
    /// piece at a time and each piece's tree dropped.
    Laid {
        indent: usize,
        text: String,
    },
    /// `(string-append "line 1\n" "line 2\n" …)`: a text as one string
    /// per line, each with its line break, so that a long text reads line
    /// by line; laid out as that call would be, without a datum per line.
    Lines(String),
}

/// True for the identifiers windlass writes: an ASCII letter or one of
/// `%!$&*/:<=>?^_~` first, then letters, digits and `!$%&*/:<=>?^_~+-.@`.
/// Every such name reads back as the same symbol in Guile.
pub fn is_symbol(s: &str) -> bool {
    let mut chars = s.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    let special = |c: char| "!$%&*/:<=>?^_~".contains(c);
    (first.is_ascii_alphabetic() || special(first))
        && chars.all(|c| c.is_ascii_alphanumeric() || special(c) || "+-.@".contains(c))
}

impl Datum {
    /// A symbol. Callers pass names validated upstream (app and job names,
    /// fixed identifiers); anything else is a bug, so it panics rather than
    /// write a file that means something else.
    pub fn sym(s: &str) -> Datum {
        assert!(is_symbol(s), "not a plain Scheme symbol: {s:?}");
        Datum::Symbol(s.to_string())
    }

    pub fn str(s: &str) -> Datum {
        Datum::Str(s.to_string())
    }

    /// A keyword `#:name`; same rule as [`Datum::sym`].
    pub fn kw(s: &str) -> Datum {
        assert!(is_symbol(s), "not a plain Scheme keyword: {s:?}");
        Datum::Keyword(s.to_string())
    }

    pub fn list(items: Vec<Datum>) -> Datum {
        Datum::List(items)
    }

    /// `(head args…)`: a call or special form.
    pub fn call(head: &str, args: Vec<Datum>) -> Datum {
        let mut items = Vec::with_capacity(args.len() + 1);
        items.push(Datum::sym(head));
        items.extend(args);
        Datum::List(items)
    }

    pub fn quote(d: Datum) -> Datum {
        Datum::Quote(Box::new(d))
    }

    pub fn pair(a: Datum, b: Datum) -> Datum {
        Datum::Pair(Box::new(a), Box::new(b))
    }

    pub fn gexp(d: Datum) -> Datum {
        Datum::Gexp(Box::new(d))
    }

    pub fn ungexp(d: Datum) -> Datum {
        Datum::Ungexp(Box::new(d))
    }

    /// `self` laid out now for `indent`, the column it will be placed at
    /// in the enclosing layout: the text is what [`Datum::pretty`] of the
    /// enclosing datum would write for it, without keeping the tree.
    pub fn laid(&self, indent: usize) -> Datum {
        // A piece is small: grown as it is written, its buffer costs less
        // than a walk of the tree for its size.
        let mut text = String::new();
        self.write_pretty(indent, &mut text);
        Datum::Laid { indent, text }
    }

    /// The datum on one line.
    pub fn flat(&self) -> String {
        let mut out = String::new();
        self.write_flat(&mut out);
        out
    }

    fn write_flat(&self, out: &mut String) {
        match self {
            Datum::Symbol(s) => out.push_str(s),
            Datum::Str(s) => write_string(s, out),
            Datum::Int(i) => {
                let _ = write!(out, "{i}");
            }
            Datum::Bool(b) => out.push_str(if *b { "#t" } else { "#f" }),
            Datum::Keyword(k) => {
                out.push_str("#:");
                out.push_str(k);
            }
            Datum::List(items) => {
                out.push('(');
                for (i, d) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(' ');
                    }
                    d.write_flat(out);
                }
                out.push(')');
            }
            Datum::Quote(d) => {
                out.push('\'');
                d.write_flat(out);
            }
            Datum::Pair(a, b) => {
                out.push('(');
                a.write_flat(out);
                out.push_str(" . ");
                b.write_flat(out);
                out.push(')');
            }
            Datum::Gexp(d) => {
                out.push_str("#~");
                d.write_flat(out);
            }
            Datum::Ungexp(d) => {
                out.push_str("#$");
                d.write_flat(out);
            }
            // Only a one-line layout is flat (see count_flat).
            Datum::Laid { text, .. } => out.push_str(text),
            Datum::Lines(text) => {
                out.push('(');
                out.push_str(STRING_APPEND);
                for line in text.split_inclusive('\n') {
                    out.push(' ');
                    write_string(line, out);
                }
                out.push(')');
            }
        }
    }

    /// The datum laid out for a reader, as if it started at column
    /// `indent`: a form that fits in [`WIDTH`] columns stays on one line,
    /// a longer one puts each argument on its own line, two columns in. A
    /// keyword and its value always share a line. Continuation lines are
    /// indented absolutely, so the caller places the first line at
    /// `indent`.
    pub fn pretty(&self, indent: usize) -> String {
        let mut out = String::with_capacity(self.size_hint(indent));
        self.write_pretty(indent, &mut out);
        out
    }

    /// About the length of [`Datum::pretty`]'s text, for its buffer: a
    /// large text grown by doubling is copied each time and, at its
    /// largest, held twice. Laid-out texts count as they are, a
    /// [`Datum::Lines`] text with each line's indentation, quotes and
    /// escapes; elsewhere each element is counted on a line of its own
    /// (never short for laid pieces and ASCII `Lines`, at most twice as
    /// long: tested).
    pub fn size_hint(&self, indent: usize) -> usize {
        match self {
            Datum::Symbol(s) | Datum::Keyword(s) => s.len() + 2,
            Datum::Str(s) => s.len() + 2,
            Datum::Int(_) | Datum::Bool(_) => 20,
            Datum::List(items) => {
                2 + items
                    .iter()
                    .map(|d| 1 + indent + 2 + d.size_hint(indent + 2))
                    .sum::<usize>()
            }
            Datum::Quote(d) | Datum::Gexp(d) | Datum::Ungexp(d) => 2 + d.size_hint(indent + 2),
            Datum::Pair(a, b) => 5 + a.size_hint(indent) + b.size_hint(indent),
            Datum::Laid { text, .. } => text.len(),
            Datum::Lines(text) => {
                let (mut lines, mut escaped) = (1, 0);
                for b in text.bytes() {
                    match b {
                        b'\n' => lines += 1,
                        b'"' | b'\\' => escaped += 1,
                        _ => {}
                    }
                }
                STRING_APPEND.len() + 2 + text.len() + escaped + lines * (1 + indent + 2 + 3)
            }
        }
    }

    /// Whether [`Datum::flat`] is at most `width` bytes. Counts without
    /// writing and stops at the limit, so deciding the layout of each
    /// level costs at most [`WIDTH`], whatever the size of the datum.
    fn fits(&self, width: Option<usize>) -> bool {
        let Some(mut left) = width else {
            return false;
        };
        self.count_flat(&mut left)
    }

    /// Takes the length of the flat text from `left`; false once it does
    /// not fit.
    fn count_flat(&self, left: &mut usize) -> bool {
        fn take(left: &mut usize, n: usize) -> bool {
            match left.checked_sub(n) {
                Some(l) => {
                    *left = l;
                    true
                }
                None => false,
            }
        }
        match self {
            Datum::Symbol(s) => take(left, s.len()),
            Datum::Str(s) => take(left, 2) && s.chars().all(|c| take(left, escaped_len(c))),
            Datum::Int(i) => {
                let mut n = usize::from(*i < 0);
                let mut v = i.unsigned_abs();
                loop {
                    n += 1;
                    v /= 10;
                    if v == 0 {
                        break;
                    }
                }
                take(left, n)
            }
            Datum::Bool(_) => take(left, 2),
            Datum::Keyword(k) => take(left, 2 + k.len()),
            Datum::List(items) => {
                take(left, 2)
                    && items
                        .iter()
                        .enumerate()
                        .all(|(i, d)| (i == 0 || take(left, 1)) && d.count_flat(left))
            }
            Datum::Quote(d) => take(left, 1) && d.count_flat(left),
            Datum::Pair(a, b) => take(left, 5) && a.count_flat(left) && b.count_flat(left),
            Datum::Gexp(d) | Datum::Ungexp(d) => take(left, 2) && d.count_flat(left),
            Datum::Laid { text, .. } => !text.contains('\n') && take(left, text.len()),
            Datum::Lines(text) => {
                take(left, 2 + STRING_APPEND.len())
                    && text.split_inclusive('\n').all(|line| {
                        take(left, 3) && line.chars().all(|c| take(left, escaped_len(c)))
                    })
            }
        }
    }

    /// [`Datum::pretty`]'s text written at the end of `out`, which must end
    /// at column `indent`.
    pub fn write_pretty(&self, indent: usize, out: &mut String) {
        if self.fits(WIDTH.checked_sub(indent)) {
            self.write_flat(out);
            return;
        }
        match self {
            // A call or form: the head, then one argument a line.
            Datum::List(items) if matches!(items.first(), Some(Datum::Symbol(_))) => {
                out.push('(');
                let (head, rest) = items.split_at(1);
                head[0].write_pretty(indent + 1, out);
                let inner = indent + 2;
                let mut i = 0;
                while i < rest.len() {
                    newline(out, inner);
                    if let (Datum::Keyword(k), Some(value)) = (&rest[i], rest.get(i + 1)) {
                        // `#:key value` on one line when it fits, else the
                        // value on the next line, level with its keyword.
                        out.push_str("#:");
                        out.push_str(k);
                        let col = inner + 3 + k.len();
                        if !value.is_compound() || value.fits(WIDTH.checked_sub(col)) {
                            out.push(' ');
                            value.write_flat(out);
                        } else {
                            newline(out, inner);
                            value.write_pretty(inner, out);
                        }
                        i += 2;
                    } else {
                        rest[i].write_pretty(inner, out);
                        i += 1;
                    }
                }
                out.push(')');
            }
            // Data: one element a line, aligned.
            Datum::List(items) if !items.is_empty() => {
                out.push('(');
                for (i, d) in items.iter().enumerate() {
                    if i > 0 {
                        newline(out, indent + 1);
                    }
                    d.write_pretty(indent + 1, out);
                }
                out.push(')');
            }
            Datum::Quote(d) => {
                out.push('\'');
                d.write_pretty(indent + 1, out);
            }
            Datum::Gexp(d) => {
                out.push_str("#~");
                d.write_pretty(indent + 2, out);
            }
            Datum::Ungexp(d) => {
                out.push_str("#$");
                d.write_pretty(indent + 2, out);
            }
            Datum::Laid { indent: at, text } => {
                // Laid out for another column (a caller's mistake): each
                // continuation line moves by the difference.
                debug_assert_eq!(indent, *at, "laid out for another column");
                if indent == *at {
                    out.push_str(text);
                } else {
                    for (i, line) in text.split('\n').enumerate() {
                        if i > 0 {
                            let trimmed = line.trim_start_matches(' ');
                            let col = (line.len() - trimmed.len() + indent).saturating_sub(*at);
                            newline(out, col);
                            out.push_str(trimmed);
                        } else {
                            out.push_str(line);
                        }
                    }
                }
            }
            Datum::Lines(text) => {
                out.push('(');
                out.push_str(STRING_APPEND);
                for line in text.split_inclusive('\n') {
                    newline(out, indent + 2);
                    write_string(line, out);
                }
                out.push(')');
            }
            // Atoms and pairs stay whole, however long.
            _ => self.write_flat(out),
        }
    }
}

fn newline(out: &mut String, indent: usize) {
    const SPACES: &str = "                                                                ";
    out.push('\n');
    let mut left = indent;
    while left > 0 {
        let n = left.min(SPACES.len());
        out.push_str(&SPACES[..n]);
        left -= n;
    }
}

impl Datum {
    /// Lists and prefixed lists, the data the layout may break.
    fn is_compound(&self) -> bool {
        match self {
            Datum::List(items) => !items.is_empty(),
            Datum::Quote(d) | Datum::Gexp(d) | Datum::Ungexp(d) => d.is_compound(),
            Datum::Laid { text, .. } => text.contains('\n'),
            Datum::Lines(_) => true,
            _ => false,
        }
    }
}

const STRING_APPEND: &str = "string-append";

/// The column width the layout aims for.
pub const WIDTH: usize = 79;

/// A Scheme string literal for `s`: printable ASCII only (see the module
/// documentation for the escapes).
pub fn string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    write_string(s, &mut out);
    out
}

/// The length of `c` as [`string`] writes it.
fn escaped_len(c: char) -> usize {
    match c {
        '"' | '\\' | '\n' | '\t' | '\r' => 2,
        ' '..='~' => 1,
        c if (c as u32) <= 0xFFFF => 6,
        _ => 8,
    }
}

/// [`string`], appended to `out`.
fn write_string(s: &str, out: &mut String) {
    out.push('"');
    // Runs of printable ASCII other than `"` and `\` are copied whole.
    let plain = |b: u8| (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\';
    let mut rest = s;
    while !rest.is_empty() {
        let n = rest.bytes().take_while(|&b| plain(b)).count();
        out.push_str(&rest[..n]);
        rest = &rest[n..];
        let Some(c) = rest.chars().next() else {
            break;
        };
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) <= 0xFFFF => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => {
                let _ = write!(out, "\\U{:06x}", c as u32);
            }
        }
        rest = &rest[c.len_utf8()..];
    }
    out.push('"');
}

/// Reads one Guile string literal (the whole of `lit`) the way Guile's
/// default reader does, for the escapes `string` writes and the other
/// single-character ones Guile knows. Returns None for anything else.
pub fn read_string(lit: &str) -> Option<String> {
    let body = lit.strip_prefix('"')?;
    match read_string_body(body)? {
        (s, Some("")) => Some(s),
        _ => None,
    }
}

/// Reads a string body (after its opening `"`) up to the closing `"`.
/// Returns the value and what follows the closing quote (None when the text
/// ends first), or None for an escape Guile does not read.
fn read_string_body(body: &str) -> Option<(String, Option<&str>)> {
    let mut out = String::new();
    let end = scan_string_body(body, Some(&mut out))?;
    Some((out, end.map(|i| &body[i..])))
}

/// Reads a string's body up to its closing `"`: where the text after it
/// starts (`None` when the string is never closed), decoding into `out`
/// when given; `None` for an escape Guile does not read.
fn scan_string_body(body: &str, mut out: Option<&mut String>) -> Option<Option<usize>> {
    let bytes = body.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        // Plain text up to the next quote or backslash, copied at once.
        let run = bytes[i..]
            .iter()
            .position(|&b| b == b'"' || b == b'\\')
            .unwrap_or(bytes.len() - i);
        if let Some(o) = out.as_deref_mut() {
            o.push_str(&body[i..i + run]);
        }
        i += run;
        if i == bytes.len() {
            break;
        }
        if bytes[i] == b'"' {
            return Some(Some(i + 1));
        }
        // A backslash: ASCII, so `i + 1` is a character boundary.
        let mut it = body[i + 1..].chars();
        let Some(e) = it.next() else {
            return Some(None);
        };
        let mut used = 1 + e.len_utf8();
        let c = match e {
            '\\' => '\\',
            '"' => '"',
            'n' => '\n',
            't' => '\t',
            'r' => '\r',
            'a' => '\x07',
            'b' => '\x08',
            'f' => '\x0c',
            'v' => '\x0b',
            '0' => '\0',
            'u' | 'U' | 'x' => {
                let n = match e {
                    'u' => 4,
                    'U' => 6,
                    _ => 2,
                };
                let mut hex = String::new();
                for _ in 0..n {
                    let h = it.next()?;
                    used += h.len_utf8();
                    hex.push(h);
                }
                if !hex.chars().all(|h| h.is_ascii_hexdigit()) {
                    return None;
                }
                char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?
            }
            _ => return None,
        };
        if let Some(o) = out.as_deref_mut() {
            o.push(c);
        }
        i += used;
    }
    Some(None)
}

/// Checks that `text` is a well-formed sequence of Guile S-expressions
/// (with Guix's `#~`, `#$`, `#$@`, `#+` reader syntax): lists balanced,
/// strings closed and escaped the way Guile reads them, no stray `)`.
/// Returns the number of top-level data.
pub fn check_sexprs(text: &str) -> Result<usize, String> {
    let mut r = Reader { s: text, pos: 0 };
    let mut count = 0;
    loop {
        r.skip_atmosphere()?;
        if r.pos == r.s.len() {
            return Ok(count);
        }
        r.datum()?;
        count += 1;
    }
}

struct Reader<'a> {
    s: &'a str,
    pos: usize,
}

impl Reader<'_> {
    fn peek(&self) -> Option<char> {
        self.s[self.pos..].chars().next()
    }

    fn line_col(&self) -> String {
        self.line_col_at(self.pos)
    }

    /// Computed only for an error message: the text is scanned from the top.
    fn line_col_at(&self, pos: usize) -> String {
        let before = &self.s[..pos];
        let line = before.matches('\n').count() + 1;
        let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
        format!("line {line}, column {col}")
    }

    fn err<T>(&self, what: &str) -> Result<T, String> {
        Err(format!("{what} at {}", self.line_col()))
    }

    /// White space and comments (`;`, `#|…|#`, `#;datum`).
    fn skip_atmosphere(&mut self) -> Result<(), String> {
        loop {
            let rest = &self.s[self.pos..];
            // Runs of ASCII white space (indentation) at once.
            let blank = rest
                .bytes()
                .take_while(|b| matches!(b, b' ' | b'\n' | b'\t' | b'\r'))
                .count();
            if blank > 0 {
                self.pos += blank;
            } else if let Some(c) = rest.chars().next().filter(|c| c.is_whitespace()) {
                self.pos += c.len_utf8();
            } else if rest.starts_with(';') {
                self.pos += rest.find('\n').unwrap_or(rest.len());
            } else if rest.starts_with("#|") {
                match rest.find("|#") {
                    Some(end) => self.pos += end + 2,
                    None => return self.err("unterminated block comment"),
                }
            } else if rest.starts_with("#;") {
                self.pos += 2;
                self.skip_atmosphere()?;
                self.datum()?;
            } else {
                return Ok(());
            }
        }
    }

    fn datum(&mut self) -> Result<(), String> {
        let rest = &self.s[self.pos..];
        let Some(c) = rest.chars().next() else {
            return self.err("expected a datum, found the end of the text");
        };
        match c {
            '(' | '[' => {
                let close = if c == '(' { ')' } else { ']' };
                let start = self.pos;
                self.pos += 1;
                loop {
                    self.skip_atmosphere()?;
                    match self.peek() {
                        None => {
                            return Err(format!(
                                "list opened at {} is never closed (end of the text)",
                                self.line_col_at(start)
                            ));
                        }
                        Some(p) if p == close => {
                            self.pos += 1;
                            return Ok(());
                        }
                        Some(')') | Some(']') => {
                            return self.err(&format!(
                                "mismatched closing bracket for the list opened at {}",
                                self.line_col_at(start)
                            ));
                        }
                        Some('.') if self.delimited_after(1) => {
                            self.pos += 1;
                            self.skip_atmosphere()?;
                            self.datum()?;
                        }
                        Some(_) => self.datum()?,
                    }
                }
            }
            ')' | ']' => self.err("unexpected closing bracket"),
            '"' => {
                let start = self.pos;
                match scan_string_body(&rest[1..], None) {
                    Some(Some(end)) => {
                        self.pos += 1 + end;
                        Ok(())
                    }
                    Some(None) => Err(format!(
                        "string opened at {} is never closed",
                        self.line_col_at(start)
                    )),
                    None => Err(format!(
                        "string opened at {} has an escape Guile does not read",
                        self.line_col_at(start)
                    )),
                }
            }
            '\'' | '`' => {
                self.pos += 1;
                self.skip_atmosphere()?;
                self.datum()
            }
            ',' => {
                self.pos += if rest.starts_with(",@") { 2 } else { 1 };
                self.skip_atmosphere()?;
                self.datum()
            }
            '#' => self.hash(),
            _ => self.atom(),
        }
    }

    /// True when the character `off` bytes ahead ends a token.
    fn delimited_after(&self, off: usize) -> bool {
        self.s[self.pos + off..]
            .chars()
            .next()
            .is_none_or(|c| c.is_whitespace() || "()[]\";".contains(c))
    }

    fn hash(&mut self) -> Result<(), String> {
        let rest = &self.s[self.pos..];
        for prefix in ["#~", "#$@", "#$", "#+@", "#+", "#'", "#`", "#,@", "#,"] {
            if rest.starts_with(prefix) {
                self.pos += prefix.len();
                self.skip_atmosphere()?;
                return self.datum();
            }
        }
        if rest.starts_with("#(") {
            self.pos += 1;
            return self.datum();
        }
        if let Some(ch) = rest.strip_prefix("#\\") {
            // A character: `#\x`, `#\space`, `#\x41`…
            let first = ch.chars().next();
            let Some(first) = first else {
                return self.err("`#\\` at the end of the text");
            };
            self.pos += 2 + first.len_utf8();
            while self.peek().is_some_and(|c| c.is_ascii_alphanumeric()) {
                self.pos += 1;
            }
            return Ok(());
        }
        // #t #f #true #false #:keyword #nil…
        self.atom()
    }

    fn atom(&mut self) -> Result<(), String> {
        let start = self.pos;
        // ASCII symbol characters at once; anything else one by one below.
        self.pos += self.s[self.pos..]
            .bytes()
            .take_while(|b| {
                b.is_ascii_graphic()
                    && !matches!(
                        b,
                        b'(' | b')' | b'[' | b']' | b'"' | b';' | b'\'' | b'`' | b',' | b'|'
                    )
            })
            .count();
        while let Some(c) = self.peek() {
            if c.is_whitespace() || "()[]\";'`,".contains(c) {
                break;
            }
            if c == '|' {
                return self.err("`|` symbols are not written by windlass");
            }
            self.pos += c.len_utf8();
        }
        if self.pos == start {
            return self.err("unexpected character");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Large texts are laid out into a buffer made big enough at once:
    /// pieces already laid out and `Lines` texts (quotes and backslashes
    /// escaped) are reckoned within a factor of two, never short.
    #[test]
    fn the_size_hint_covers_laid_pieces_and_lines_without_growing() {
        let json = "{\n  \"apps\": [\n    {\"name\": \"a\\\\b\"}\n  ]\n}\n".repeat(300);
        let piece = Datum::call(
            "service",
            vec![Datum::sym("x"), Datum::str(&"long words ".repeat(20))],
        );
        let laid: Vec<Datum> = (0..200).map(|_| piece.laid(6)).collect();
        for (d, indent) in [
            (Datum::Lines(json), 4),
            (Datum::call("list", laid), 4),
            (
                Datum::call(
                    "plain-file",
                    vec![Datum::str("f"), Datum::Lines("a\n".repeat(999))],
                ),
                8,
            ),
        ] {
            let text = d.pretty(indent);
            let hint = d.size_hint(indent);
            assert!(text.len() <= hint, "{} > {hint}", text.len());
            assert!(hint <= 2 * text.len(), "{hint} > 2 × {}", text.len());
        }
    }

    #[test]
    fn strings_escape_quotes_backslashes_and_controls() {
        assert_eq!(string("plain"), r#""plain""#);
        assert_eq!(string("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(string("l1\nl2\tx\r"), r#""l1\nl2\tx\r""#);
        assert_eq!(string("\u{1}\u{7f}"), r#""\u0001\u007f""#);
        assert_eq!(string("é中😀"), r#""\u00e9\u4e2d\U01f600""#);
        assert_eq!(string("$HOME ${X} %n ;#"), r#""$HOME ${X} %n ;#""#);
    }

    #[test]
    fn the_reader_refuses_what_guile_would_refuse() {
        assert_eq!(check_sexprs("(a (b \"c\") 'd #~(e #$f #$@g))"), Ok(1));
        assert_eq!(
            check_sexprs("; c\n(a) #| x |# (b . c) #;(skip) #:k #t"),
            Ok(4)
        );
        assert_eq!(check_sexprs("(a \"\\\")\")"), Ok(1));
        assert_eq!(check_sexprs(""), Ok(0));
        for bad in [
            "(a",
            "a)",
            "(a]",
            "\"open",
            "(a \"b)",
            "(\"\\q\")",
            "#| never",
            "(a #~)",
            "'",
        ] {
            assert!(check_sexprs(bad).is_err(), "{bad:?} should be refused");
        }
        let e = check_sexprs("(define x\n  (list 1 2)").unwrap_err();
        assert!(e.contains("line 1, column 1"), "{e}");
    }

    #[test]
    fn layout_keeps_short_forms_flat_and_keywords_with_values() {
        let d = Datum::call("f", vec![Datum::kw("a"), Datum::Int(1)]);
        assert_eq!(d.pretty(0), "(f #:a 1)");
        let long = Datum::call(
            "command",
            vec![
                Datum::quote(Datum::list(vec![Datum::str(&"x".repeat(70))])),
                Datum::kw("user"),
                Datum::str("oci-container"),
            ],
        );
        let text = long.pretty(4);
        assert_eq!(
            text,
            format!(
                "(command\n      '(\"{}\")\n      #:user \"oci-container\")",
                "x".repeat(70)
            )
        );
        assert_eq!(check_sexprs(&text), Ok(1));
    }

    #[test]
    #[should_panic(expected = "not a plain Scheme symbol")]
    fn symbols_are_never_escaped_only_checked() {
        Datum::sym("a b");
    }

    #[test]
    fn symbol_rule() {
        for ok in [
            "lnd",
            "%windlass-app-services",
            "auto-start?",
            "a->b",
            "x.y@z",
        ] {
            assert!(is_symbol(ok), "{ok}");
        }
        for bad in ["", "1a", "a b", "a(b", "#t", "-x", "a\"", "é", ".a"] {
            assert!(!is_symbol(bad), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn arbitrary_strings_round_trip(s in any::<String>()) {
            let lit = string(&s);
            prop_assert!(lit.bytes().all(|b| (b' '..=b'~').contains(&b)));
            prop_assert_eq!(read_string(&lit), Some(s.clone()));
            prop_assert_eq!(check_sexprs(&lit), Ok(1));
            let mut left = usize::MAX;
            prop_assert!(Datum::str(&s).count_flat(&mut left));
            prop_assert_eq!(usize::MAX - left, lit.len());
        }

        /// `Datum::Lines` is laid out exactly as the `string-append` call of
        /// one string per line, alone and inside a form, flat or broken.
        #[test]
        fn lines_are_laid_out_as_the_string_append_call(
            text in "([a-z \"\\\\é\t]{0,12}\n?){0,8}",
            indent in 0usize..90,
        ) {
            let call = Datum::call(
                "string-append",
                text.split_inclusive('\n').map(Datum::str).collect(),
            );
            let lines = Datum::Lines(text.clone());
            prop_assert_eq!(lines.flat(), call.flat());
            prop_assert_eq!(lines.pretty(indent), call.pretty(indent));
            let mut a = usize::MAX;
            let mut b = usize::MAX;
            prop_assert_eq!(lines.count_flat(&mut a), call.count_flat(&mut b));
            prop_assert_eq!(a, b);
            let wrap = |d: Datum| Datum::call("plain-file", vec![Datum::str("f.json"), d]);
            prop_assert_eq!(wrap(lines).pretty(indent), wrap(call).pretty(indent));
        }

        #[test]
        fn string_lists_stay_well_formed_at_any_indent(
            items in proptest::collection::vec(any::<String>(), 0..6),
            indent in 0usize..40,
        ) {
            let d = Datum::call("list", items.iter().map(|s| Datum::str(s)).collect());
            let text = d.pretty(indent);
            prop_assert_eq!(check_sexprs(&text), Ok(1));
        }
    }
}
