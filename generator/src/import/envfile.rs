//! A service's `env_file` read twice: as compose reads it (compose-go's
//! dotenv parser: `export `, `KEY: value`, quotes, escapes in double
//! quotes, ` #` comments, interpolation) and as Podman's `--env-file`
//! reads it (`pkg/env`: one line is one variable, everything after the
//! first `=` taken literally). The import compares the two and reports
//! each variable whose value the container would receive differently,
//! by name only: values never leave this module.

use std::collections::BTreeMap;

use super::interpolate::{Interpolator, Outcome, SecretRule, Vars};

/// How one statement of the file was written, for the report's reason.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Form {
    /// 1-based line of the statement's key.
    pub line: usize,
    pub export: bool,
    /// `KEY: value` (compose's YAML-like form).
    pub colon: bool,
    /// White space between the key and `=`.
    pub key_space: bool,
    /// `KEY` alone: compose takes the value from its own variables.
    pub inherited: bool,
    pub quote: Option<char>,
    /// A quoted value spanning lines.
    pub multiline: bool,
    /// Unquoted, with a ` #` comment cut off.
    pub comment: bool,
    /// White space after `=` (compose skips it).
    pub lead_space: bool,
    /// White space at the end of an unquoted value (compose trims it).
    pub trail_space: bool,
    /// A `$` reference compose interpolates (or `$$`).
    pub dollar: bool,
    /// A backslash escape in double quotes.
    pub escape: bool,
}

/// One variable as compose reads it: `None` when its value depends on a
/// variable that is unset or secret here (compose substitutes it; this
/// import does not read secrets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComposeVar {
    pub value: Option<String>,
    pub form: Form,
}

fn is_space(c: char) -> bool {
    matches!(
        c,
        '\t' | '\u{b}' | '\u{c}' | '\r' | ' ' | '\u{85}' | '\u{a0}'
    )
}

/// Go's `\s` (for `^export\s+`).
fn is_go_space(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\u{c}' | '\r' | ' ')
}

/// Reads `text` as compose-go's dotenv parser does. `lookup` is what
/// compose consults first when interpolating or for a `KEY` alone (the
/// project's variables, then the service's `environment`); `env` holds
/// what earlier files (and the service's `environment`) set and receives
/// this file's variables. Returns the variables this file sets, in order.
pub fn parse_compose(
    text: &str,
    lookup: &BTreeMap<String, String>,
    env: &mut BTreeMap<String, Option<String>>,
) -> Result<Vec<(String, ComposeVar)>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut out: Vec<(String, ComposeVar)> = Vec::new();
    let mut i = 0;
    let mut line = 1;
    let rule = SecretRule::default();
    let interpolate =
        |s: &str, env: &BTreeMap<String, Option<String>>| -> Result<Option<String>, String> {
            // lookup first, then what this and earlier files set.
            let mut vars = Vars::default();
            for (k, v) in env {
                if let Some(v) = v {
                    vars.env_file.insert(k.clone(), v.clone());
                }
            }
            for (k, v) in lookup {
                vars.env_file.insert(k.clone(), v.clone());
            }
            let interp = Interpolator {
                vars: &vars,
                rule: &rule,
            };
            let mut subs = Vec::new();
            let v = interp.string(s, false, &mut subs)?;
            Ok(subs
                .iter()
                .all(|s| matches!(s.outcome, Outcome::Resolved(_)))
                .then_some(v))
        };
    loop {
        // The statement's start: skip white space and comment lines.
        while i < chars.len() && chars[i].is_whitespace() {
            if chars[i] == '\n' {
                line += 1;
            }
            i += 1;
        }
        if i >= chars.len() {
            break;
        }
        if chars[i] == '#' {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
            continue;
        }
        let mut form = Form {
            line,
            ..Form::default()
        };
        // `export` followed by white space.
        let rest: String = chars[i..chars.len().min(i + 7)].iter().collect();
        if rest.starts_with("export") && rest[6..].starts_with(is_go_space) {
            form.export = true;
            i += 6;
            while i < chars.len() && is_space(chars[i]) {
                i += 1;
            }
        }
        let start = i;
        let mut sep = None;
        while i < chars.len() {
            let c = chars[i];
            if is_space(c) {
                i += 1;
                continue;
            }
            match c {
                '=' | ':' | '\n' => {
                    sep = Some(c);
                    break;
                }
                '_' | '.' | '-' | '[' | ']' => {}
                c if c.is_alphanumeric() => {}
                c => {
                    return Err(format!(
                        "line {line}: unexpected character {c:?} in a variable name"
                    ));
                }
            }
            i += 1;
        }
        let raw_key: String = chars[start..i].iter().collect();
        let key = raw_key.trim_end().to_string();
        form.key_space = key.len() != raw_key.len();
        if key.contains(' ') {
            return Err(format!(
                "line {line}: a variable name cannot contain a space"
            ));
        }
        if key.is_empty() {
            return Err(format!("line {line}: a value without a variable name"));
        }
        // A key alone (also at the end of the file): compose's own value.
        if sep.is_none() || sep == Some('\n') {
            form.inherited = true;
            let value = lookup.get(&key).cloned();
            if let Some(v) = &value {
                env.insert(key.clone(), Some(v.clone()));
                out.push((
                    key,
                    ComposeVar {
                        value: Some(v.clone()),
                        form,
                    },
                ));
            }
            continue;
        }
        form.colon = sep == Some(':');
        i += 1; // the separator
        while i < chars.len() && is_space(chars[i]) {
            form.lead_space = true;
            i += 1;
        }
        let value = match chars.get(i) {
            Some(&q @ ('\'' | '"')) => {
                form.quote = Some(q);
                let mut j = i + 1;
                let mut buf = String::new();
                let mut escaped = false;
                let mut end = None;
                while j < chars.len() {
                    let c = chars[j];
                    if c == '\n' {
                        line += 1;
                        form.multiline = true;
                    }
                    if c != q {
                        if !escaped && c == '\\' {
                            escaped = true;
                        } else {
                            if escaped {
                                escaped = false;
                                buf.push('\\');
                            }
                            buf.push(c);
                        }
                        j += 1;
                        continue;
                    }
                    if escaped {
                        escaped = false;
                        form.escape = true;
                        buf.push(c);
                        j += 1;
                        continue;
                    }
                    end = Some(j);
                    break;
                }
                let Some(end) = end else {
                    return Err(format!("line {}: unterminated quoted value", form.line));
                };
                i = end + 1;
                if q == '"' {
                    let unescaped = expand_escapes(&buf);
                    form.escape |= unescaped != buf;
                    form.dollar |= unescaped.contains('$');
                    interpolate(&unescaped, env)?
                } else {
                    Some(buf)
                }
            }
            _ => {
                let s = i;
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
                let whole: String = chars[s..i].iter().collect();
                let mut v = whole.as_str();
                if let Some(pos) = v.find(" #") {
                    form.comment = true;
                    v = &v[..pos];
                }
                let trimmed = v.trim_end();
                form.trail_space = trimmed.len() != v.len();
                form.dollar = trimmed.contains('$');
                interpolate(trimmed, env).map_err(|e| format!("line {}: {e}", form.line))?
            }
        };
        env.insert(key.clone(), value.clone());
        out.retain(|(k, _)| *k != key);
        out.push((key, ComposeVar { value, form }));
    }
    Ok(out)
}

/// The escapes compose-go expands in double quotes: `\a \b \f \n \r \t
/// \v \" \\`, `\0` and three octal digits; `\$` is a literal `$` (`$$`
/// to the interpolation that follows). Anything else stays as written.
fn expand_escapes(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] != '\\' || i + 1 >= chars.len() {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        let c = chars[i + 1];
        let simple = match c {
            'a' => Some('\u{7}'),
            'b' => Some('\u{8}'),
            'f' => Some('\u{c}'),
            'n' => Some('\n'),
            'r' => Some('\r'),
            't' => Some('\t'),
            'v' => Some('\u{b}'),
            '"' => Some('"'),
            '\\' => Some('\\'),
            _ => None,
        };
        if let Some(x) = simple {
            out.push(x);
            i += 2;
        } else if c == '$' {
            out.push_str("$$");
            i += 2;
        } else if c == '0' {
            // The regex takes up to three more digits; Go unquotes only
            // exactly three octal ones.
            let digits: String = chars[i + 2..]
                .iter()
                .take(3)
                .take_while(|d| d.is_ascii_digit())
                .collect();
            let n = digits.len();
            match u32::from_str_radix(&digits, 8) {
                Ok(v) if n == 3 && v <= 0o377 => out.push(char::from_u32(v).unwrap_or('\0')),
                _ => {
                    out.push('\\');
                    out.push('0');
                    out.push_str(&digits);
                }
            }
            i += 2 + n;
        } else {
            out.push('\\');
            out.push(c);
            i += 2;
        }
    }
    out
}

/// One variable as Podman's `--env-file` reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PodmanVar {
    Value(String),
    /// `KEY` or `KEY*` alone: the value comes from the environment of the
    /// process that runs `podman` (the unit's), at start.
    Host,
}

/// Reads `text` as Podman's `pkg/env.ParseFile` does: per line, leading
/// blanks trimmed, empty and `#` lines skipped, the name up to the first
/// `=` (with its trailing blanks), the value everything after it. Err:
/// the line number of a line Podman refuses (an empty name), and Podman
/// does not start the container.
pub fn parse_podman(text: &str) -> Result<BTreeMap<String, PodmanVar>, usize> {
    let mut env = BTreeMap::new();
    for (n, line) in text.split('\n').enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        let line = line.trim_start_matches([' ', '\t']);
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match line.split_once('=') {
            Some(("", _)) => return Err(n + 1),
            Some((k, v)) => {
                env.insert(k.to_string(), PodmanVar::Value(v.to_string()));
            }
            None => {
                env.insert(line.trim_end_matches('*').to_string(), PodmanVar::Host);
            }
        }
    }
    Ok(env)
}

/// Why Podman would give `key` another value than compose, in words
/// (never the value). `podman` is what Podman reads for the same name.
pub fn why_different(form: &Form, podman: Option<&PodmanVar>) -> String {
    let mut why: Vec<&str> = Vec::new();
    match podman {
        None => {
            if form.export {
                why.push("Podman reads `export KEY` as the name, so it does not set this one");
            } else if form.colon {
                why.push("Podman does not read `KEY: value`, so it does not set this one");
            } else if form.key_space {
                why.push("Podman keeps the blank before `=` in the name, so it does not set this one");
            } else if form.inherited {
                why.push("Podman takes the value of a name alone from the unit's environment, not from the project's variables");
            } else {
                why.push("Podman does not set it");
            }
        }
        Some(PodmanVar::Host) => why.push(
            "Podman takes the value of a name alone from the unit's environment, not from the project's variables",
        ),
        Some(PodmanVar::Value(_)) => {
            if let Some(q) = form.quote {
                why.push(if q == '"' {
                    "Podman keeps the double quotes"
                } else {
                    "Podman keeps the single quotes"
                });
            }
            if form.multiline {
                why.push("reads only the first line of a value that spans lines");
            }
            if form.escape {
                why.push("does not expand backslash escapes");
            }
            if form.dollar {
                why.push("does not interpolate `$` (compose does)");
            }
            if form.comment {
                why.push("keeps the ` #` comment as part of the value");
            }
            if form.lead_space {
                why.push("keeps the blanks after `=`");
            }
            if form.trail_space {
                why.push("keeps the blanks at the end");
            }
            if why.is_empty() {
                why.push("Podman reads another value");
            }
        }
    }
    why.join(", ")
}

/// Whether writing the line as `KEY=<compose's value>`, unquoted, is read
/// the same by compose and Podman: no quote first, no blank at either
/// end, no line break, no `$`, no ` #`, a plain name.
pub fn plain_line_reads_the_same(key: &str, value: &str) -> bool {
    !value.starts_with(['\'', '"'])
        && value.trim() == value
        && !value.contains(['\n', '\r', '$'])
        && !value.contains(" #")
        && !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compose(text: &str, lookup: &[(&str, &str)]) -> BTreeMap<String, Option<String>> {
        let lookup = lookup
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut env = BTreeMap::new();
        parse_compose(text, &lookup, &mut env)
            .unwrap()
            .into_iter()
            .map(|(k, v)| (k, v.value))
            .collect()
    }

    #[test]
    fn compose_reads_quotes_export_comments_and_interpolation() {
        let text = "# c\nA=1\nexport B = two words # c\nC='lit $A \\' x'\nD=\"q\\n$A \\$A\"\nE=\nF=\"multi\nline\"\nG=${A}x\nH: yaml\nI\nJ=a#b\nK=${NOPE}\n";
        let v = compose(text, &[("I", "from-project")]);
        assert_eq!(v["A"].as_deref(), Some("1"));
        assert_eq!(v["B"].as_deref(), Some("two words"));
        assert_eq!(v["C"].as_deref(), Some("lit $A ' x"));
        assert_eq!(v["D"].as_deref(), Some("q\n1 $A"));
        assert_eq!(v["E"].as_deref(), Some(""));
        assert_eq!(v["F"].as_deref(), Some("multi\nline"));
        assert_eq!(v["G"].as_deref(), Some("1x"));
        assert_eq!(v["H"].as_deref(), Some("yaml"));
        assert_eq!(v["I"].as_deref(), Some("from-project"));
        assert_eq!(v["J"].as_deref(), Some("a#b"));
        assert_eq!(
            v["K"], None,
            "an unset variable: compose's value is not known here"
        );
        assert!(parse_compose("A B=1\n", &BTreeMap::new(), &mut BTreeMap::new()).is_err());
        assert!(parse_compose("A='x\n", &BTreeMap::new(), &mut BTreeMap::new()).is_err());
    }

    #[test]
    fn octal_and_unknown_escapes_follow_compose_go() {
        assert_eq!(expand_escapes("\\0101\\c\\08"), "A\\c\\08");
    }

    #[test]
    fn podman_reads_each_line_literally() {
        let p = parse_podman(" A='x' # y\r\nexport B=1\nC\n#D=1\nE =2\n").unwrap();
        assert_eq!(p["A"], PodmanVar::Value("'x' # y".into()));
        assert_eq!(p["export B"], PodmanVar::Value("1".into()));
        assert_eq!(p["C"], PodmanVar::Host);
        assert_eq!(p["E "], PodmanVar::Value("2".into()));
        assert!(!p.contains_key("D"));
        assert_eq!(parse_podman("A=1\n=x\n"), Err(2));
    }

    #[test]
    fn a_plain_line_is_offered_only_when_both_read_it_the_same() {
        assert!(plain_line_reads_the_same("K", "r(m)x"));
        for v in ["'q", " a", "a ", "a\nb", "a$b", "a #b"] {
            assert!(!plain_line_reads_the_same("K", v), "{v:?}");
        }
    }
}
