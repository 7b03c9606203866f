//! Reading hand-written Quadlet files the way Quadlet reads them: systemd
//! unit syntax (sections, `Key=value`, `#`/`;` comments, a trailing `\`
//! continuing onto the next line), Quadlet's word splitting for the keys it
//! splits (`Exec=`, `Environment=`, `Label=`, …), and the two expansions
//! systemd applies afterwards to the `ExecStart=` Quadlet writes: `%`
//! specifiers and `$VAR` references.
//!
//! The reader follows Podman's `pkg/systemd/parser` (unitfile.go, split.go)
//! but is stricter where Podman is lenient: an unbalanced quote, a trailing
//! backslash or an unknown escape is an error the caller reports, never a
//! guess.

/// One `Key=value` line: its section, key, value (continuations joined,
/// surrounding white space trimmed) and the line number where it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    pub section: String,
    pub key: String,
    pub value: String,
    pub line: usize,
}

/// A parsed unit file: its settings in file order, and each section header
/// (name, line) in file order.
#[derive(Debug, Clone, Default)]
pub struct UnitFile {
    pub settings: Vec<Setting>,
    pub sections: Vec<(String, usize)>,
}

/// A syntax error: the line and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub line: usize,
    pub message: String,
}

fn is_comment(l: &str) -> bool {
    l.is_empty() || l.starts_with('#') || l.starts_with(';')
}

/// Parses unit file text as Quadlet's parser does: each line trimmed;
/// comment lines ignored (also inside a continuation); a line ending in `\`
/// continues onto the next with the backslash removed; a section header may
/// be followed by white space only; a key has no `=` and is not empty.
pub fn parse(text: &str) -> Result<UnitFile, SyntaxError> {
    let mut unit = UnitFile::default();
    let mut section: Option<String> = None;
    let lines: Vec<&str> = text
        .strip_suffix('\n')
        .unwrap_or(text)
        .split('\n')
        .collect();
    let mut pending = String::new();
    let mut pending_start = 0;
    for (i, raw) in lines.iter().enumerate() {
        let n = i + 1;
        let mut line = raw.trim().to_string();
        if is_comment(&line) {
            continue;
        }
        if let Some(stripped) = line.strip_suffix('\\')
            && i != lines.len() - 1
        {
            if pending.is_empty() {
                pending_start = n;
            }
            pending.push_str(stripped);
            continue;
        } else if line.ends_with('\\') {
            line.pop();
        }
        let start = if pending.is_empty() { n } else { pending_start };
        if !pending.is_empty() {
            line = std::mem::take(&mut pending) + &line;
        }
        let err = |message: String| SyntaxError {
            line: start,
            message,
        };
        if line.starts_with('[') {
            let Some(end) = line.find(']') else {
                return Err(err(format!("unclosed section header {line:?}")));
            };
            if !line[end + 1..].chars().all(|c| c == ' ' || c == '\t') {
                return Err(err(format!("text after the section header {line:?}")));
            }
            let name = &line[1..end];
            if name.is_empty() || name.chars().any(|c| c == '[' || c.is_control()) {
                return Err(err(format!("invalid section name {name:?}")));
            }
            section = Some(name.to_string());
            unit.sections.push((name.to_string(), start));
            continue;
        }
        let Some(eq) = line.find('=').filter(|&p| p > 0) else {
            return Err(err(format!(
                "expected `Key=value`, a `[Section]` or a comment, found {line:?}"
            )));
        };
        let Some(sec) = &section else {
            return Err(err("a setting before any `[Section]`".into()));
        };
        let key = line[..eq].trim_end();
        if key.is_empty() {
            return Err(err(format!("empty key in {line:?}")));
        }
        unit.settings.push(Setting {
            section: sec.clone(),
            key: key.to_string(),
            value: line[eq + 1..].trim_start().to_string(),
            line: start,
        });
    }
    Ok(unit)
}

impl UnitFile {
    /// The indices of every `section.key` setting, in order.
    pub fn indices(&self, section: &str, key: &str) -> Vec<usize> {
        self.settings
            .iter()
            .enumerate()
            .filter(|(_, s)| s.section == section && s.key == key)
            .map(|(i, _)| i)
            .collect()
    }

    /// Whether the file has a `[section]` header.
    pub fn has_section(&self, section: &str) -> bool {
        self.sections.iter().any(|(s, _)| s == section)
    }
}

/// Splits a value into words as Quadlet splits `Exec=`, `Environment=`,
/// `Label=`, `PodmanArgs=` (systemd's `extract_first_word` with unquoting
/// and C unescaping): white space separates words, `"…"` and `'…'` quote
/// anywhere in a word, `\` escapes (`\n`, `\t`, `\"`, `\\`, `\s`, `\xNN`,
/// octal, `\uXXXX`, `\UXXXXXXXX`, …). Errors (where Quadlet's relaxed
/// mode would guess): an unbalanced quote, a trailing backslash, an unknown
/// escape, a NUL, a byte escape above 0x7f.
pub fn split_words(s: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    let is_sep = |c: char| matches!(c, ' ' | '\t' | '\n' | '\r');
    loop {
        while i < chars.len() && is_sep(chars[i]) {
            i += 1;
        }
        if i >= chars.len() {
            return Ok(words);
        }
        let mut word = String::new();
        let mut quote: Option<char> = None;
        while i < chars.len() {
            let c = chars[i];
            match (quote, c) {
                (None, c) if is_sep(c) => break,
                (None, '"' | '\'') => quote = Some(c),
                (Some(q), c) if c == q => quote = None,
                (_, '\\') => {
                    let (ch, used) = unescape_one(&chars[i + 1..])?;
                    word.push(ch);
                    i += used;
                }
                (_, c) => word.push(c),
            }
            i += 1;
        }
        if let Some(q) = quote {
            return Err(format!("unbalanced quote {q} in {s:?}"));
        }
        words.push(word);
    }
}

fn hex(cs: &[char], n: usize) -> Option<u32> {
    if cs.len() < n {
        return None;
    }
    let t: String = cs[..n].iter().collect();
    if !t.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(&t, 16).ok()
}

/// One escape after a backslash: the character and how many characters
/// after the backslash it used.
fn unescape_one(rest: &[char]) -> Result<(char, usize), String> {
    let Some(&c) = rest.first() else {
        return Err("a trailing backslash".into());
    };
    let simple = match c {
        'a' => Some('\u{7}'),
        'b' => Some('\u{8}'),
        'f' => Some('\u{c}'),
        'n' => Some('\n'),
        'r' => Some('\r'),
        't' => Some('\t'),
        'v' => Some('\u{b}'),
        '\\' => Some('\\'),
        '"' => Some('"'),
        '\'' => Some('\''),
        's' => Some(' '),
        _ => None,
    };
    if let Some(ch) = simple {
        return Ok((ch, 1));
    }
    let bad = || format!("the escape \\{c} is not one systemd knows");
    let (code, used) = match c {
        'x' => (hex(&rest[1..], 2).ok_or_else(bad)?, 3),
        'u' => (hex(&rest[1..], 4).ok_or_else(bad)?, 5),
        'U' => (hex(&rest[1..], 8).ok_or_else(bad)?, 9),
        '0'..='7' => {
            let t: String = rest.iter().take(3).collect();
            if t.len() != 3 || !t.chars().all(|d| ('0'..='7').contains(&d)) {
                return Err(bad());
            }
            (u32::from_str_radix(&t, 8).map_err(|_| bad())?, 3)
        }
        _ => return Err(bad()),
    };
    if code == 0 {
        return Err("an escaped NUL".into());
    }
    if matches!(c, 'x' | '0'..='7') && code > 0x7f {
        return Err(format!(
            "the byte escape \\{} is above 0x7f (Quadlet and systemd disagree on what it means)",
            rest[..used].iter().collect::<String>()
        ));
    }
    let ch = char::from_u32(code).ok_or_else(bad)?;
    Ok((ch, used))
}

/// What systemd does to a word of the `ExecStart=` that Quadlet writes: `%%`
/// becomes `%` and `$$` becomes `$`. Any other specifier (`%h`, `%n`, …)
/// and any variable reference (`$VAR`, `${VAR}`) means a value decided on
/// the host at run time, which a manifest cannot hold: an error naming it.
pub fn resolve_exec(s: &str) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars().peekable();
    while let Some(c) = it.next() {
        match c {
            '%' => match it.next() {
                Some('%') => out.push('%'),
                Some(x) => {
                    return Err(format!(
                        "the systemd specifier %{x} is expanded on the host at run time"
                    ));
                }
                None => return Err("a lone `%` at the end (systemd refuses it)".into()),
            },
            '$' => match it.peek() {
                Some('$') => {
                    it.next();
                    out.push('$');
                }
                Some(&x) if x == '{' || x.is_ascii_alphabetic() || x == '_' => {
                    return Err(format!(
                        "`${x}…` is an environment variable reference, expanded by systemd at run time (write `$$` for a literal `$`)"
                    ));
                }
                _ => out.push('$'),
            },
            c => out.push(c),
        }
    }
    Ok(out)
}

/// What systemd does to free text such as `Description=`: `%%` becomes `%`,
/// other specifiers are an error.
pub fn resolve_text(s: &str) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars();
    while let Some(c) = it.next() {
        if c == '%' {
            match it.next() {
                Some('%') => out.push('%'),
                Some(x) => {
                    return Err(format!(
                        "the systemd specifier %{x} is expanded on the host at run time"
                    ));
                }
                None => return Err("a lone `%` at the end".into()),
            }
        } else {
            out.push(c);
        }
    }
    Ok(out)
}

/// A value Quadlet reads whole (`Image=`, `Entrypoint=`, `HealthCmd=`, …):
/// Quadlet 5.8.2+ strips one pair of surrounding double quotes (5.0 to
/// 5.8.1 every `"` at either end, 4.x none; see `emit::quadlet::
/// whole_value`). Returns the
/// value and whether quotes were stripped.
pub fn unquote_whole(s: &str) -> (&str, bool) {
    if s.len() >= 2 && s.starts_with('"') && s.ends_with('"') {
        (&s[1..s.len() - 1], true)
    } else {
        (s, false)
    }
}

/// A boolean as systemd (and Quadlet) read it.
pub fn parse_bool(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "1" | "yes" | "true" | "on" | "y" | "t" => Some(true),
        "0" | "no" | "false" | "off" | "n" | "f" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_keys_comments_and_continuations() {
        let u = parse(
            "# c\n[Container]\nImage = a \nExec=one \\\n  # skipped\n  two\n; c\n[Unit]\nDescription=x=y\n",
        )
        .unwrap();
        let v: Vec<(&str, &str, &str, usize)> = u
            .settings
            .iter()
            .map(|s| (s.section.as_str(), s.key.as_str(), s.value.as_str(), s.line))
            .collect();
        assert_eq!(
            v,
            vec![
                ("Container", "Image", "a", 3),
                ("Container", "Exec", "one two", 4),
                ("Unit", "Description", "x=y", 9),
            ]
        );
    }

    #[test]
    fn syntax_errors_name_the_line() {
        assert_eq!(parse("[Container]\nImage\n").unwrap_err().line, 2);
        assert_eq!(parse("Image=x\n").unwrap_err().line, 1);
        assert_eq!(parse("\n\n[Container\n").unwrap_err().line, 3);
        assert_eq!(parse("[Container]\n=x\n").unwrap_err().line, 2);
    }

    #[test]
    fn words_split_like_systemd() {
        let w = |s: &str| split_words(s).unwrap();
        assert_eq!(w(r#"a "b c" 'd "e"' f"#), vec!["a", "b c", "d \"e\"", "f"]);
        assert_eq!(w(r#"x"y z"w \x41\n \s"#), vec!["xy zw", "A\n", " "]);
        assert_eq!(w(r#""""#), vec![""]);
        assert_eq!(w("  "), Vec::<String>::new());
        assert!(split_words("\"open").is_err());
        assert!(split_words("end\\").is_err());
        assert!(split_words("\\q").is_err());
        assert!(split_words("f\\ g").is_err());
        assert!(split_words("\\xff").is_err());
    }

    #[test]
    fn specifiers_and_variables_are_resolved_or_refused() {
        assert_eq!(
            resolve_exec("100%% $$HOME a$ $1").unwrap(),
            "100% $HOME a$ $1"
        );
        assert!(resolve_exec("%h/x").is_err());
        assert!(resolve_exec("${HOME}").is_err());
        assert!(resolve_exec("$HOME").is_err());
        assert_eq!(resolve_text("50%% $HOME").unwrap(), "50% $HOME");
    }
}
