//! Templates for every emitted file. The defaults live in `templates/` at
//! the top of the repository and are embedded in the binary; `--templates
//! DIR` overrides any of them by the same relative path.
//!
//! Templates receive only values that an `escape` function has already
//! made safe for their target. The formatter refuses any other string: a
//! template can lay values out, but it can never print a raw value.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use minijinja::{Environment, Error, ErrorKind, UndefinedBehavior, Value};

use crate::input_file::{self, InputFile};

/// Template names and their embedded defaults.
pub const DEFAULTS: &[(&str, &str)] = &[
    (
        "quadlet/container.j2",
        include_str!("../../templates/quadlet/container.j2"),
    ),
    (
        "quadlet/volume.j2",
        include_str!("../../templates/quadlet/volume.j2"),
    ),
    (
        "quadlet/network.j2",
        include_str!("../../templates/quadlet/network.j2"),
    ),
    (
        "systemd/job.service.j2",
        include_str!("../../templates/systemd/job.service.j2"),
    ),
    (
        "systemd/job.timer.j2",
        include_str!("../../templates/systemd/job.timer.j2"),
    ),
    (
        "nixos/default.nix.j2",
        include_str!("../../templates/nixos/default.nix.j2"),
    ),
    (
        "nixos/options.nix.j2",
        include_str!("../../templates/nixos/options.nix.j2"),
    ),
    (
        "nixos/fleet.nix.j2",
        include_str!("../../templates/nixos/fleet.nix.j2"),
    ),
    (
        "nixos/app.nix.j2",
        include_str!("../../templates/nixos/app.nix.j2"),
    ),
    (
        "guix/apps.scm.j2",
        include_str!("../../templates/guix/apps.scm.j2"),
    ),
];

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("cannot read template {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("template {name}: {message}")]
    Render { name: String, message: String },
}

pub struct Templates {
    env: Environment<'static>,
    /// Which templates came from an override directory.
    pub overridden: Vec<String>,
    /// The override files read, as they were when read.
    pub read: Vec<InputFile>,
}

fn strict_formatter(
    out: &mut minijinja::Output,
    _state: &mut minijinja::State,
    value: &Value,
) -> Result<(), Error> {
    if value.is_safe() || value.is_number() || value.is_undefined() || value.is_none() {
        if let Some(s) = value.as_str() {
            out.write_str(s).map_err(Error::from)
        } else if value.is_undefined() || value.is_none() {
            Ok(())
        } else {
            out.write_str(&value.to_string()).map_err(Error::from)
        }
    } else {
        Err(Error::new(
            ErrorKind::InvalidOperation,
            format!(
                "refusing to print an unescaped value ({value:?}); only values prepared by windlass may be printed"
            ),
        ))
    }
}

impl Templates {
    /// The embedded templates, with any file in `dir` taking precedence.
    pub fn load(dir: Option<&Path>) -> Result<Templates, TemplateError> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_formatter(strict_formatter);
        env.set_syntax(
            minijinja::syntax::SyntaxConfig::builder()
                .trim_blocks(true)
                .lstrip_blocks(true)
                .build()
                .expect("static syntax config is valid"),
        );
        let mut overridden = Vec::new();
        let mut read = Vec::new();
        for (name, default) in DEFAULTS {
            let mut source = (*default).to_string();
            if let Some(dir) = dir {
                let path = dir.join(name);
                if path.is_file() {
                    let (file, bytes) =
                        input_file::read(&path).map_err(|e| TemplateError::Read {
                            path: path.clone(),
                            source: e,
                        })?;
                    source = String::from_utf8(bytes).map_err(|_| TemplateError::Read {
                        path: path.clone(),
                        source: std::io::Error::new(
                            std::io::ErrorKind::InvalidData,
                            "stream did not contain valid UTF-8",
                        ),
                    })?;
                    overridden.push((*name).to_string());
                    read.push(file);
                }
            }
            env.add_template_owned(*name, source)
                .map_err(|e| TemplateError::Render {
                    name: (*name).to_string(),
                    message: e.to_string(),
                })?;
        }
        Ok(Templates {
            env,
            overridden,
            read,
        })
    }

    pub fn render(&self, name: &str, ctx: &Value) -> Result<String, TemplateError> {
        let t = self
            .env
            .get_template(name)
            .map_err(|e| TemplateError::Render {
                name: name.into(),
                message: e.to_string(),
            })?;
        let mut s = t.render(ctx).map_err(|e| {
            let mut message = e.to_string();
            if let Some(d) = e.detail() {
                message = format!("{message}: {d}");
            }
            TemplateError::Render {
                name: name.into(),
                message,
            }
        })?;
        // One trailing newline, whatever the template's own ending.
        while s.ends_with('\n') {
            s.pop();
        }
        s.push('\n');
        Ok(s)
    }
}

/// A value already escaped for its target.
pub fn safe(s: String) -> Value {
    Value::from_safe_string(s)
}

/// `{key, value}` entries of one unit section, in order.
pub fn entries(list: &[(String, String)]) -> Value {
    Value::from(
        list.iter()
            .map(|(k, v)| {
                let mut m = BTreeMap::new();
                m.insert("key", safe(k.clone()));
                m.insert("value", safe(v.clone()));
                Value::from(m)
            })
            .collect::<Vec<_>>(),
    )
}

/// A variable of a template, its text already escaped for the target.
#[derive(Debug, Clone, Copy)]
pub enum Var<'a> {
    Text(&'a str),
    Flag(bool),
    /// Texts, each written by a loop as `{{ item }}`.
    List(&'a [String]),
    /// Key/value pairs, each written by a loop as `{{ item.key }}` and
    /// `{{ item.value }}`.
    Entries(&'a [(String, String)]),
    /// A text written straight into the rendered file where `{{ name }}`
    /// stands: a large laid-out text is then never held on its own and
    /// copied. (A condition on it is left to the engine.)
    Written(Writer<'a>),
}

/// Writes a [`Var::Written`] text (about `size` bytes) at the end of the
/// string it is given.
#[derive(Clone, Copy)]
pub struct Writer<'a> {
    pub write: &'a (dyn Fn(&mut String) + Sync),
    pub size: usize,
}

impl std::fmt::Debug for Writer<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Writer {{ size: {} }}", self.size)
    }
}

impl Var<'_> {
    /// The template engine's value of `self`.
    fn value(&self) -> Value {
        match *self {
            Var::Text(s) => safe(s.to_string()),
            Var::Written(w) => {
                let mut text = String::with_capacity(w.size);
                (w.write)(&mut text);
                safe(text)
            }
            Var::Flag(b) => Value::from(b),
            Var::List(items) => Value::from(items.iter().cloned().map(safe).collect::<Vec<_>>()),
            Var::Entries(list) => entries(list),
        }
    }
}

/// A template of the plain shape, read by [`Plain::parse`]: text with
/// `{{ name }}` and `{{ item.field }}` in it, and `for`, `if`, `else` and
/// the closing tags each alone on a line.
#[derive(Debug, PartialEq)]
enum Node {
    Text(&'static str),
    Var(&'static str),
    Field(&'static str, &'static str),
    For {
        item: &'static str,
        list: &'static str,
        body: Vec<Node>,
    },
    If {
        flag: &'static str,
        then: Vec<Node>,
        otherwise: Vec<Node>,
    },
}

/// The built-in templates written directly, without the template engine,
/// when every tag is of the plain shape (`plain_templates_are_the_
/// engine_s` checks the text is byte for byte the engine's).
#[derive(Debug)]
struct Plain {
    nodes: Vec<Node>,
    /// The template's own length, towards the written text's capacity.
    size: usize,
}

impl Plain {
    /// `None` unless every tag of `text` is of the plain shape: a block tag
    /// alone on its line (the line disappears, as with `trim_blocks` and
    /// `lstrip_blocks`), an expression a name or `name.field`, no comment,
    /// filter, test or whitespace control.
    fn parse(text: &'static str) -> Option<Plain> {
        let ident = |s: &str| {
            let mut b = s.bytes();
            b.next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == b'_')
                && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
        };
        // The open blocks: the nodes of the enclosing level, and the block
        // being filled (`For` or `If`, with whether `else` was seen).
        let mut stack: Vec<(Vec<Node>, Node, bool)> = Vec::new();
        let mut nodes: Vec<Node> = Vec::new();
        for line in text.split_inclusive('\n') {
            let bare = line.trim_end_matches('\n').trim_start_matches([' ', '\t']);
            if let Some(tag) = bare.strip_prefix("{%").and_then(|t| t.strip_suffix("%}")) {
                let words: Vec<&str> = tag.split_whitespace().collect();
                if tag.starts_with('-') || tag.ends_with('-') || tag.starts_with('+') {
                    return None;
                }
                match words.as_slice() {
                    ["for", item, "in", list] if ident(item) && ident(list) => {
                        let block = Node::For {
                            item,
                            list,
                            body: Vec::new(),
                        };
                        stack.push((std::mem::take(&mut nodes), block, false));
                    }
                    ["if", flag] if ident(flag) => {
                        let block = Node::If {
                            flag,
                            then: Vec::new(),
                            otherwise: Vec::new(),
                        };
                        stack.push((std::mem::take(&mut nodes), block, false));
                    }
                    ["else"] => {
                        let (_, Node::If { then, .. }, seen_else) = stack.last_mut()? else {
                            return None;
                        };
                        if *seen_else {
                            return None;
                        }
                        *then = std::mem::take(&mut nodes);
                        *seen_else = true;
                    }
                    ["endfor"] | ["endif"] => {
                        let (outer, mut block, seen_else) = stack.pop()?;
                        match (&mut block, words[0]) {
                            (Node::For { body, .. }, "endfor") => *body = nodes,
                            (
                                Node::If {
                                    then, otherwise, ..
                                },
                                "endif",
                            ) => {
                                if seen_else {
                                    *otherwise = nodes;
                                } else {
                                    *then = nodes;
                                }
                            }
                            _ => return None,
                        }
                        nodes = outer;
                        nodes.push(block);
                    }
                    _ => return None,
                }
                continue;
            }
            // Any other line holds text and expressions only.
            if line.contains("{%") || line.contains("{#") {
                return None;
            }
            let mut rest = line;
            while let Some(at) = rest.find("{{") {
                if at > 0 {
                    nodes.push(Node::Text(&rest[..at]));
                }
                let end = rest[at..].find("}}")? + at;
                let expr = &rest[at + 2..end];
                if expr.starts_with(['-', '+']) || expr.ends_with(['-', '+']) {
                    return None;
                }
                let expr = expr.trim();
                match expr.split_once('.') {
                    None if ident(expr) => nodes.push(Node::Var(expr)),
                    Some((item, field)) if ident(item) && ident(field) => {
                        nodes.push(Node::Field(item, field));
                    }
                    _ => return None,
                }
                rest = &rest[end + 2..];
            }
            if rest.contains("}}") {
                return None;
            }
            if !rest.is_empty() {
                nodes.push(Node::Text(rest));
            }
        }
        stack.is_empty().then_some(Plain {
            nodes,
            size: text.len(),
        })
    }

    /// The built-in template `name`'s plain form, read once.
    fn of(name: &str) -> Option<&'static Plain> {
        static PLAIN: std::sync::OnceLock<Vec<(&'static str, Option<Plain>)>> =
            std::sync::OnceLock::new();
        PLAIN
            .get_or_init(|| {
                DEFAULTS
                    .iter()
                    .map(|(n, text)| (*n, Plain::parse(text)))
                    .collect()
            })
            .iter()
            .find(|(n, _)| *n == name)?
            .1
            .as_ref()
    }

    /// The text the template renders with `vars`, with one trailing newline
    /// as [`Templates::render`] leaves it; `None` when a variable is
    /// missing or not of the kind its tag needs (the engine then renders
    /// it, and reports that).
    fn write(&self, vars: &[(&str, Var<'_>)]) -> Option<String> {
        // About the text's size: each value once, with a line's worth of
        // the template around each item of a list.
        let size: usize = vars
            .iter()
            .map(|(_, v)| match v {
                Var::Text(t) => t.len(),
                Var::Written(w) => w.size,
                Var::Flag(_) => 0,
                Var::List(l) => l.iter().map(|t| t.len() + 8).sum(),
                Var::Entries(l) => l.iter().map(|(k, v)| k.len() + v.len() + 8).sum(),
            })
            .sum();
        let mut out = String::with_capacity(self.size + size);
        write_nodes(&self.nodes, vars, &[], &mut out)?;
        while out.ends_with('\n') {
            out.pop();
        }
        out.push('\n');
        Some(out)
    }
}

/// A loop's current item: its text or entry.
#[derive(Clone, Copy)]
enum Item<'a> {
    Text(&'a str),
    Entry(&'a str, &'a str),
}

fn write_nodes(
    nodes: &[Node],
    vars: &[(&str, Var<'_>)],
    items: &[(&str, Item<'_>)],
    out: &mut String,
) -> Option<()> {
    let var = |name: &str| {
        // A loop's item hides a variable of the same name, as in Jinja.
        if items.iter().any(|(n, _)| *n == name) {
            return None;
        }
        vars.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
    };
    let item = |name: &str| items.iter().rev().find(|(n, _)| *n == name).map(|(_, i)| i);
    for node in nodes {
        match node {
            Node::Text(t) => out.push_str(t),
            Node::Var(name) => match (item(name), var(name)) {
                (Some(Item::Text(t)), _) => out.push_str(t),
                (None, Some(Var::Text(t))) => out.push_str(t),
                (None, Some(Var::Written(w))) => (w.write)(out),
                _ => return None,
            },
            Node::Field(name, field) => match (item(name)?, *field) {
                (Item::Entry(k, _), "key") => out.push_str(k),
                (Item::Entry(_, v), "value") => out.push_str(v),
                _ => return None,
            },
            Node::For {
                item: name,
                list,
                body,
            } => {
                let mut inner = items.to_vec();
                match var(list)? {
                    Var::List(texts) => {
                        for t in texts {
                            inner.push((name, Item::Text(t)));
                            write_nodes(body, vars, &inner, out)?;
                            inner.pop();
                        }
                    }
                    Var::Entries(list) => {
                        for (k, v) in list {
                            inner.push((name, Item::Entry(k, v)));
                            write_nodes(body, vars, &inner, out)?;
                            inner.pop();
                        }
                    }
                    _ => return None,
                }
            }
            Node::If {
                flag,
                then,
                otherwise,
            } => {
                let on = match var(flag)? {
                    Var::Flag(b) => b,
                    Var::Text(t) => !t.is_empty(),
                    Var::List(l) => !l.is_empty(),
                    Var::Entries(l) => !l.is_empty(),
                    Var::Written(_) => return None,
                };
                write_nodes(if on { then } else { otherwise }, vars, items, out)?;
            }
        }
    }
    Some(())
}

impl Templates {
    /// Renders template `name` with `vars`. A built-in template not
    /// overridden whose tags are all of the plain shape is written
    /// directly; any other is rendered by the template engine.
    pub fn render_vars(
        &self,
        name: &str,
        vars: &[(&str, Var<'_>)],
    ) -> Result<String, TemplateError> {
        if !self.overridden.iter().any(|t| t == name)
            && let Some(text) = Plain::of(name).and_then(|p| p.write(vars))
        {
            return Ok(text);
        }
        let values: BTreeMap<&str, Value> = vars.iter().map(|(n, v)| (*n, v.value())).collect();
        self.render(name, &Value::from(values))
    }

    /// Renders the unit template `name` with `source` (already escaped),
    /// each section variable's entries and the `extra` texts.
    pub fn render_unit(
        &self,
        name: &str,
        source: &str,
        sections: &[(&'static str, &[(String, String)])],
        extra: &[(&'static str, &str)],
    ) -> Result<String, TemplateError> {
        let mut vars: Vec<(&str, Var<'_>)> = Vec::with_capacity(1 + extra.len() + sections.len());
        vars.push(("source", Var::Text(source)));
        vars.extend(extra.iter().map(|(n, t)| (*n, Var::Text(t))));
        vars.extend(sections.iter().map(|(n, l)| (*n, Var::Entries(l))));
        self.render_vars(name, &vars)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The variables a plain template uses, each with the kind its tags
    /// need: (name, is a flag, loop over entries, loop over texts).
    fn plain_vars(
        nodes: &[Node],
        bound: &mut Vec<&'static str>,
        out: &mut Vec<(&'static str, char)>,
    ) {
        fn add(
            out: &mut Vec<(&'static str, char)>,
            name: &'static str,
            kind: char,
            bound: &[&'static str],
        ) {
            if bound.contains(&name) {
                return;
            }
            match out.iter_mut().find(|(n, _)| *n == name) {
                // A name both tested and printed is a text.
                Some((_, k)) if kind != 'f' => *k = kind,
                Some(_) => {}
                None => out.push((name, kind)),
            }
        }
        for node in nodes {
            match node {
                Node::Text(_) | Node::Field(..) => {}
                Node::Var(name) => add(out, name, 't', bound),
                Node::For { item, list, body } => {
                    let fields = body
                        .iter()
                        .any(|n| matches!(n, Node::Field(i, _) if i == item));
                    add(out, list, if fields { 'e' } else { 'l' }, bound);
                    bound.push(item);
                    plain_vars(body, bound, out);
                    bound.pop();
                }
                Node::If {
                    flag,
                    then,
                    otherwise,
                } => {
                    add(out, flag, 'f', bound);
                    plain_vars(then, bound, out);
                    plain_vars(otherwise, bound, out);
                }
            }
        }
    }

    #[test]
    fn the_built_in_templates_are_plain() {
        for (name, _) in DEFAULTS {
            assert!(
                Plain::of(name).is_some(),
                "{name} is not of the plain shape"
            );
        }
        for not_plain in [
            "{{ a | upper }}\n",
            "{{ a.b.c }}\n",
            "{# c #}\n",
            "x {% if a %}y{% endif %}\n",
            "{%- if a %}\n{% endif %}\n",
            "{% if a %}\n",
            "{% endfor %}\n",
            "{% for a in b %}\n{% else %}\n{% endfor %}\n",
            "{{ loop.index }}\n",
            "a }} b\n",
            "{% set x = 1 %}\n",
        ] {
            // `loop.index` parses; it is left to the engine when written.
            assert!(
                Plain::parse(not_plain).is_none_or(|p| p.write(&[]).is_none()),
                "{not_plain:?} was read as plain"
            );
        }
    }

    proptest::proptest! {
        /// Each built-in template written directly is byte for byte what the
        /// engine renders, for any values (values holding tag syntax too).
        #[test]
        fn plain_templates_are_the_engine_s(
            texts in proptest::collection::vec("[a-z{}%# \n\"'$\\\\é.]{0,12}", 40),
            flags in proptest::collection::vec(proptest::bool::ANY, 8),
            sizes in proptest::collection::vec(0usize..4, 8),
        ) {
            let templates = Templates::load(None).unwrap();
            let mut t = texts.iter().cycle();
            for (name, _) in DEFAULTS {
                let plain = Plain::of(name).unwrap();
                let mut kinds = Vec::new();
                plain_vars(&plain.nodes, &mut Vec::new(), &mut kinds);
                // Every kind of value for every variable, used as its kind.
                type Owned = (String, Vec<String>, Vec<(String, String)>);
                let owned: Vec<Owned> = kinds
                    .iter()
                    .enumerate()
                    .map(|(i, _)| {
                        let n = sizes[i % sizes.len()];
                        let text = if flags[i % flags.len()] { t.next().unwrap().clone() } else { String::new() };
                        let list = (0..n).map(|_| t.next().unwrap().clone()).collect();
                        let pairs = (0..n)
                            .map(|_| (t.next().unwrap().clone(), t.next().unwrap().clone()))
                            .collect();
                        (text, list, pairs)
                    })
                    .collect();
                let vars: Vec<(&str, Var<'_>)> = kinds
                    .iter()
                    .zip(&owned)
                    .enumerate()
                    .map(|(i, ((n, k), (text, list, pairs)))| {
                        let v = match k {
                            'f' => Var::Flag(flags[i % flags.len()]),
                            'l' => Var::List(list),
                            'e' => Var::Entries(pairs),
                            _ => Var::Text(text),
                        };
                        (*n, v)
                    })
                    .collect();
                let direct = plain.write(&vars);
                proptest::prop_assert!(direct.is_some(), "{name}: {kinds:?}");
                let values: BTreeMap<&str, Value> = vars.iter().map(|(n, v)| (*n, v.value())).collect();
                let rendered = templates.render(name, &Value::from(values)).unwrap();
                // Each text written in place instead gives the same file,
                // directly and through the engine.
                let writers: Vec<_> = vars
                    .iter()
                    .map(|(_, v)| match *v {
                        Var::Text(t) => Some(move |out: &mut String| out.push_str(t)),
                        _ => None,
                    })
                    .collect();
                let written: Vec<(&str, Var<'_>)> = vars
                    .iter()
                    .zip(&writers)
                    .map(|((n, v), w)| match (w, v) {
                        (Some(w), Var::Text(t)) => {
                            (*n, Var::Written(Writer { write: w, size: t.len() }))
                        }
                        _ => (*n, *v),
                    })
                    .collect();
                let in_place = plain.write(&written).unwrap_or_else(|| {
                    // A condition on a written text is left to the engine.
                    let values: BTreeMap<&str, Value> =
                        written.iter().map(|(n, v)| (*n, v.value())).collect();
                    templates.render(name, &Value::from(values)).unwrap()
                });
                proptest::prop_assert_eq!(&in_place, &rendered, "{} written in place", name);
                proptest::prop_assert_eq!(direct.unwrap(), rendered, "{}", name);
            }
        }
    }
}
