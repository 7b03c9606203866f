//! NixOS module: `nixos/default.nix` importing `nixos/apps/<app>.nix`.

use super::{EmitContext, EmitError, OutputFile};
use crate::model::Fleet;

pub fn emit(
    _fleet: &Fleet,
    _quadlet: &[OutputFile],
    _ctx: &mut EmitContext<'_>,
) -> Result<Vec<OutputFile>, EmitError> {
    Ok(Vec::new())
}
