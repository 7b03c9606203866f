//! Heartbeats (§7): `windlass-hosts/<host>`, put every interval and, 100
//! ms after a change (a signal of the agent, a step of ours), at once.
//! Built from the agent's `Status`; drift as count and kinds only.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::Notify;

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
        apps: status.apps,
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
        // Unanswered although connected: the connection may be dead
        // without the socket knowing (fleetd sends no PING of its own).
        if e.is_transport()
            && ctx.client.connection_state() == async_nats::connection::State::Connected
        {
            tracing::warn!("heartbeat: reconnecting to NATS");
            if let Err(e) = ctx.client.force_reconnect().await {
                tracing::warn!("reconnect: {e}");
            }
        }
    }
}

/// The heartbeat's clock: an OS thread that sleeps in the kernel until
/// each tick (the first at once, then every `interval`; a late tick moves
/// the next ones, as tokio's `MissedTickBehavior::Delay`) and notifies
/// `tick`. One wakeup per tick: a tokio timer this long would also wake
/// the runtime when its wheel moves the deadline to a finer level. The
/// thread ends at the first tick after `tick` is dropped.
pub(crate) fn clock(interval: Duration, tick: std::sync::Weak<Notify>) {
    let run = move || {
        let mut next = std::time::Instant::now();
        loop {
            match tick.upgrade() {
                Some(t) => t.notify_one(),
                None => return,
            }
            let now = std::time::Instant::now();
            next += interval;
            if next <= now {
                next = now + interval;
            }
            std::thread::sleep(next - now);
        }
    };
    if let Err(e) = std::thread::Builder::new()
        .name("fleetd-heartbeat".into())
        .stack_size(64 * 1024)
        .spawn(run)
    {
        // Nothing beats without it; a fleetd that cannot make a thread
        // is in no state to go on either.
        panic!("fleetd: no thread for the heartbeat clock: {e}");
    }
}

/// The heartbeat task; each tick also judges a parked order again,
/// retries a waiting outbox, and lets the tasks that wait for something
/// absent (the agent's bus) try again: they share its wakeup instead of
/// keeping timers of their own.
pub(crate) async fn run<A: AgentApi>(ctx: Arc<Ctx<A>>) {
    let tick = Arc::new(Notify::new());
    clock(ctx.cfg.heartbeat_interval, Arc::downgrade(&tick));
    loop {
        tokio::select! {
            _ = tick.notified() => {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// Threads of this process named like the clock's (`comm` keeps 15
    /// bytes of the name).
    fn clocks() -> usize {
        std::fs::read_dir("/proc/self/task")
            .unwrap()
            .flatten()
            .filter(|t| {
                std::fs::read_to_string(t.path().join("comm"))
                    .is_ok_and(|c| c.trim_end() == "fleetd-heartbea")
            })
            .count()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_clock_ticks_at_once_then_every_interval_and_ends_after_its_notify() {
        let tick = Arc::new(Notify::new());
        let t = Instant::now();
        clock(Duration::from_millis(200), Arc::downgrade(&tick));
        tick.notified().await;
        assert!(
            t.elapsed() < Duration::from_millis(150),
            "{:?}",
            t.elapsed()
        );
        tick.notified().await;
        tick.notified().await;
        let e = t.elapsed();
        assert!(
            e >= Duration::from_millis(390) && e < Duration::from_millis(1500),
            "{e:?}"
        );
        assert_eq!(clocks(), 1);
        drop(tick);
        let t = Instant::now();
        while clocks() > 0 {
            assert!(
                t.elapsed() < Duration::from_secs(2),
                "the clock thread lives on"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
