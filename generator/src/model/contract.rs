//! Each app's part of the generation contract (`windlass_contract::App`),
//! built from the validated app: what windlassd checks after a switch
//! and how it may update the app. The field names and their spelling are
//! the contract crate's; this only maps the model onto them.

use windlass_contract as contract;

use super::{App, UpdateOrder};

impl App {
    /// This app's contract, `unit` being the name the target's service
    /// manager knows the container by (`lnd.service` for Quadlet,
    /// `podman-lnd.service` for NixOS oci-containers, `lnd` for Guix), and
    /// `hooks` its hooks as that target runs them (their `podman run`
    /// lines name the target's volumes and networks; see
    /// `emit::podman::hooks`), and `purge_on_remove` the Podman volumes
    /// removed with the app, as that target names them (see
    /// `emit::podman::purge_on_remove`).
    pub fn contract(
        &self,
        unit: String,
        hooks: contract::Hooks,
        purge_on_remove: Vec<String>,
    ) -> contract::App {
        let health = self.health.as_ref().map(|h| contract::Health {
            container_check: h.cmd.is_some(),
            http: h.http.clone(),
            other: Default::default(),
        });
        let update = contract::Update {
            health_deadline_sec: Some(self.update.health_deadline.div_ceil(1_000_000)),
            order: match self.update.order {
                UpdateOrder::StopFirst => contract::UpdateOrder::StopFirst,
                UpdateOrder::StartFirst => contract::UpdateOrder::StartFirst,
            },
            rollback: if self.update.rollback_auto {
                contract::Rollback::Auto
            } else {
                contract::Rollback::Manual
            },
            other: Default::default(),
        };
        let release = contract::Release {
            allow_prerelease: self.release.allow_prerelease,
            constraint: self.release.constraint.clone(),
            track: if self.release.semver {
                contract::Track::Semver
            } else {
                contract::Track::None
            },
            other: Default::default(),
        };
        contract::App {
            drift: contract::DriftPolicy {
                mode: self.update.drift,
                ignore: self.update.drift_ignore.clone(),
                other: Default::default(),
            },
            health,
            hooks,
            image: self.container.image.full.clone(),
            jobs: self
                .jobs
                .iter()
                .map(|j| format!("{}-{}", self.name, j.name))
                .collect(),
            name: self.name.clone(),
            purge_on_remove,
            release,
            requires: self.requires.clone(),
            unit,
            update,
            volumes: Vec::new(),
            wants: self.wants.clone(),
            other: Default::default(),
        }
    }
}
