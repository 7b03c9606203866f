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

/// The heartbeat task; each tick also judges a parked order again.
pub(crate) async fn run<A: AgentApi>(ctx: Arc<Ctx<A>>) {
    let mut tick = tokio::time::interval(ctx.cfg.heartbeat_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let _ = ctx.orders.send(OrderEvent::Recheck);
            }
            _ = ctx.kick_heartbeat.notified() => {
                tokio::time::sleep(DEBOUNCE).await;
            }
        }
        send(&ctx).await;
    }
}

/// Turns the agent's signals into heartbeats; subscribes again when the
/// agent's stream ends (windlassd restarted, bus gone).
pub(crate) async fn watch_agent<A: AgentApi>(ctx: Arc<Ctx<A>>) {
    loop {
        match ctx.agent.changes().await {
            Ok(mut changes) => {
                while changes.next().await.is_some() {
                    ctx.kick_heartbeat.notify_one();
                }
            }
            Err(e) => tracing::warn!("agent signals: {e}"),
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
}
