//! TOML in, a tree of spanned values out, checked against the manifest's
//! shape (`schema`): types, required keys, allowed values, unknown keys.
//!
//! This layer knows nothing of what values mean; `model` does. It must never
//! stop at the first problem: it records a diagnostic and walks on.

pub mod diag;
pub mod schema;

use std::sync::Arc;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use diag::{Diagnostic, Source, Span};
use schema::{Field, Kind};

/// A value from the manifest and where it stood.
#[derive(Debug, Clone)]
pub struct Node {
    pub span: Span,
    pub value: NodeValue,
}

#[derive(Debug, Clone)]
pub enum NodeValue {
    Str(String),
    Bool(bool),
    Int(i64),
    Float(f64),
    Array(Vec<Node>),
    Table(Table),
}

/// A table that passed the shape check: only known keys remain.
#[derive(Debug, Clone, Default)]
pub struct Table {
    pub entries: Entries,
}

/// A table's entries in key order, as a `BTreeMap` would give them: kept
/// in a vector that the walk fills and then sorts once, and looked up by
/// a scan ([`same`]). A manifest's tables hold a few entries each and are
/// built once, read a few times and dropped: a tree of nodes for each cost
/// more than the rest of the walk (the keys of a TOML table are unique, so
/// nothing is ever replaced).
#[derive(Debug, Clone, Default)]
pub struct Entries(Vec<(String, Entry)>);

type EntryRef<'a> = (&'a String, &'a Entry);
type EntryIter<'a> =
    std::iter::Map<std::slice::Iter<'a, (String, Entry)>, fn(&'a (String, Entry)) -> EntryRef<'a>>;

impl Entries {
    pub fn get(&self, key: &str) -> Option<&Entry> {
        self.0.iter().find(|(k, _)| same(k, key)).map(|(_, e)| e)
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    pub fn iter(&self) -> EntryIter<'_> {
        self.0.iter().map(|(k, e)| (k, e))
    }

    /// Adds an entry; [`Entries::sort`] must follow before the entries
    /// are iterated.
    fn push(&mut self, key: String, entry: Entry) {
        self.0.push((key, entry));
    }

    /// Puts the entries in key order (they usually come in it already).
    fn sort(&mut self) {
        if !self.0.is_sorted_by(|a, b| a.0 <= b.0) {
            self.0.sort_by(|a, b| a.0.cmp(&b.0));
        }
    }
}

/// `a == b`, with the lengths and first bytes compared before the bytes:
/// most keys a lookup passes differ there, and `==` on strings of the
/// same length is a call to `memcmp` (the largest single symbol of a
/// run's profile before this).
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.as_bytes().first() == b.as_bytes().first() && a == b
}

impl<'a> IntoIterator for &'a Entries {
    type Item = EntryRef<'a>;
    type IntoIter = EntryIter<'a>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

#[derive(Debug, Clone)]
pub struct Entry {
    pub key_span: Span,
    pub node: Node,
}

impl Node {
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            NodeValue::Str(s) => Some(s),
            _ => None,
        }
    }
}

impl Table {
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.entries.get(key).map(|e| &e.node)
    }

    pub fn str(&self, key: &str) -> Option<(&str, &Span)> {
        self.get(key).and_then(|n| n.as_str().map(|s| (s, &n.span)))
    }

    pub fn bool(&self, key: &str) -> Option<bool> {
        match self.get(key).map(|n| &n.value) {
            Some(NodeValue::Bool(b)) => Some(*b),
            _ => None,
        }
    }

    pub fn table(&self, key: &str) -> Option<&Table> {
        match self.get(key).map(|n| &n.value) {
            Some(NodeValue::Table(t)) => Some(t),
            _ => None,
        }
    }

    /// Elements of an array of strings, with their spans.
    pub fn strings(&self, key: &str) -> Vec<(&str, &Span)> {
        match self.get(key).map(|n| &n.value) {
            Some(NodeValue::Array(items)) => items
                .iter()
                .filter_map(|n| n.as_str().map(|s| (s, &n.span)))
                .collect(),
            _ => Vec::new(),
        }
    }

    /// Elements of an array, whatever their kind.
    pub fn items(&self, key: &str) -> &[Node] {
        match self.get(key).map(|n| &n.value) {
            Some(NodeValue::Array(items)) => items,
            _ => &[],
        }
    }

    /// Elements of an array of tables.
    pub fn tables(&self, key: &str) -> Vec<(&Table, &Span)> {
        match self.get(key).map(|n| &n.value) {
            Some(NodeValue::Array(items)) => items
                .iter()
                .filter_map(|n| match &n.value {
                    NodeValue::Table(t) => Some((t, &n.span)),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        }
    }

    /// Entries of a table of strings (`env`, `labels`): key, key span, value, value span.
    pub fn string_map(&self, key: &str) -> Vec<(&str, &Span, &str, &Span)> {
        match self.get(key).map(|n| &n.value) {
            Some(NodeValue::Table(t)) => t
                .entries
                .iter()
                .filter_map(|(k, e)| {
                    e.node
                        .as_str()
                        .map(|v| (k.as_str(), &e.key_span, v, &e.node.span))
                })
                .collect(),
            _ => Vec::new(),
        }
    }
}

/// Parses `source` as TOML and checks it against `fields`. Returns the tree
/// of what is well-formed; problems go to `diags`.
///
/// The TOML is read by the `toml` crate's borrowed, spanned document
/// (`DeTable`): strings that need no unescaping are not copied, and no
/// formatting (comments, whitespace) is kept, which `toml_edit` would keep
/// for nothing here.
pub fn parse(
    source: &Arc<Source>,
    fields: &'static [Field],
    diags: &mut Vec<Diagnostic>,
) -> Option<Table> {
    let doc = match DeTable::parse(&source.text) {
        Ok(doc) => doc,
        Err(e) => {
            let range = e.span().unwrap_or(0..0);
            let msg = e.message().trim_end().replace('\n', "; ");
            diags.push(Diagnostic::error(
                Span::new(source, range),
                "",
                format!("invalid TOML: {msg}"),
            ));
            return None;
        }
    };
    let mut w = Walker { source, diags };
    let whole = Span::file(source);
    Some(w.table(doc.get_ref(), fields, &KeyPath::Root, &whole))
}

struct Walker<'a> {
    source: &'a Arc<Source>,
    diags: &'a mut Vec<Diagnostic>,
}

/// Where a value stands (`container.ports[1]`), built as the walk descends
/// and spelt out only for a diagnostic.
#[derive(Clone, Copy)]
enum KeyPath<'a> {
    Root,
    Key(&'a KeyPath<'a>, &'a str),
    Index(&'a KeyPath<'a>, usize),
}

impl KeyPath<'_> {
    fn is_root(&self) -> bool {
        matches!(self, KeyPath::Root)
    }

    fn render(&self) -> String {
        let mut out = String::new();
        self.render_into(&mut out);
        out
    }

    fn render_into(&self, out: &mut String) {
        match self {
            KeyPath::Root => {}
            KeyPath::Key(parent, key) => {
                parent.render_into(out);
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            KeyPath::Index(parent, i) => {
                parent.render_into(out);
                out.push('[');
                out.push_str(&i.to_string());
                out.push(']');
            }
        }
    }

    /// Values under `secrets` are never quoted back: they may be secret
    /// values written where a reference belongs.
    fn is_secret(&self) -> bool {
        match self {
            KeyPath::Root => false,
            // Each dotted part, as the rendered path would be split: a
            // quoted key holding a dot is read the same way.
            KeyPath::Key(parent, key) => {
                key.split('.').any(|p| p.starts_with("secrets")) || parent.is_secret()
            }
            KeyPath::Index(parent, _) => parent.is_secret(),
        }
    }
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::String => "a string",
        Kind::Bool => "a boolean",
        Kind::Integer => "an integer",
        Kind::Float => "a number",
        Kind::StringArray => "an array of strings",
        Kind::StringMap => "a table of strings",
        Kind::Table(_) | Kind::NamedTables(_) => "a table",
        Kind::TableArray(_) => "an array of tables",
        Kind::IntOrTables(_) => "a table of integers or tables",
        Kind::StringOrTableArray(_) => "an array of strings or tables",
    }
}

/// A TOML integer's value; `None` beyond 64 bits.
fn int_value(i: &toml::de::DeInteger<'_>) -> Option<i64> {
    i64::from_str_radix(i.as_str(), i.radix()).ok()
}

fn float_value(x: &toml::de::DeFloat<'_>) -> f64 {
    x.as_str().parse().unwrap_or(f64::NAN)
}

fn found_kind(value: &DeValue<'_>) -> String {
    match value {
        DeValue::String(s) => format!("string {}", diag::found(s)),
        DeValue::Integer(i) => match int_value(i) {
            Some(v) => format!("integer {v}"),
            None => format!("integer {i}"),
        },
        DeValue::Float(x) => format!("float {}", float_value(x)),
        DeValue::Boolean(b) => format!("boolean {b}"),
        DeValue::Datetime(_) => "a date-time".to_string(),
        DeValue::Array(_) => "an array".to_string(),
        DeValue::Table(_) => "a table".to_string(),
    }
}

type Item<'i> = Spanned<DeValue<'i>>;

impl Walker<'_> {
    fn span(&self, range: std::ops::Range<usize>, fallback: &Span) -> Span {
        // The document's own span is empty (0..0): fall back to the file.
        if range.is_empty() && range.start == 0 {
            fallback.clone()
        } else {
            Span::new(self.source, range)
        }
    }

    fn error(&mut self, span: Span, path: &KeyPath<'_>, msg: String) {
        let mut d = Diagnostic::error(span, path.render(), msg);
        if path.is_secret() {
            d.redact = true;
            // Keep the expectation, drop whatever was found.
            if let Some(i) = d.message.find(", found ") {
                d.message.truncate(i);
                d.message.push_str(" (the value found is not shown)");
            }
        }
        self.diags.push(d);
    }

    fn table(
        &mut self,
        t: &DeTable<'_>,
        fields: &'static [Field],
        path: &KeyPath<'_>,
        at: &Span,
    ) -> Table {
        let mut out = Table::default();
        for (key, item) in t.iter() {
            let key_span = self.span(key.span(), at);
            let name: &str = key.get_ref();
            let full = KeyPath::Key(path, name);
            let Some(field) = fields.iter().find(|f| same(f.name, name)) else {
                let known: Vec<&str> = fields.iter().map(|f| f.name).collect();
                let mut d = Diagnostic::error(
                    key_span,
                    full.render(),
                    format!(
                        "unknown key `{name}`{}",
                        if path.is_root() {
                            String::new()
                        } else {
                            format!(" in `{}`", path.render())
                        }
                    ),
                )
                .with_help(format!("expected one of: {}", known.join(", ")));
                if path.is_secret() {
                    d.redact = true;
                    d = d.with_help(
                        "a secret is a reference (`name`, `target`, `mode`); its value must never appear in a manifest: create it with `podman secret create`",
                    );
                }
                self.diags.push(d);
                continue;
            };
            let value_span = self.span(item.span(), &key_span);
            if let Some(node) = self.item(item, field, &full, &value_span) {
                out.entries.push(name.to_string(), Entry { key_span, node });
            }
        }
        out.entries.sort();
        for field in fields.iter().filter(|f| f.required) {
            if !out.entries.contains_key(field.name) && t.get(field.name).is_none() {
                self.error(
                    at.clone(),
                    &KeyPath::Key(path, field.name),
                    format!(
                        "missing required key `{}` ({})",
                        field.name,
                        kind_name(field.kind)
                    ),
                );
            }
        }
        out
    }

    fn string(&mut self, item: &DeValue<'_>, path: &KeyPath<'_>, span: &Span) -> Option<Node> {
        match item {
            DeValue::String(v) => {
                if v.contains('\0') {
                    self.error(
                        span.clone(),
                        path,
                        "expected a string without NUL characters, found a NUL (\\u0000)"
                            .to_string(),
                    );
                    return None;
                }
                Some(Node {
                    span: span.clone(),
                    value: NodeValue::Str(v.to_string()),
                })
            }
            other => {
                self.error(
                    span.clone(),
                    path,
                    format!("expected a string, found {}", found_kind(other)),
                );
                None
            }
        }
    }

    /// Checks `item` against `field`'s kind (and allowed values); `None`
    /// when it does not fit, reported with what was expected and found.
    fn item(
        &mut self,
        item: &Item<'_>,
        field: &Field,
        path: &KeyPath<'_>,
        span: &Span,
    ) -> Option<Node> {
        let v = item.get_ref();
        let value = match field.kind {
            Kind::String => self.one_of(v, field.one_of, path, span)?,
            Kind::Bool | Kind::Integer | Kind::Float => self.scalar(v, field.kind, path, span)?,
            Kind::StringArray => self.string_array(v, path, span)?,
            Kind::StringMap => self.string_map(v, path, span)?,
            Kind::Table(fields) => match v {
                DeValue::Table(t) => NodeValue::Table(self.table(t, fields, path, span)),
                _ => return self.wrong_kind(v, field.kind, path, span),
            },
            Kind::NamedTables(fields) => self.named_tables(v, fields, path, span)?,
            Kind::IntOrTables(fields) => self.int_or_tables(v, fields, path, span)?,
            Kind::TableArray(fields) => self.table_array(v, fields, path, span)?,
            Kind::StringOrTableArray(fields) => {
                self.string_or_table_array(v, fields, path, span)?
            }
        };
        Some(Node {
            span: span.clone(),
            value,
        })
    }

    /// Reports that `item` is not of `kind`.
    fn wrong_kind<T>(
        &mut self,
        item: &DeValue<'_>,
        kind: Kind,
        path: &KeyPath<'_>,
        span: &Span,
    ) -> Option<T> {
        let expected = match kind {
            Kind::Bool => "a boolean (true or false)",
            kind => kind_name(kind),
        };
        self.error(
            span.clone(),
            path,
            format!("expected {expected}, found {}", found_kind(item)),
        );
        None
    }

    /// A string, one of `allowed` when that is not empty.
    fn one_of(
        &mut self,
        item: &DeValue<'_>,
        allowed: &[&str],
        path: &KeyPath<'_>,
        span: &Span,
    ) -> Option<NodeValue> {
        let node = self.string(item, path, span)?;
        let s = node.as_str().unwrap_or_default();
        if !allowed.is_empty() && !allowed.contains(&s) {
            let allowed: Vec<String> = allowed.iter().map(|v| format!("\"{v}\"")).collect();
            self.error(
                span.clone(),
                path,
                format!(
                    "expected one of {}, found {}",
                    allowed.join(", "),
                    diag::found(s)
                ),
            );
            return None;
        }
        Some(node.value)
    }

    /// A boolean, an integer, or a number (an integer is a number too).
    fn scalar(
        &mut self,
        item: &DeValue<'_>,
        kind: Kind,
        path: &KeyPath<'_>,
        span: &Span,
    ) -> Option<NodeValue> {
        match (kind, item) {
            (Kind::Bool, DeValue::Boolean(b)) => Some(NodeValue::Bool(*b)),
            (Kind::Integer | Kind::Float, DeValue::Integer(i)) => {
                let Some(v) = int_value(i) else {
                    self.error(
                        span.clone(),
                        path,
                        format!("expected an integer that fits in 64 bits, found {i}"),
                    );
                    return None;
                };
                Some(if matches!(kind, Kind::Integer) {
                    NodeValue::Int(v)
                } else {
                    NodeValue::Float(v as f64)
                })
            }
            (Kind::Float, DeValue::Float(x)) => Some(NodeValue::Float(float_value(x))),
            (kind, other) => self.wrong_kind(other, kind, path, span),
        }
    }

    /// An array of strings; `None` when any element is not one (each
    /// reported with its index).
    fn string_array(
        &mut self,
        item: &DeValue<'_>,
        path: &KeyPath<'_>,
        span: &Span,
    ) -> Option<NodeValue> {
        let DeValue::Array(a) = item else {
            return self.wrong_kind(item, Kind::StringArray, path, span);
        };
        let mut items = Vec::with_capacity(a.len());
        let mut ok = true;
        for (i, v) in a.iter().enumerate() {
            let s = self.span(v.span(), span);
            match self.string(v.get_ref(), &KeyPath::Index(path, i), &s) {
                Some(n) => items.push(n),
                None => ok = false,
            }
        }
        ok.then_some(NodeValue::Array(items))
    }

    /// An array whose elements are strings or inline tables checked
    /// against `fields`; `None` when any element is neither (each reported
    /// with its index).
    fn string_or_table_array(
        &mut self,
        item: &DeValue<'_>,
        fields: &'static [Field],
        path: &KeyPath<'_>,
        span: &Span,
    ) -> Option<NodeValue> {
        let DeValue::Array(a) = item else {
            return self.wrong_kind(item, Kind::StringOrTableArray(fields), path, span);
        };
        let mut items = Vec::with_capacity(a.len());
        let mut ok = true;
        for (i, v) in a.iter().enumerate() {
            let p = KeyPath::Index(path, i);
            let s = self.span(v.span(), span);
            match v.get_ref() {
                DeValue::Table(t) => {
                    let table = self.table(t, fields, &p, &s);
                    items.push(Node {
                        span: s,
                        value: NodeValue::Table(table),
                    });
                }
                DeValue::String(_) => match self.string(v.get_ref(), &p, &s) {
                    Some(n) => items.push(n),
                    None => ok = false,
                },
                other => {
                    let found = found_kind(other);
                    self.error(
                        s,
                        &p,
                        format!("expected a string or a table, found {found}"),
                    );
                    ok = false;
                }
            }
        }
        ok.then_some(NodeValue::Array(items))
    }

    /// A table whose values are all strings (any keys).
    fn string_map(
        &mut self,
        item: &DeValue<'_>,
        path: &KeyPath<'_>,
        span: &Span,
    ) -> Option<NodeValue> {
        let DeValue::Table(t) = item else {
            return self.wrong_kind(item, Kind::StringMap, path, span);
        };
        let mut out = Table::default();
        let mut ok = true;
        for (k, v) in t.iter() {
            let ks = self.span(k.span(), span);
            let name: &str = k.get_ref();
            let vs = self.span(v.span(), &ks);
            match self.string(v.get_ref(), &KeyPath::Key(path, name), &vs) {
                Some(n) => {
                    out.entries.push(
                        name.to_string(),
                        Entry {
                            key_span: ks,
                            node: n,
                        },
                    );
                }
                None => ok = false,
            }
        }
        out.entries.sort();
        ok.then_some(NodeValue::Table(out))
    }

    /// A table of tables named by the user (`[networks.<name>]`), each
    /// checked against `fields`.
    fn named_tables(
        &mut self,
        item: &DeValue<'_>,
        fields: &'static [Field],
        path: &KeyPath<'_>,
        span: &Span,
    ) -> Option<NodeValue> {
        let DeValue::Table(t) = item else {
            return self.wrong_kind(item, Kind::NamedTables(fields), path, span);
        };
        let mut out = Table::default();
        for (k, v) in t.iter() {
            let ks = self.span(k.span(), span);
            let name: &str = k.get_ref();
            let p = KeyPath::Key(path, name);
            let vs = self.span(v.span(), &ks);
            match v.get_ref() {
                DeValue::Table(inner) => {
                    let table = self.table(inner, fields, &p, &ks);
                    out.entries.push(
                        name.to_string(),
                        Entry {
                            key_span: ks,
                            node: Node {
                                span: vs,
                                value: NodeValue::Table(table),
                            },
                        },
                    );
                }
                other => {
                    let found = found_kind(other);
                    self.error(vs, &p, format!("expected a table, found {found}"))
                }
            }
        }
        out.entries.sort();
        Some(NodeValue::Table(out))
    }

    /// A table of user-named entries, each an integer or a table checked
    /// against `fields`; an entry of another type is reported and left out.
    fn int_or_tables(
        &mut self,
        item: &DeValue<'_>,
        fields: &'static [Field],
        path: &KeyPath<'_>,
        span: &Span,
    ) -> Option<NodeValue> {
        let DeValue::Table(t) = item else {
            return self.wrong_kind(item, Kind::IntOrTables(fields), path, span);
        };
        let mut out = Table::default();
        for (k, v) in t.iter() {
            let ks = self.span(k.span(), span);
            let name: &str = k.get_ref();
            let p = KeyPath::Key(path, name);
            let vs = self.span(v.span(), &ks);
            let value = match v.get_ref() {
                DeValue::Integer(i) if int_value(i).is_some() => {
                    NodeValue::Int(int_value(i).unwrap_or_default())
                }
                DeValue::Table(inner) => NodeValue::Table(self.table(inner, fields, &p, &vs)),
                other => {
                    let names: Vec<&str> = fields.iter().map(|f| f.name).collect();
                    let found = found_kind(other);
                    self.error(
                        vs,
                        &p,
                        format!(
                            "expected an integer or a table of {}, found {found}",
                            names.join(", "),
                        ),
                    );
                    continue;
                }
            };
            out.entries.push(
                name.to_string(),
                Entry {
                    key_span: ks,
                    node: Node { span: vs, value },
                },
            );
        }
        out.entries.sort();
        Some(NodeValue::Table(out))
    }

    /// An array of tables, as `[[key]]` sections or an inline array, each
    /// checked against `fields`; an element that is not a table is
    /// reported and left out.
    fn table_array(
        &mut self,
        item: &DeValue<'_>,
        fields: &'static [Field],
        path: &KeyPath<'_>,
        span: &Span,
    ) -> Option<NodeValue> {
        let DeValue::Array(a) = item else {
            return self.wrong_kind(item, Kind::TableArray(fields), path, span);
        };
        let mut items = Vec::with_capacity(a.len());
        for (i, v) in a.iter().enumerate() {
            let p = KeyPath::Index(path, i);
            let s = self.span(v.span(), span);
            match v.get_ref() {
                DeValue::Table(t) => {
                    let table = self.table(t, fields, &p, &s);
                    items.push(Node {
                        span: s,
                        value: NodeValue::Table(table),
                    });
                }
                other => {
                    let found = found_kind(other);
                    self.error(s, &p, format!("expected a table, found {found}"));
                }
            }
        }
        Some(NodeValue::Array(items))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(text: &str) -> Vec<Diagnostic> {
        let source = Source::new("t.toml", text);
        let mut diags = Vec::new();
        parse(&source, schema::APP, &mut diags);
        diags
    }

    #[test]
    fn a_value_under_a_key_part_named_secrets_is_never_quoted_back() {
        // A quoted key holding a dot is split as the dotted path reads.
        let d = errors("[container]\nimage = \"x\"\nenv = { \"a.secrets\" = 12345 }\n");
        let d = d
            .iter()
            .find(|d| d.key == "container.env.a.secrets")
            .unwrap();
        assert!(d.redact, "{d:?}");
        assert!(!d.message.contains("12345"), "{}", d.message);
        let d = errors("[container]\nimage = \"x\"\nenv = { PLAIN = 12345 }\n");
        assert!(d.iter().any(|d| d.message.contains("12345") && !d.redact));
    }
}
