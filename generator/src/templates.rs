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

/// The shape every built-in unit template (`quadlet/*.j2`, `systemd/*.j2`)
/// has: a header line naming `{{ source }}`, then sections, each `[Name]`
/// and a loop writing its entries as `key=value`, with a blank line
/// between sections.
struct UnitLayout {
    header: (&'static str, &'static str),
    /// Each section's name as written and the variable holding its entries.
    sections: Vec<(&'static str, &'static str)>,
}

impl UnitLayout {
    /// Reads the layout out of a template's text; `None` unless the text is
    /// exactly of this shape.
    fn parse(text: &'static str) -> Option<UnitLayout> {
        let mut lines = text.lines();
        let header = lines.next()?.split_once("{{ source }}")?;
        if header.0.contains("{{") || header.1.contains("{{") {
            return None;
        }
        let mut sections = Vec::new();
        // Not a `for`: the body takes the section's other lines itself.
        #[allow(clippy::while_let_on_iterator)]
        while let Some(head) = lines.next() {
            // Sections after the first follow a blank line.
            let head = if sections.is_empty() {
                head
            } else if head.is_empty() {
                lines.next()?
            } else {
                return None;
            };
            let name = head.strip_prefix('[')?.strip_suffix(']')?;
            let var = lines
                .next()?
                .strip_prefix("{% for e in ")?
                .strip_suffix(" %}")?;
            if lines.next()? != "{{ e.key }}={{ e.value }}" || lines.next()? != "{% endfor %}" {
                return None;
            }
            let plain = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric());
            if !plain(name) || !plain(var) {
                return None;
            }
            sections.push((name, var));
        }
        (!sections.is_empty()).then_some(UnitLayout { header, sections })
    }

    /// The built-in template `name`'s layout, read once.
    fn of(name: &str) -> Option<&'static UnitLayout> {
        static LAYOUTS: std::sync::OnceLock<Vec<(&'static str, Option<UnitLayout>)>> =
            std::sync::OnceLock::new();
        LAYOUTS
            .get_or_init(|| {
                DEFAULTS
                    .iter()
                    .map(|(n, text)| (*n, UnitLayout::parse(text)))
                    .collect()
            })
            .iter()
            .find(|(n, _)| *n == name)?
            .1
            .as_ref()
    }

    /// The text the template renders for `source` and `sections` (each
    /// variable with its entries); `None` when a variable is missing.
    fn write(&self, source: &str, sections: &[(&str, &[(String, String)])]) -> Option<String> {
        let mut size = self.header.0.len() + source.len() + self.header.1.len() + 1;
        let mut lists = Vec::with_capacity(self.sections.len());
        for (name, var) in &self.sections {
            let (_, list) = sections.iter().find(|(v, _)| v == var)?;
            size += name.len() + 4;
            size += list
                .iter()
                .map(|(k, v)| k.len() + v.len() + 2)
                .sum::<usize>();
            lists.push((name, *list));
        }
        let mut s = String::with_capacity(size);
        s.push_str(self.header.0);
        s.push_str(source);
        s.push_str(self.header.1);
        s.push('\n');
        for (i, (name, list)) in lists.into_iter().enumerate() {
            if i > 0 {
                s.push('\n');
            }
            s.push('[');
            s.push_str(name);
            s.push_str("]\n");
            for (k, v) in list {
                s.push_str(k);
                s.push('=');
                s.push_str(v);
                s.push('\n');
            }
        }
        // One trailing newline, as `Templates::render` leaves it.
        while s.ends_with('\n') {
            s.pop();
        }
        s.push('\n');
        Some(s)
    }
}

impl Templates {
    /// Renders the unit template `name` with `source` (already escaped),
    /// each section variable's entries and the `extra` variables. A
    /// built-in template not overridden is laid out directly, without
    /// building template values for every entry (`unit_layout_is_the_
    /// template_s` checks it is byte for byte what the template renders);
    /// an overridden one is rendered by the template engine.
    pub fn render_unit(
        &self,
        name: &str,
        source: &str,
        sections: &[(&'static str, &[(String, String)])],
        extra: impl FnOnce() -> Vec<(&'static str, Value)>,
    ) -> Result<String, TemplateError> {
        if !self.overridden.iter().any(|t| t == name)
            && let Some(text) = UnitLayout::of(name).and_then(|l| l.write(source, sections))
        {
            return Ok(text);
        }
        let mut vars: BTreeMap<&str, Value> = extra().into_iter().collect();
        vars.insert("source", safe(source.to_string()));
        for (var, list) in sections {
            vars.insert(var, entries(list));
        }
        self.render(name, &Value::from(vars))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(n: usize, tag: &str) -> Vec<(String, String)> {
        (0..n)
            .map(|i| (format!("Key{i}"), format!("{tag} value {i} \\ \"q\" %h $x")))
            .collect()
    }

    #[test]
    fn unit_layout_is_the_template_s() {
        let templates = Templates::load(None).unwrap();
        let units: Vec<&str> = DEFAULTS
            .iter()
            .map(|(n, _)| *n)
            .filter(|n| n.starts_with("quadlet/") || n.starts_with("systemd/"))
            .collect();
        assert_eq!(units.len(), 5, "{units:?}");
        for name in units {
            let layout =
                UnitLayout::of(name).unwrap_or_else(|| panic!("{name} is not of the unit layout"));
            for sizes in [[0, 0, 0, 0], [1, 0, 2, 0], [3, 5, 1, 1], [0, 2, 0, 3]] {
                let lists: Vec<Vec<(String, String)>> = layout
                    .sections
                    .iter()
                    .zip(sizes)
                    .map(|((_, var), n)| list(n, var))
                    .collect();
                let sections: Vec<(&'static str, &[(String, String)])> = layout
                    .sections
                    .iter()
                    .zip(&lists)
                    .map(|((_, var), l)| (*var, l.as_slice()))
                    .collect();
                let direct = layout.write("apps/x.toml", &sections).unwrap();
                let mut vars: BTreeMap<&str, Value> = BTreeMap::new();
                vars.insert("source", safe("apps/x.toml".into()));
                vars.insert("name", safe("x".into()));
                for (var, l) in &sections {
                    vars.insert(var, entries(l));
                }
                let rendered = templates.render(name, &Value::from(vars)).unwrap();
                assert_eq!(direct, rendered, "{name} with {sizes:?}");
            }
        }
    }
}
