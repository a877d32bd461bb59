//! The sender thread of async calls: sends the requests that could not be written at once
//! (a full ring, a payload in fragments), so that [`super::Pool::call_async`] never blocks.
//! Started on first use; one thread serves every worker, in submission order.

use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;

use knit_core::ErrorCode;

use super::inner::{lock, Inner};
use super::slot::CallSlot;
use crate::call::{CallError, Payload};

/// A request waiting to be sent.
pub(crate) struct Job {
    pub(crate) worker: usize,
    pub(crate) function_id: u32,
    pub(crate) payload: Payload<'static>,
    pub(crate) deadline_ns: u64,
    pub(crate) slot: Arc<CallSlot>,
}

/// The queue into the sender thread and the thread itself.
pub(crate) struct Sender {
    queue: mpsc::Sender<Job>,
    thread: JoinHandle<()>,
}

/// Queues `job`, starting the thread on first use.
pub(crate) fn submit(inner: &Arc<Inner>, job: Job) -> Result<(), CallError> {
    let mut sender = lock(&inner.sender);
    if inner.closing.load(Ordering::Acquire) {
        return Err(CallError::new(
            ErrorCode::Shutdown,
            "the pool is shutting down",
        ));
    }
    if sender.is_none() {
        let (queue, jobs) = mpsc::channel();
        let me = Arc::clone(inner);
        let thread = std::thread::Builder::new()
            .name("knit-sender".to_owned())
            .spawn(move || run(&me, &jobs))
            .map_err(|e| {
                CallError::new(
                    ErrorCode::OsError,
                    format!("cannot start the sender thread: {e}"),
                )
            })?;
        *sender = Some(Sender { queue, thread });
    }
    match sender.as_ref() {
        Some(s) => s
            .queue
            .send(job)
            .map_err(|_| CallError::new(ErrorCode::Shutdown, "the sender thread has stopped")),
        None => Err(CallError::new(ErrorCode::Shutdown, "no sender thread")),
    }
}

/// Stops the thread after it failed or sent what is queued (the pool is closing, so every
/// wait in it ends at once) and joins it.
pub(crate) fn stop(inner: &Inner) {
    let sender = lock(&inner.sender).take();
    if let Some(Sender { queue, thread }) = sender {
        drop(queue);
        let _ = thread.join();
    }
}

fn run(inner: &Inner, jobs: &mpsc::Receiver<Job>) {
    while let Ok(job) = jobs.recv() {
        // Cancelled (or failed) before it was sent: nothing goes out.
        if job.slot.is_done() {
            continue;
        }
        let Some(w) = inner.workers.get(job.worker) else {
            job.slot.complete(Err(CallError::new(
                ErrorCode::InvalidArgument,
                "worker index",
            )));
            continue;
        };
        match inner.send(
            w,
            job.function_id,
            &job.payload,
            job.deadline_ns,
            &job.slot,
            true,
        ) {
            Ok(id) => {
                job.slot.set_id(id);
                // Cancelled while it was being sent: abandon it now (CANCEL-1).
                if job.slot.is_done() {
                    inner.cancel(w, id, ErrorCode::Cancelled, "cancelled by the caller");
                }
            }
            Err(e) => {
                job.slot.complete(Err(e));
            }
        }
    }
}
