//! Guix: `guix/windlass-apps.scm`, module `(windlass apps)`.

use super::{EmitContext, EmitError, OutputFile};
use crate::model::Fleet;

pub fn emit(_fleet: &Fleet, _ctx: &mut EmitContext<'_>) -> Result<Vec<OutputFile>, EmitError> {
    Ok(Vec::new())
}
