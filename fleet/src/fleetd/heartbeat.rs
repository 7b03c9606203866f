//! Heartbeats (§7): `windlass-hosts/<host>`, put every interval and, 100
//! ms after a change (a signal of the agent, a step of ours), at once.
//! Built from the agent's `Status`; drift as count and kinds only.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::StreamExt;

use super::{Ctx, OrderEvent, unix_ms};
use crate::agent::{AgentApi, AgentStatus};
use crate::model::{Heartbeat, HostActivity, OrdersSeen};

/// How long a change waits for more before the heartbeat goes out.
pub const DEBOUNCE: Duration = Duration::from_millis(100);

/// The heartbeat for `status` (an agent that cannot be asked gives an
/// empty status: no generation, no agent version).
pub(crate) fn build<A>(ctx: &Ctx<A>, status: AgentStatus, n: u64) -> Heartbeat {
    let orders = {
        let s = ctx.state();
        OrdersSeen {
            last_seq: s.st.host.last_seq,
            max_epoch: s.st.host.max_epoch,
        }
    };
    Heartbeat {
        host: ctx.cfg.host.clone(),
        n,
        sent_at: unix_ms(),
        fleetd: env!("CARGO_PKG_VERSION").to_string(),
        agent: status.version,
        platform: status.platform,
        labels: ctx.cfg.labels.clone(),
        selected: status.selected,
        running: status.running,
        // The agent's slot: an order of ours still reporting its end
        // does not make the host busy.
        state: if status.busy || status.operation.is_some() {
            HostActivity::Busy
        } else {
            HostActivity::Idle
        },
        operation: status.operation,
        last: status.last,
        releases: status.releases,
        drift: status.drift,
        orders,
        outbox: u32::try_from(ctx.outbox.len()).unwrap_or(u32::MAX),
    }
}

async fn send<A: AgentApi>(ctx: &Ctx<A>) {
    let Some(b) = ctx.buckets() else { return };
    let status = match ctx.agent.status().await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("heartbeat: the agent's status: {e}");
            AgentStatus::default()
        }
    };
    let n = ctx.heartbeats_sent.fetch_add(1, Ordering::Relaxed);
    let hb = build(ctx, status, n);
    if let Err(e) = b.hosts.put(&ctx.cfg.host, &hb).await {
        tracing::warn!("heartbeat: {e}");
    }
}

/// The heartbeat task; each tick also judges a parked order again,
/// retries a waiting outbox, and lets the tasks that wait for something
/// absent (the agent's bus) try again: they share its wakeup instead of
/// keeping timers of their own.
pub(crate) async fn run<A: AgentApi>(ctx: Arc<Ctx<A>>) {
    let mut tick = tokio::time::interval(ctx.cfg.heartbeat_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let _ = ctx.orders.send(OrderEvent::Recheck);
                if !ctx.outbox.is_empty() {
                    ctx.kick_flush.notify_one();
                }
                ctx.beat.notify_waiters();
            }
            _ = ctx.kick_heartbeat.notified() => {
                tokio::time::sleep(DEBOUNCE).await;
            }
        }
        send(&ctx).await;
    }
}

/// The first wait before asking for something absent again.
pub const BACKOFF_FIRST: Duration = Duration::from_millis(250);

/// Waits before trying again what failed `failures` times in a row:
/// 250 ms doubling, and once that would reach the heartbeat interval,
/// until the next heartbeat tick (no timer of its own: an idle fleetd
/// wakes only for its heartbeat).
pub(crate) async fn back_off<A>(ctx: &Ctx<A>, failures: u32) {
    let delay = BACKOFF_FIRST.saturating_mul(1u32 << failures.min(16));
    if delay < ctx.cfg.heartbeat_interval {
        tokio::time::sleep(delay).await;
    } else {
        ctx.beat.notified().await;
    }
}

/// Turns the agent's signals into heartbeats. windlassd starting or
/// stopping is a signal too (its bus name changes owner), so a fleetd
/// started before windlassd reports it as soon as it is there. When the
/// bus itself cannot be reached, or the connection to it breaks, it
/// subscribes again after [`back_off`]; once subscribed again it sends a
/// heartbeat at once (what changed meanwhile went unseen).
pub(crate) async fn watch_agent<A: AgentApi>(ctx: Arc<Ctx<A>>) {
    let mut failures = 0u32;
    loop {
        match ctx.agent.changes().await {
            Ok(mut changes) => {
                if failures > 0 {
                    tracing::info!("agent signals: subscribed");
                    ctx.kick_heartbeat.notify_one();
                }
                failures = 0;
                while changes.next().await.is_some() {
                    ctx.kick_heartbeat.notify_one();
                }
                tracing::info!("agent signals: the connection to the bus ended");
            }
            Err(e) if failures == 0 => {
                tracing::warn!("agent signals: {e}; trying again, less and less often")
            }
            Err(e) => tracing::debug!("agent signals: {e}"),
        }
        back_off(&*ctx, failures).await;
        failures = failures.saturating_add(1);
    }
}
