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
