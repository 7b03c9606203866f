//! TOML in, a tree of spanned values out, checked against the manifest's
//! shape (`schema`): types, required keys, allowed values, unknown keys.
//!
//! This layer knows nothing of what values mean; `model` does. It must never
//! stop at the first problem: it records a diagnostic and walks on.

pub mod diag;
pub mod schema;

use std::collections::BTreeMap;
use std::sync::Arc;

use toml_edit::{Item, Value};

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
    pub entries: BTreeMap<String, Entry>,
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
pub fn parse(
    source: &Arc<Source>,
    fields: &'static [Field],
    diags: &mut Vec<Diagnostic>,
) -> Option<Table> {
    let doc = match toml_edit::Document::parse(source.text.clone()) {
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
    Some(w.table(doc.as_table(), fields, "", &whole))
}

struct Walker<'a> {
    source: &'a Arc<Source>,
    diags: &'a mut Vec<Diagnostic>,
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
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

/// Values under `secrets` are never quoted back: they may be secret values
/// written where a reference belongs.
fn is_secret_path(path: &str) -> bool {
    path.split('.').any(|p| p.starts_with("secrets"))
}

fn found_kind(item: &Item) -> String {
    match item {
        Item::Value(Value::String(s)) => format!("string {}", diag::found(s.value())),
        Item::Value(Value::Integer(i)) => format!("integer {}", i.value()),
        Item::Value(Value::Float(x)) => format!("float {}", x.value()),
        Item::Value(Value::Boolean(b)) => format!("boolean {}", b.value()),
        Item::Value(Value::Datetime(_)) => "a date-time".to_string(),
        Item::Value(Value::Array(_)) => "an array".to_string(),
        Item::Value(Value::InlineTable(_)) | Item::Table(_) => "a table".to_string(),
        Item::ArrayOfTables(_) => "an array of tables".to_string(),
        Item::None => "nothing".to_string(),
    }
}

impl Walker<'_> {
    fn span(&self, range: Option<std::ops::Range<usize>>, fallback: &Span) -> Span {
        match range {
            Some(r) => Span::new(self.source, r),
            None => fallback.clone(),
        }
    }

    fn error(&mut self, span: Span, key: &str, msg: String) {
        let mut d = Diagnostic::error(span, key, msg);
        if is_secret_path(key) {
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
        t: &dyn toml_edit::TableLike,
        fields: &'static [Field],
        path: &str,
        at: &Span,
    ) -> Table {
        let mut out = Table::default();
        for (key, item) in t.iter() {
            let key_span = self.span(t.key(key).and_then(|k| k.span()), at);
            let full = join(path, key);
            let Some(field) = fields.iter().find(|f| f.name == key) else {
                let known: Vec<&str> = fields.iter().map(|f| f.name).collect();
                let mut d = Diagnostic::error(
                    key_span,
                    &full,
                    format!(
                        "unknown key `{key}`{}",
                        if path.is_empty() {
                            String::new()
                        } else {
                            format!(" in `{path}`")
                        }
                    ),
                )
                .with_help(format!("expected one of: {}", known.join(", ")));
                if is_secret_path(path) {
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
                out.entries
                    .insert(key.to_string(), Entry { key_span, node });
            }
        }
        for field in fields.iter().filter(|f| f.required) {
            if !out.entries.contains_key(field.name) && t.get(field.name).is_none() {
                self.error(
                    at.clone(),
                    &join(path, field.name),
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

    fn string(&mut self, item: &Item, path: &str, span: &Span) -> Option<Node> {
        match item {
            Item::Value(Value::String(s)) => {
                let v = s.value();
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
                    value: NodeValue::Str(v.clone()),
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
    fn item(&mut self, item: &Item, field: &Field, path: &str, span: &Span) -> Option<Node> {
        let value = match field.kind {
            Kind::String => self.one_of(item, field.one_of, path, span)?,
            Kind::Bool | Kind::Integer | Kind::Float => {
                self.scalar(item, field.kind, path, span)?
            }
            Kind::StringArray => self.string_array(item, path, span)?,
            Kind::StringMap => self.string_map(item, path, span)?,
            Kind::Table(fields) => match item.as_table_like() {
                Some(t) => NodeValue::Table(self.table(t, fields, path, span)),
                None => return self.wrong_kind(item, field.kind, path, span),
            },
            Kind::NamedTables(fields) => self.named_tables(item, fields, path, span)?,
            Kind::IntOrTables(fields) => self.int_or_tables(item, fields, path, span)?,
            Kind::TableArray(fields) => self.table_array(item, fields, path, span)?,
            Kind::StringOrTableArray(fields) => {
                self.string_or_table_array(item, fields, path, span)?
            }
        };
        Some(Node {
            span: span.clone(),
            value,
        })
    }

    /// Reports that `item` is not of `kind`.
    fn wrong_kind<T>(&mut self, item: &Item, kind: Kind, path: &str, span: &Span) -> Option<T> {
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
        item: &Item,
        allowed: &[&str],
        path: &str,
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
    fn scalar(&mut self, item: &Item, kind: Kind, path: &str, span: &Span) -> Option<NodeValue> {
        match (kind, item) {
            (Kind::Bool, Item::Value(Value::Boolean(b))) => Some(NodeValue::Bool(*b.value())),
            (Kind::Integer, Item::Value(Value::Integer(i))) => Some(NodeValue::Int(*i.value())),
            (Kind::Float, Item::Value(Value::Float(x))) => Some(NodeValue::Float(*x.value())),
            (Kind::Float, Item::Value(Value::Integer(i))) => {
                Some(NodeValue::Float(*i.value() as f64))
            }
            (kind, other) => self.wrong_kind(other, kind, path, span),
        }
    }

    /// An array of strings; `None` when any element is not one (each
    /// reported with its index).
    fn string_array(&mut self, item: &Item, path: &str, span: &Span) -> Option<NodeValue> {
        let Item::Value(Value::Array(a)) = item else {
            return self.wrong_kind(item, Kind::StringArray, path, span);
        };
        let mut items = Vec::new();
        let mut ok = true;
        for (i, v) in a.iter().enumerate() {
            let p = format!("{path}[{i}]");
            let s = self.span(v.span(), span);
            match self.string(&Item::Value(v.clone()), &p, &s) {
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
        item: &Item,
        fields: &'static [Field],
        path: &str,
        span: &Span,
    ) -> Option<NodeValue> {
        let Item::Value(Value::Array(a)) = item else {
            return self.wrong_kind(item, Kind::StringOrTableArray(fields), path, span);
        };
        let mut items = Vec::new();
        let mut ok = true;
        for (i, v) in a.iter().enumerate() {
            let p = format!("{path}[{i}]");
            let s = self.span(v.span(), span);
            match v {
                Value::InlineTable(t) => {
                    let table = self.table(t, fields, &p, &s);
                    items.push(Node {
                        span: s,
                        value: NodeValue::Table(table),
                    });
                }
                Value::String(_) => match self.string(&Item::Value(v.clone()), &p, &s) {
                    Some(n) => items.push(n),
                    None => ok = false,
                },
                other => {
                    let found = found_kind(&Item::Value(other.clone()));
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
    fn string_map(&mut self, item: &Item, path: &str, span: &Span) -> Option<NodeValue> {
        let Some(t) = item.as_table_like() else {
            return self.wrong_kind(item, Kind::StringMap, path, span);
        };
        let mut out = Table::default();
        let mut ok = true;
        for (k, v) in t.iter() {
            let ks = self.span(t.key(k).and_then(|k| k.span()), span);
            let p = join(path, k);
            let vs = self.span(v.span(), &ks);
            match self.string(v, &p, &vs) {
                Some(n) => {
                    out.entries.insert(
                        k.to_string(),
                        Entry {
                            key_span: ks,
                            node: n,
                        },
                    );
                }
                None => ok = false,
            }
        }
        ok.then_some(NodeValue::Table(out))
    }

    /// A table of tables named by the user (`[networks.<name>]`), each
    /// checked against `fields`.
    fn named_tables(
        &mut self,
        item: &Item,
        fields: &'static [Field],
        path: &str,
        span: &Span,
    ) -> Option<NodeValue> {
        let Some(t) = item.as_table_like() else {
            return self.wrong_kind(item, Kind::NamedTables(fields), path, span);
        };
        let mut out = Table::default();
        for (k, v) in t.iter() {
            let ks = self.span(t.key(k).and_then(|k| k.span()), span);
            let p = join(path, k);
            let vs = self.span(v.span(), &ks);
            match v.as_table_like() {
                Some(inner) => {
                    let table = self.table(inner, fields, &p, &ks);
                    out.entries.insert(
                        k.to_string(),
                        Entry {
                            key_span: ks,
                            node: Node {
                                span: vs,
                                value: NodeValue::Table(table),
                            },
                        },
                    );
                }
                None => self.error(vs, &p, format!("expected a table, found {}", found_kind(v))),
            }
        }
        Some(NodeValue::Table(out))
    }

    /// A table of user-named entries, each an integer or a table checked
    /// against `fields`; an entry of another type is reported and left out.
    fn int_or_tables(
        &mut self,
        item: &Item,
        fields: &'static [Field],
        path: &str,
        span: &Span,
    ) -> Option<NodeValue> {
        let Some(t) = item.as_table_like() else {
            return self.wrong_kind(item, Kind::IntOrTables(fields), path, span);
        };
        let mut out = Table::default();
        for (k, v) in t.iter() {
            let ks = self.span(t.key(k).and_then(|k| k.span()), span);
            let p = join(path, k);
            let vs = self.span(v.span(), &ks);
            let value = match (v, v.as_table_like()) {
                (Item::Value(Value::Integer(i)), _) => NodeValue::Int(*i.value()),
                (_, Some(inner)) => NodeValue::Table(self.table(inner, fields, &p, &vs)),
                _ => {
                    let names: Vec<&str> = fields.iter().map(|f| f.name).collect();
                    self.error(
                        vs,
                        &p,
                        format!(
                            "expected an integer or a table of {}, found {}",
                            names.join(", "),
                            found_kind(v)
                        ),
                    );
                    continue;
                }
            };
            out.entries.insert(
                k.to_string(),
                Entry {
                    key_span: ks,
                    node: Node { span: vs, value },
                },
            );
        }
        Some(NodeValue::Table(out))
    }

    /// An array of tables, as `[[key]]` sections or an inline array, each
    /// checked against `fields`; an element that is not a table is
    /// reported and left out.
    fn table_array(
        &mut self,
        item: &Item,
        fields: &'static [Field],
        path: &str,
        span: &Span,
    ) -> Option<NodeValue> {
        let mut items = Vec::new();
        match item {
            Item::ArrayOfTables(a) => {
                for (i, t) in a.iter().enumerate() {
                    let p = format!("{path}[{i}]");
                    let s = self.span(t.span(), span);
                    let table = self.table(t, fields, &p, &s);
                    items.push(Node {
                        span: s,
                        value: NodeValue::Table(table),
                    });
                }
            }
            Item::Value(Value::Array(a)) => {
                for (i, v) in a.iter().enumerate() {
                    let p = format!("{path}[{i}]");
                    let s = self.span(v.span(), span);
                    match v.as_inline_table() {
                        Some(t) => {
                            let table = self.table(t, fields, &p, &s);
                            items.push(Node {
                                span: s,
                                value: NodeValue::Table(table),
                            });
                        }
                        None => {
                            let found = found_kind(&Item::Value(v.clone()));
                            self.error(s, &p, format!("expected a table, found {found}"));
                        }
                    }
                }
            }
            other => return self.wrong_kind(other, Kind::TableArray(fields), path, span),
        }
        Some(NodeValue::Array(items))
    }
}
