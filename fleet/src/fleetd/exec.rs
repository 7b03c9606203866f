//! Carrying out one accepted order (§4): the agent call with the order id
//! as request id (after `OperationByRequest`, the restart path), its
//! operation followed to the end, and its steps put in the outbox:
//! `started` when the operation exists, `awaiting` when a manual switch
//! or sweep waits for its confirm, `final` at the end.
//!
//! - `switch`: the target is the generation whose digest is the order's
//!   (fleetd does not fetch artifacts yet: a native tree must have been
//!   staged on the host); `confirm: observed` is a manual switch.
//! - `confirm {of}`: `Confirm` of the operation of `of`, then its end is
//!   this order's final too (`committed`, or what it became: a confirm
//!   after the agent's deadline finds it rolled back).
//! - `cancel {of}`: `Cancel` while in flight; final is what the operation
//!   became; `skipped` when `of` started nothing here. A driver of `of`
//!   still asking a busy agent gives up (`of` ends `canceled`): once the
//!   key holds the cancel, `of` never starts.
//! - `rollback {of, to}`: cancels the operation of `of` while in flight,
//!   then `Rollback(to)` unless the host already runs `to` (`skipped`).
//! - `sweep`, `cutover`: the agent's calls with the request id.
//!
//! A result's error and journal lines (at most 10, of a failed operation)
//! go through the agent's URL redaction before they leave the host.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;

use super::state::OpenOrder;
use super::{Ctx, unix_ms};
use crate::agent::{AgentApi, AgentError, AgentResult, Confirm, OpEnd, OpEvent};
use crate::buckets::{ResultKey, Step};
use crate::model::{
    Action, ConfirmMode, GenerationRef, HostResult, OpId, Order, OrderId, ResultOutcome,
};

/// How many journal lines a failed result carries.
const JOURNAL_LINES: usize = 10;

/// Persists the order as accepted (its epoch obeyed, its seq done as far
/// as replays go) and starts driving it.
pub(crate) fn accept<A: AgentApi>(ctx: &Arc<Ctx<A>>, order: Order) {
    {
        let mut s = ctx.state();
        let st = &mut s.st;
        if st.host.max_epoch.is_none_or(|m| order.epoch > m) {
            st.host.max_epoch = Some(order.epoch);
        }
        st.host.last_seq = st.host.last_seq.max(order.seq);
        st.host.in_progress = Some(order.clone());
        if let Action::Cancel { of } | Action::Rollback { of, .. } = &order.action
            && let Some(o) = st.open.get_mut(of)
        {
            o.superseded_by = Some(order.id.clone());
        }
        st.open.insert(
            order.id.clone(),
            OpenOrder {
                order: order.clone(),
                op: None,
                from: None,
                to: None,
                steps: Vec::new(),
                superseded_by: None,
            },
        );
        if let Err(e) = s.save() {
            // Not persisted: not executed (a restart would not know it).
            tracing::error!(
                "order {}: cannot save the state ({e}); not executed",
                order.id
            );
            s.st.open.remove(&order.id);
            return;
        }
    }
    tracing::info!("order {} ({}) accepted", order.id, order.action.kind());
    ctx.kick_heartbeat.notify_one();
    ctx.spawn(drive(ctx.clone(), order.id));
}

fn confirm_of(c: ConfirmMode) -> Confirm {
    match c {
        ConfirmMode::Observed => Confirm::Manual,
        ConfirmMode::Local => Confirm::Auto,
    }
}

fn outcome_of(result: &str) -> ResultOutcome {
    match result {
        "committed" => ResultOutcome::Committed,
        "rolled-back" => ResultOutcome::RolledBack,
        "canceled" => ResultOutcome::Canceled,
        "skipped" => ResultOutcome::Skipped,
        _ => ResultOutcome::Failed,
    }
}

/// What a step reports besides its outcome.
#[derive(Default)]
struct Detail {
    op: Option<OpId>,
    kind: Option<String>,
    error: String,
    journal: Vec<String>,
}

/// One order's driver.
struct Driver<A> {
    ctx: Arc<Ctx<A>>,
    id: OrderId,
}

/// Drives the accepted order `id` to its final result.
pub(crate) async fn drive<A: AgentApi>(ctx: Arc<Ctx<A>>, id: OrderId) {
    let d = Driver { ctx, id };
    let Some(open) = d.open() else { return };
    let order = open.order.clone();
    let kind = order.action.kind().as_str();
    let (outcome, detail) = match &order.action {
        Action::Switch {
            target, confirm, ..
        } => {
            let awaiting = *confirm == ConfirmMode::Observed;
            d.run_op(&order, kind, awaiting, Some(target.digest()))
                .await
        }
        Action::Sweep { confirm, .. } => {
            let awaiting = *confirm == ConfirmMode::Observed;
            d.run_op(&order, kind, awaiting, None).await
        }
        Action::Cutover { .. } => d.run_op(&order, kind, false, None).await,
        Action::Confirm { of } => d.confirm(&order, of).await,
        Action::Cancel { of } => d.cancel(of).await,
        Action::Rollback { of, to } => {
            d.cancel_in_flight(of).await;
            match d.already_at(to).await {
                Some(r) => r,
                None => d.run_op(&order, "rollback", false, None).await,
            }
        }
    };
    d.finish(outcome, detail);
}

impl<A: AgentApi> Driver<A> {
    fn open(&self) -> Option<OpenOrder> {
        self.ctx.state().st.open.get(&self.id).cloned()
    }

    fn update(&self, f: impl FnOnce(&mut OpenOrder)) {
        let mut s = self.ctx.state();
        if let Some(o) = s.st.open.get_mut(&self.id) {
            f(o);
            if let Err(e) = s.save() {
                tracing::error!("state: {e}");
            }
        }
    }

    /// Puts one step in the outbox (once per step across restarts).
    fn step(&self, step: Step, outcome: ResultOutcome, d: &Detail) {
        let Some(open) = self.open() else { return };
        if step != Step::Final && open.steps.iter().any(|s| s == step.as_str()) {
            return;
        }
        let o = &open.order;
        let key = ResultKey::Order {
            host: o.host.clone(),
            rollout: o.rollout.clone(),
            seq: o.seq,
            step,
        };
        let key = match key.build() {
            Ok(k) => k,
            Err(e) => {
                tracing::error!("order {}: no result key: {e}", o.id);
                return;
            }
        };
        let r = HostResult {
            order: o.id.clone(),
            host: o.host.clone(),
            rollout: o.rollout.clone(),
            seq: o.seq,
            epoch: o.epoch,
            operation: d.op.clone().or(open.op.clone()),
            kind: d.kind.clone(),
            outcome,
            from: open.from.clone(),
            to: open.to.clone(),
            // Results leave the host: no credential in them.
            error: super::redact::text(&d.error),
            journal: d.journal.iter().map(|l| super::redact::text(l)).collect(),
            at: unix_ms(),
        };
        tracing::info!("order {}: {} {}", o.id, step.as_str(), outcome);
        if let Err(e) = self.ctx.outbox.push(key, r) {
            tracing::error!("order {}: outbox: {e}", o.id);
            return;
        }
        if step != Step::Final {
            self.update(|o| o.steps.push(step.as_str().to_string()));
        }
        self.ctx.kick_flush.notify_one();
        self.ctx.kick_heartbeat.notify_one();
    }

    /// The final step, then the order leaves `open`.
    fn finish(&self, outcome: ResultOutcome, d: Detail) {
        self.step(Step::Final, outcome, &d);
        let mut s = self.ctx.state();
        let st = &mut s.st;
        let op = st.open.remove(&self.id).and_then(|o| o.op).or(d.op);
        if let Some(op) = op {
            st.host.ops.insert(self.id.clone(), op);
        } else {
            st.host.ops.insert(self.id.clone(), String::new());
        }
        if st
            .host
            .in_progress
            .as_ref()
            .is_some_and(|o| o.id == self.id)
        {
            st.host.in_progress = None;
        }
        // Keep the map of done orders bounded: the newest 256.
        while st.host.ops.len() > 256 {
            let oldest = st
                .host
                .ops
                .keys()
                .min_by_key(|k| k.rsplit('/').next().and_then(|s| s.parse::<u64>().ok()))
                .cloned();
            match oldest {
                Some(k) => st.host.ops.remove(&k),
                None => break,
            };
        }
        if let Err(e) = s.save() {
            tracing::error!("state: {e}");
        }
        drop(s);
        self.ctx.kick_heartbeat.notify_one();
    }

    /// Retries `f` while the agent fails transiently or is busy with
    /// another operation, every second until the order's deadline.
    /// (Starting calls carry the request id: asking again never starts a
    /// second operation.)
    async fn retry<T, F, Fut>(&self, deadline_at: u64, mut f: F) -> AgentResult<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = AgentResult<T>>,
    {
        loop {
            match f().await {
                Err(e @ (AgentError::Failed(_) | AgentError::Busy(_)))
                    if unix_ms() < deadline_at =>
                {
                    tracing::warn!("order {}: {e}; asking again", self.id);
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                r => return r,
            }
        }
    }

    fn refused(e: AgentError) -> (ResultOutcome, Detail) {
        let outcome = if e.is_refusal() {
            ResultOutcome::Refused
        } else {
            ResultOutcome::Failed
        };
        (
            outcome,
            Detail {
                error: e.to_string(),
                ..Detail::default()
            },
        )
    }

    /// The operation this order started (restart path) or starts now.
    async fn start(&self, order: &Order, digest: Option<&str>) -> AgentResult<OpId> {
        let agent = &self.ctx.agent;
        if let Some(op) = self.open().and_then(|o| o.op) {
            return Ok(op);
        }
        let dl = order.deadline_at;
        if let Some(op) = self
            .retry(dl, || agent.operation_by_request(&order.id))
            .await?
        {
            self.update(|o| o.op = Some(op.clone()));
            return Ok(op);
        }
        // From: what runs now, with its digest.
        let status = self.retry(dl, || agent.status()).await?;
        let gens = self.retry(dl, || agent.generations()).await?;
        let with_digest = |r: Option<GenerationRef>| {
            r.map(|mut r| {
                if r.digest.is_empty()
                    && let Some(g) = gens.iter().find(|g| g.id == r.generation)
                {
                    r.digest = g.digest.clone();
                }
                r
            })
        };
        let from = with_digest(status.running.clone());
        let to = match (&order.action, digest) {
            (Action::Switch { .. }, Some(d)) => {
                let g = gens.iter().find(|g| !g.digest.is_empty() && g.digest == d);
                match g {
                    Some(g) => Some(GenerationRef {
                        generation: g.id,
                        digest: d.to_string(),
                    }),
                    None => {
                        return Err(AgentError::Refused(format!(
                            "no generation with digest {d} on this host \
                             (fleetd does not fetch artifacts yet: stage the tree first)"
                        )));
                    }
                }
            }
            (Action::Rollback { to, .. }, _) => Some(to.clone()),
            _ => None,
        };
        self.update(|o| {
            o.from = from.clone();
            o.to = to.clone();
        });
        let rq = order.id.as_str();
        let call = || async {
            if let Some(by) = self.open().and_then(|o| o.superseded_by) {
                return Err(AgentError::Superseded(by));
            }
            match &order.action {
                Action::Switch {
                    deadline_sec,
                    confirm,
                    ..
                } => {
                    let g = to.as_ref().expect("resolved").generation;
                    agent
                        .switch(g, confirm_of(*confirm), Some(*deadline_sec), rq)
                        .await
                }
                Action::Rollback { to, .. } => agent.rollback(to.generation, rq).await,
                Action::Sweep {
                    app,
                    release,
                    deadline_sec,
                    confirm,
                } => {
                    agent
                        .sweep(app, release, confirm_of(*confirm), Some(*deadline_sec), rq)
                        .await
                }
                Action::Cutover {
                    target,
                    version,
                    url,
                    sha256,
                    deadline_sec,
                } => {
                    agent
                        .cutover(target, version, url, sha256, Some(*deadline_sec), rq)
                        .await
                }
                Action::Confirm { .. } | Action::Cancel { .. } => {
                    unreachable!("confirm and cancel start nothing")
                }
            }
        };
        let op = self.retry(dl, call).await?;
        self.update(|o| o.op = Some(op.clone()));
        Ok(op)
    }

    /// Starts (or finds) the order's operation and follows it to its end.
    async fn run_op(
        &self,
        order: &Order,
        kind: &str,
        awaiting: bool,
        digest: Option<&str>,
    ) -> (ResultOutcome, Detail) {
        let op = match self.start(order, digest).await {
            Ok(op) => op,
            Err(AgentError::Superseded(by)) => {
                return (
                    ResultOutcome::Canceled,
                    Detail {
                        kind: Some(kind.to_string()),
                        error: format!("canceled by order {by} before it started"),
                        ..Detail::default()
                    },
                );
            }
            Err(e) => return Self::refused(e),
        };
        let detail = |error: String| Detail {
            op: Some(op.clone()),
            kind: Some(kind.to_string()),
            error,
            journal: Vec::new(),
        };
        self.step(
            Step::Started,
            ResultOutcome::Started,
            &detail(String::new()),
        );
        let end = self
            .follow(&op, order.deadline_at, |phase| {
                if awaiting && phase == "waiting-confirm" {
                    self.step(
                        Step::Awaiting,
                        ResultOutcome::AwaitingConfirm,
                        &detail(String::new()),
                    );
                }
            })
            .await;
        self.ended(&op, kind, end).await
    }

    async fn ended(&self, op: &OpId, kind: &str, end: OpEnd) -> (ResultOutcome, Detail) {
        let outcome = outcome_of(&end.result);
        let journal = if outcome == ResultOutcome::Committed || outcome == ResultOutcome::Skipped {
            Vec::new()
        } else {
            self.ctx.agent.journal(op, JOURNAL_LINES).await
        };
        (
            outcome,
            Detail {
                op: Some(op.clone()),
                kind: Some(kind.to_string()),
                error: end.error,
                journal,
            },
        )
    }

    /// Follows `op` to its end; `on_phase` sees each phase. Following is
    /// set up again when the agent goes away meanwhile (no deadline: the
    /// operation ends on its own, and the agent's revert timers make sure
    /// of that).
    async fn follow(&self, op: &OpId, deadline_at: u64, on_phase: impl Fn(&str)) -> OpEnd {
        loop {
            match self
                .retry(deadline_at.max(unix_ms() + 60_000), || {
                    self.ctx.agent.follow(op)
                })
                .await
            {
                Ok(mut events) => {
                    while let Some(e) = events.next().await {
                        match e {
                            OpEvent::Phase { phase, .. } => {
                                on_phase(&phase);
                                self.ctx.kick_heartbeat.notify_one();
                            }
                            OpEvent::Finished(end) => return end,
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!("order {}: following {op}: {e}", self.id);
                    if e.is_refusal() {
                        return OpEnd {
                            result: "failed".into(),
                            error: format!("the operation {op} cannot be followed: {e}"),
                        };
                    }
                }
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    }

    /// The operation order `of` started here, waiting a little while its
    /// driver is still in its call.
    async fn op_of(&self, of: &OrderId, deadline_at: u64) -> AgentResult<Option<OpId>> {
        for _ in 0..50 {
            let (done, open) = {
                let s = self.ctx.state();
                (
                    s.st.host.ops.get(of).filter(|o| !o.is_empty()).cloned(),
                    s.st.open.get(of).map(|o| o.op.clone()),
                )
            };
            match (done, open) {
                (Some(op), _) | (_, Some(Some(op))) => return Ok(Some(op)),
                (None, Some(None)) => tokio::time::sleep(Duration::from_millis(200)).await,
                (None, None) => break,
            }
        }
        self.retry(deadline_at, || self.ctx.agent.operation_by_request(of))
            .await
    }

    fn kind_of(&self, of: &OrderId) -> Option<String> {
        let s = self.ctx.state();
        s.st.open
            .get(of)
            .map(|o| o.order.action.kind().as_str().to_string())
    }

    async fn confirm(&self, order: &Order, of: &OrderId) -> (ResultOutcome, Detail) {
        let op = match self.op_of(of, order.deadline_at).await {
            Ok(Some(op)) => op,
            Ok(None) => {
                return Self::refused(AgentError::NotFound(format!(
                    "order {of} started no operation on this host"
                )));
            }
            Err(e) => return Self::refused(e),
        };
        // The from/to of the confirmed order, for this result too.
        let (from, to) = {
            let s = self.ctx.state();
            s.st.open
                .get(of)
                .map(|o| (o.from.clone(), o.to.clone()))
                .unwrap_or_default()
        };
        let kind = self.kind_of(of).unwrap_or_else(|| "switch".into());
        let first = self.open().is_some_and(|o| o.op.is_none());
        self.update(|o| {
            o.op = Some(op.clone());
            o.from = from;
            o.to = to;
        });
        let mut refusal = None;
        if first && let Err(e) = self.ctx.agent.confirm(&op).await {
            // Not waiting (any more): what it became tells.
            tracing::warn!("order {}: Confirm({op}): {e}", self.id);
            refusal = Some(e.to_string());
        }
        let end = self.follow(&op, order.deadline_at, |_| {}).await;
        let (outcome, mut d) = self.ended(&op, &kind, end).await;
        if let Some(r) = refusal
            && outcome != ResultOutcome::Committed
        {
            d.error = if d.error.is_empty() {
                format!("confirm refused: {r}")
            } else {
                format!("confirm refused: {r}; {}", d.error)
            };
        }
        (outcome, d)
    }

    async fn cancel(&self, of: &OrderId) -> (ResultOutcome, Detail) {
        let dl = self.open().map(|o| o.order.deadline_at).unwrap_or(0);
        let op = match self.op_of(of, dl).await {
            Ok(Some(op)) => op,
            Ok(None) => {
                return (
                    ResultOutcome::Skipped,
                    Detail {
                        error: format!("order {of} started nothing on this host; it never will"),
                        ..Detail::default()
                    },
                );
            }
            Err(e) => return Self::refused(e),
        };
        self.update(|o| o.op = Some(op.clone()));
        let kind = self.kind_of(of).unwrap_or_else(|| "switch".into());
        if let Err(e) = self.ctx.agent.cancel(&op).await {
            tracing::info!("order {}: Cancel({op}): {e}", self.id);
        }
        let end = self.follow(&op, dl, |_| {}).await;
        self.ended(&op, &kind, end).await
    }

    /// Cancels the operation of `of` if it is still in flight and waits
    /// for its end.
    async fn cancel_in_flight(&self, of: &OrderId) {
        let dl = self.open().map(|o| o.order.deadline_at).unwrap_or(0);
        let Ok(Some(op)) = self.op_of(of, dl).await else {
            return;
        };
        let Ok(mut events) = self.ctx.agent.follow(&op).await else {
            return;
        };
        // Over already? Then its first event is its end.
        let first = tokio::time::timeout(Duration::from_millis(500), events.next()).await;
        if matches!(first, Ok(Some(OpEvent::Finished(_))) | Ok(None)) {
            return;
        }
        if let Err(e) = self.ctx.agent.cancel(&op).await {
            tracing::info!("order {}: Cancel({op}): {e}", self.id);
        }
        let _ = self.follow(&op, dl, |_| {}).await;
    }

    /// `Some(skipped)` when the host runs `to` already.
    async fn already_at(&self, to: &GenerationRef) -> Option<(ResultOutcome, Detail)> {
        if self.open().is_some_and(|o| o.op.is_some()) {
            return None;
        }
        let dl = self.open().map(|o| o.order.deadline_at).unwrap_or(0);
        if let Ok(Some(_)) = self
            .retry(dl, || self.ctx.agent.operation_by_request(&self.id))
            .await
        {
            return None;
        }
        let status = self.retry(dl, || self.ctx.agent.status()).await.ok()?;
        let running = status.running?;
        if running.generation != to.generation {
            return None;
        }
        self.update(|o| {
            o.from = Some(running.clone());
            o.to = Some(to.clone());
        });
        Some((
            ResultOutcome::Skipped,
            Detail {
                kind: Some("rollback".into()),
                error: format!("already running generation {}", to.generation),
                ..Detail::default()
            },
        ))
    }
}
