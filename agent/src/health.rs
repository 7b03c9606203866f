//! The health gate: every changed unit active (Quadlet's Notify=healthy
//! makes a container unit active only once its health check passes), and
//! every `health.http` probe of the generation's changed apps answering
//! 2xx, all within the deadline. A unit that fails ends the wait at once;
//! a state query systemd does not answer ends it at the deadline.

use std::time::{Duration, Instant};

use crate::systemd::Systemd;

#[derive(Debug, Clone)]
pub struct Gate {
    pub units: Vec<String>,
    pub http: Vec<String>,
    pub deadline: Duration,
    pub poll: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GateFailure {
    /// Cancel was asked for while waiting.
    Canceled,
    Unhealthy {
        /// The unit to blame, when one is.
        unit: Option<String>,
        reason: String,
    },
}

impl std::fmt::Display for GateFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GateFailure::Canceled => f.write_str("canceled"),
            GateFailure::Unhealthy { reason, .. } => f.write_str(reason),
        }
    }
}

/// Waits for the gate; `cancel` is polled and ends the wait early.
/// `observe(target, state)` sees every look at a unit (`active/running`,
/// `activating/start (job)`, `failed/failed: exit-code`) and at a probe
/// (`2xx`, `status 503`, `no answer: …`), for the health timeline.
pub async fn wait(
    systemd: &impl Systemd,
    gate: &Gate,
    http: &windlass_net::reqwest::Client,
    cancel: impl Fn() -> bool,
    mut observe: impl FnMut(&str, &str),
) -> Result<(), GateFailure> {
    let start = Instant::now();
    let mut pending_units: Vec<String> = gate.units.clone();
    let mut pending_http: Vec<String> = gate.http.clone();
    loop {
        let mut still = Vec::new();
        for u in pending_units {
            // Each query is bounded by what is left of the deadline (at
            // least a second): a bus call systemd never answers must not
            // hold the gate past it.
            let left = gate
                .deadline
                .saturating_sub(start.elapsed())
                .max(Duration::from_secs(1));
            let s = match tokio::time::timeout(left, systemd.state(&u)).await {
                Ok(s) => s.map_err(|e| GateFailure::Unhealthy {
                    unit: Some(u.clone()),
                    reason: e.0,
                })?,
                Err(_) => {
                    return Err(GateFailure::Unhealthy {
                        reason: format!(
                            "systemd did not answer for {u}'s state within {} s",
                            left.as_secs()
                        ),
                        unit: Some(u),
                    });
                }
            };
            let job = if s.job_pending { " (job)" } else { "" };
            let failed = if s.active_state == "failed" {
                format!(": {}", s.result)
            } else {
                String::new()
            };
            observe(
                &u,
                &format!("{}/{}{failed}{job}", s.active_state, s.sub_state),
            );
            match s.active_state.as_str() {
                // Active with no job left: the start (or restart) finished.
                "active" | "reloading" if !s.job_pending => {}
                // Failed with a job queued: a unit that failed before
                // (a hand-written unit taken over, an earlier crash) whose
                // start has not run yet; its state is still the old one.
                "failed" if !s.job_pending => {
                    return Err(GateFailure::Unhealthy {
                        reason: format!("{u} failed ({})", s.result),
                        unit: Some(u),
                    });
                }
                _ => still.push(u),
            }
        }
        pending_units = still;
        let mut still = Vec::new();
        for url in pending_http {
            let answer = http.get(&url).timeout(Duration::from_secs(5)).send().await;
            let ok = match &answer {
                Ok(r) if r.status().is_success() => {
                    observe(&url, "2xx");
                    true
                }
                Ok(r) => {
                    observe(&url, &format!("status {}", r.status().as_u16()));
                    false
                }
                Err(e) => {
                    let why = if e.is_timeout() {
                        "timed out".to_string()
                    } else if e.is_connect() {
                        "connection refused or unreachable".to_string()
                    } else {
                        "no answer".to_string()
                    };
                    observe(&url, &why);
                    false
                }
            };
            if !ok {
                still.push(url);
            }
        }
        pending_http = still;
        if pending_units.is_empty() && pending_http.is_empty() {
            return Ok(());
        }
        if cancel() {
            return Err(GateFailure::Canceled);
        }
        if start.elapsed() >= gate.deadline {
            let what: Vec<String> = pending_units
                .iter()
                .map(|u| format!("{u} not active"))
                .chain(
                    pending_http
                        .iter()
                        .map(|h| format!("{h} not answering 2xx")),
                )
                .collect();
            return Err(GateFailure::Unhealthy {
                unit: pending_units.first().cloned(),
                reason: format!(
                    "not healthy within {} s: {}",
                    gate.deadline.as_secs(),
                    what.join(", ")
                ),
            });
        }
        tokio::time::sleep(gate.poll).await;
    }
}
