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
        for w in &inner.workers {
            inner.pump(w);
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
