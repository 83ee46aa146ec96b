//! Where an execution's time comes from, and deadlines that never overflow.
use std::time::Duration;

/// Where time comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clock {
    /// Wall-clock time: Wait states and retry intervals really wait.
    Real,
    /// Zero wall time: Wait states and retry intervals complete at once and advance a virtual clock, which
    /// history timestamps and `$$` times show. Each branch and iteration keeps its own virtual time and a
    /// Parallel or Map ends at the latest of them, as if they ran side by side. Task TimeoutSeconds and
    /// HeartbeatSeconds still bound the embedder's real work in wall-clock time.
    Virtual,
    /// Wall-clock time with every Wait, retry interval and the execution's TimeoutSeconds divided by this
    /// factor: executions that wait on each other (a lock, a callback) really wait, only faster. For tests.
    /// Task timeouts and heartbeats stay unscaled, as on the virtual clock, except a task's wait for its token (a
    /// person's answer, a provider's event), which is scaled like a Wait. `$$` times and history
    /// timestamps run this many times faster than the wall clock, so waits keep their definition length.
    Scaled(u32),
}

impl Clock {
    /// How long `d` of definition time lasts on this clock; `None` on the virtual clock.
    pub(crate) fn wall(self, d: Duration) -> Option<Duration> {
        match self {
            Clock::Real => Some(d),
            Clock::Scaled(factor) => Some(d / factor.max(1)),
            Clock::Virtual => None,
        }
    }
}

const CENTURY: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// An instant that stands for "never".
pub(crate) fn far_future() -> tokio::time::Instant {
    after(CENTURY)
}

/// `d` from now; a century from now when `d` is past what the platform's clock can add (a
/// `...SecondsPath` may name any number).
pub(crate) fn after(d: Duration) -> tokio::time::Instant {
    let now = tokio::time::Instant::now();
    now.checked_add(d).or_else(|| now.checked_add(CENTURY)).unwrap_or(now)
}

/// Lets the other tasks of this worker run before going on: the task wakes itself and goes to the back
/// of the run queue, so executions that wait on the virtual clock take turns in order. (tokio's
/// `yield_now` defers the wake-up to the next driver poll, after which some tasks run again ahead of
/// others: 50 executions at a time then saw latencies spread over two rounds instead of one.)
pub(crate) async fn take_turn() {
    let mut waited = false;
    std::future::poll_fn(|cx| {
        if waited {
            return std::task::Poll::Ready(());
        }
        waited = true;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    })
    .await
}
