//! Takeover (docs/design/fleet.md §3.3): a rollout whose state carries an
//! older epoch than this term's is fenced: its state is rewritten by
//! revision with our epoch, then each host's latest order of the rollout
//! that has no final result is rewritten with our epoch (same id, seq and
//! action), or written when the key lacks it (see the module doc of
//! `coordinator`). Deadlines and soaks go on from the stored timestamps:
//! `wave::step` uses them as they are.

use super::drive::{Term, TermEnd};
use super::now_ms;
use crate::model::{Action, Order, order_id};
use crate::spec::RolloutSpec;
use crate::wave::{self, HostProgress, RolloutState};

/// The host's latest order in the rollout, as the state allocated it.
fn latest(spec: &RolloutSpec, s: &RolloutState, p: &HostProgress) -> Option<(u64, Option<Action>)> {
    let candidates = [
        (p.seq, 0u8),
        (p.confirm_seq, 1),
        (p.rollback_seq, 2),
        (p.cancel_seq, 3),
    ];
    let (seq, which) = candidates
        .iter()
        .filter_map(|(s, w)| s.map(|s| (s, *w)))
        .max()?;
    let main = p.seq.map(|s| order_id_of(spec, s));
    let action = match which {
        0 => Some(wave::main_action(spec, s)),
        1 => main.map(|of| Action::Confirm { of }),
        2 => main.and_then(|of| p.from.clone().map(|to| Action::Rollback { of, to })),
        _ => main.map(|of| Action::Cancel { of }),
    };
    Some((seq, action))
}

fn order_id_of(spec: &RolloutSpec, seq: u64) -> String {
    order_id(&spec.id, seq)
}

impl Term<'_> {
    pub(super) async fn adopt(
        &mut self,
        mut s: RolloutState,
        rev: u64,
        spec: &RolloutSpec,
    ) -> Result<(RolloutState, u64), TermEnd> {
        let old = s.epoch;
        s.epoch = self.epoch;
        s.updated_at = now_ms();
        let rev = self.save_state(&s, rev).await?;
        tracing::info!("rollout {}: adopted (epoch {old} -> {})", s.id, self.epoch);
        let results = self.results_of(&s.id);
        let now = now_ms();
        for (w, wave) in s.waves.iter().enumerate() {
            for (host, p) in &wave.hosts {
                let Some((seq, action)) = latest(spec, &s, p) else {
                    continue;
                };
                let done = results
                    .get(&(host.clone(), seq))
                    .is_some_and(|r| r.outcome.is_final());
                if done {
                    continue;
                }
                let order = match self.read_order(host).await? {
                    Some(o) if o.rollout == s.id && o.seq == seq => {
                        if o.epoch == self.epoch {
                            continue;
                        }
                        Order {
                            epoch: self.epoch,
                            ..o
                        }
                    }
                    // A newer order (of a later rollout) owns the key.
                    Some(o) if o.seq > seq => continue,
                    // Allocated in the state but never written: repair.
                    _ => {
                        let Some(action) = action else {
                            tracing::warn!(
                                "rollout {}: cannot rebuild order {seq} of {host}",
                                s.id
                            );
                            continue;
                        };
                        let deadline_at = match action {
                            Action::Rollback { .. } | Action::Cancel { .. } => None,
                            _ => wave.deadline_at,
                        }
                        .unwrap_or(now + spec.policy.wave_deadline.as_millis() as u64);
                        tracing::info!("rollout {}: order {seq} of {host} was never written", s.id);
                        Order {
                            id: order_id(&s.id, seq),
                            host: host.clone(),
                            rollout: s.id.clone(),
                            wave: w,
                            seq,
                            epoch: self.epoch,
                            issued_at: now,
                            deadline_at,
                            action,
                        }
                    }
                };
                self.write_order(&order).await?;
            }
        }
        Ok((s, rev))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::GenerationRef;
    use windlass_contract::GenerationId;

    fn spec() -> RolloutSpec {
        let hex = "ab".repeat(32);
        crate::spec::parse(
            "t.toml",
            &format!(
                "id = \"r\"\n[target.generation]\nnative = {{ digest = \"sha256:{hex}\", \
                 artifact = \"sha256-{hex}\", artifact_sha256 = \"{hex}\", size = 1 }}\n\
                 [[wave]]\nname = \"a\"\nhosts = [\"h\"]\n"
            ),
        )
        .unwrap()
    }

    #[test]
    fn the_latest_allocated_order_is_rebuilt_from_state_and_spec() {
        let spec = spec();
        let st = wave::start(
            &spec,
            vec![vec!["h".into()]],
            crate::model::Epoch { era: 1, rev: 1 },
            1,
            0,
        )
        .unwrap();
        let latest = |spec: &RolloutSpec, p: &HostProgress| latest(spec, &st, p);
        let mut p = HostProgress::pending();
        assert_eq!(latest(&spec, &p), None, "never ordered");
        p.seq = Some(5);
        assert_eq!(
            latest(&spec, &p),
            Some((5, Some(wave::main_action(&spec, &st))))
        );
        p.confirm_seq = Some(7);
        let of = "r/5".to_string();
        assert_eq!(
            latest(&spec, &p),
            Some((7, Some(Action::Confirm { of: of.clone() })))
        );
        // A rollback needs the host's from; without it nothing is rebuilt.
        p.rollback_seq = Some(9);
        assert_eq!(latest(&spec, &p), Some((9, None)));
        let from = GenerationRef {
            generation: GenerationId(6),
            digest: "sha256:old".into(),
        };
        p.from = Some(from.clone());
        assert_eq!(
            latest(&spec, &p),
            Some((
                9,
                Some(Action::Rollback {
                    of: of.clone(),
                    to: from
                })
            ))
        );
        let mut q = HostProgress::pending();
        q.seq = Some(5);
        q.cancel_seq = Some(6);
        assert_eq!(latest(&spec, &q), Some((6, Some(Action::Cancel { of }))));
    }
}
