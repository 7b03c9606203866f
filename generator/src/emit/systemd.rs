//! systemd units for `[[jobs]]`: `<app>-<job>.timer` firing a oneshot
//! `<app>-<job>.service`.

use super::{EmitContext, EmitError, unitfile};
use crate::escape::systemd as esc;
use crate::model::Fleet;
use crate::model::time::format_timespan;
use crate::output_file::OutputFile;

type Entries = Vec<(String, String)>;

fn push(list: &mut Entries, key: &str, value: String) {
    list.push((key.to_string(), value));
}

pub fn emit(fleet: &Fleet, ctx: &mut EmitContext<'_>) -> Result<Vec<OutputFile>, EmitError> {
    let per_app = super::per_app(fleet, ctx, |app, ctx| {
        let mut files = Vec::new();
        for job in &app.jobs {
            let unit_name = format!("{}-{}", app.name, job.name);
            let source = esc::text(&app.source);

            let mut unit = Entries::new();
            push(
                &mut unit,
                "Description",
                esc::text(&format!("windlass job {} of {}", job.name, app.name)),
            );
            push(&mut unit, "After", app.service_name());
            let mut service = Entries::new();
            push(&mut service, "Type", "oneshot".into());
            push(&mut service, "ExecStart", esc::exec_line(&job.command));
            if let Some(t) = job.timeout {
                push(&mut service, "TimeoutStartSec", format_timespan(t));
            }
            files.push(render(
                ctx,
                "systemd/job.service.j2",
                format!("systemd/{unit_name}.service"),
                &source,
                &[("unit", &unit), ("service", &service)],
            )?);

            let mut unit = Entries::new();
            push(
                &mut unit,
                "Description",
                esc::text(&format!(
                    "windlass timer for job {} of {}",
                    job.name, app.name
                )),
            );
            let mut timer = Entries::new();
            push(&mut timer, "OnCalendar", esc::text(&job.schedule));
            push(&mut timer, "Persistent", job.persistent.to_string());
            if let Some(d) = job.randomized_delay {
                push(&mut timer, "RandomizedDelaySec", format_timespan(d));
            }
            let mut install = Entries::new();
            push(&mut install, "WantedBy", "timers.target".into());
            files.push(render(
                ctx,
                "systemd/job.timer.j2",
                format!("systemd/{unit_name}.timer"),
                &source,
                &[("unit", &unit), ("timer", &timer), ("install", &install)],
            )?);
        }
        Ok(files)
    })?;
    Ok(per_app.into_iter().flatten().collect())
}

fn render(
    ctx: &EmitContext<'_>,
    template: &str,
    path: String,
    source: &str,
    sections: &[(&'static str, &[(String, String)])],
) -> Result<OutputFile, EmitError> {
    let content = ctx.templates.render_unit(template, source, sections, &[])?;
    unitfile::check(&content).map_err(|message| EmitError::Invalid {
        file: path.clone(),
        message,
    })?;
    Ok(OutputFile::new(path, content))
}
