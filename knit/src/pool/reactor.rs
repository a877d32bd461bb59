//! The reactor thread of async calls: drains responses for outstanding [`super::CallFuture`]s
//! and wakes their tasks. It parks on the host doorbell only while async calls are
//! outstanding (otherwise every worker publication would pay a futex wake for a sleeping
//! reactor) and waits on a private condition variable the rest of the time.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::inner::{lock, Inner};
use crate::spin::wait;

/// The longest the idle reactor sleeps before it looks at the pool's state again.
const IDLE_WAIT: Duration = Duration::from_millis(100);

/// Starts the reactor once, on the first async call.
pub(crate) fn ensure_started(inner: &Arc<Inner>) {
    let mut slot = lock(&inner.reactor);
    if slot.is_none() && !inner.closing.load(Ordering::Acquire) {
        let me = Arc::clone(inner);
        *slot = std::thread::Builder::new()
            .name("knit-reactor".to_owned())
            .spawn(move || run(&me))
            .ok();
    }
}

fn run(inner: &Inner) {
    while !inner.closing.load(Ordering::Acquire) {
        if inner.async_outstanding.load(Ordering::Acquire) == 0 {
            inner.reactor_signal.wait(IDLE_WAIT);
            continue;
        }
        // Tails first: a response published after this is seen by `ready` below.
        let seen: Vec<u64> = inner
            .workers
            .iter()
            .map(|w| w.mailbox.response.load_tail())
            .collect();
        // A worker whose lock another thread holds was not drained: a response already in its
        // ring would not move its tail again, so parking now could lose that outcome. Try
        // again instead (the holder keeps its lock only for a bounded step).
        // Every worker is pumped, so no short-circuit here.
        let mut contended = false;
        for w in &inner.workers {
            contended |= inner.try_pump(w).is_none();
        }
        if contended {
            std::thread::yield_now();
            continue;
        }
        let ready = || {
            inner.async_outstanding.load(Ordering::Acquire) == 0
                || inner.closing.load(Ordering::Acquire)
                || inner
                    .workers
                    .iter()
                    .zip(&seen)
                    .any(|(w, t)| w.mailbox.response.load_tail() != *t)
        };
        // WAIT-3: host threads park on the host's doorbell; every stop is re-checked above.
        let _ = wait(&inner.host_bell, inner.config.spin, 0, ready, || {
            Ok::<(), ()>(())
        });
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::{Handlers, Pool};

    /// Regression: when the reactor's drain found a worker's lock held by another thread, it
    /// waited only for a *new* tail, so a response already in the ring stayed there until some
    /// other response arrived: with nothing else in flight, forever. Here the test itself
    /// holds the lock while the worker answers and the reactor comes round, then lets go: the
    /// outcome must arrive. The 20 s bound only turns such a hang into a failure; it is not a
    /// measure of speed (the outcome takes well under a second).
    #[test]
    fn an_outcome_published_while_the_lock_is_held_is_delivered() {
        let pool = Pool::builder()
            .threads(Handlers::new().handle("echo", |_ctx, req| Ok(req.payload.to_vec())))
            .build()
            .expect("pool starts");
        // Start the reactor, and let it go idle-parked on the doorbell with one call pending.
        assert_eq!(
            pool.call_async("echo", "warm").wait().unwrap().text(),
            Some("warm")
        );
        let w = &pool.inner.workers[0];
        let tail_before = w.mailbox.response.load_tail();
        // Send first (sending takes the lock), then hold the lock while the answer arrives.
        let future = {
            let future = pool.call_async("echo", "held");
            let _guard = w.state.lock().expect("worker lock");
            while w.mailbox.response.load_tail() == tail_before {
                std::thread::yield_now();
            }
            // The response is in the ring; give the reactor time to wake, find the lock held
            // and decide what to wait for, while it is still held.
            std::thread::sleep(Duration::from_millis(200));
            future
        };
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(future.wait().map(|r| r.text().map(str::to_owned)));
        });
        let outcome = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("the response already in the ring is never delivered");
        assert_eq!(outcome.expect("call succeeds"), Some("held".to_owned()));
    }
}
