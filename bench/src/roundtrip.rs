//! Round trips: a request of `payload` bytes that the peer echoes back, one outstanding at a
//! time, each timed on its own.

use std::time::Instant;

use crate::budget::Budget;
use crate::results::{Label, RoundTripRow};
use crate::stats::Latency;
use crate::{error, Result};

/// The payload sizes of every round-trip case: 0 B, 64 B, 4 KiB, 64 KiB, 1 MiB.
pub const PAYLOADS: [usize; 5] = [0, 64, 4 << 10, 64 << 10, 1 << 20];

/// The largest payload, which every transport must carry.
pub const MAX_PAYLOAD: usize = 1 << 20;

/// A connected host side: sends a request and receives the peer's echo.
pub trait RoundTrip {
    /// Sends `request` and puts the echoed reply into `reply` (cleared first).
    fn call(&mut self, request: &[u8], reply: &mut Vec<u8>) -> Result<()>;

    /// Stops the peer and checks that it exited cleanly.
    fn close(self: Box<Self>) -> Result<()>;
}

/// A transport that can be measured with round trips.
pub trait RoundTripBench {
    /// Which transport and mode.
    fn label(&self) -> Label;

    /// Starts the peer process and connects to it.
    fn connect(&self) -> Result<Box<dyn RoundTrip>>;
}

/// A request of `len` bytes whose content depends on `len`, so a reply of another case or a
/// stale buffer is caught.
pub fn request_bytes(len: usize) -> Vec<u8> {
    (0..len).map(|i| ((i * 131 + len) % 251) as u8).collect()
}

/// Measures `rt` with requests of `payload` bytes for `budget`: warm up, then time each call.
/// Every reply's length is checked and the last reply is compared byte for byte (outside the
/// timed part).
pub fn measure(
    rt: &mut dyn RoundTrip,
    label: Label,
    payload: usize,
    budget: &Budget,
) -> Result<RoundTripRow> {
    let request = request_bytes(payload);
    let mut reply = Vec::with_capacity(payload);
    let warm = Instant::now();
    while warm.elapsed() < budget.warmup {
        rt.call(&request, &mut reply)?;
        check_len(&reply, payload)?;
    }
    let mut samples: Vec<u64> = Vec::with_capacity(budget.max_samples.min(1 << 20));
    let start = Instant::now();
    while samples.len() < budget.max_samples {
        // The clock is read once per 16 calls to end the case; each call is timed alone.
        if samples.len() % 16 == 0 && start.elapsed() >= budget.measure {
            break;
        }
        let t0 = Instant::now();
        rt.call(&request, &mut reply)?;
        let t1 = Instant::now();
        samples.push(u64::try_from((t1 - t0).as_nanos()).unwrap_or(u64::MAX));
        check_len(&reply, payload)?;
    }
    let elapsed = start.elapsed().as_secs_f64();
    if reply != request {
        return Err(error(format!(
            "{}: the reply of {payload} B differs from the request",
            label.id
        )));
    }
    let count = samples.len();
    let latency = Latency::from_samples(&mut samples)
        .ok_or_else(|| error(format!("{}: no sample in the time budget", label.id)))?;
    Ok(RoundTripRow {
        label,
        payload,
        latency,
        calls_per_sec: per_sec(count, elapsed),
        paired_floor_p50_ns: None,
    })
}

fn check_len(reply: &[u8], payload: usize) -> Result<()> {
    if reply.len() == payload {
        Ok(())
    } else {
        Err(error(format!(
            "reply of {} B to a request of {payload} B",
            reply.len()
        )))
    }
}

// Sample counts stay far below 2^53.
#[allow(clippy::cast_precision_loss)]
fn per_sec(count: usize, seconds: f64) -> f64 {
    if seconds > 0.0 {
        count as f64 / seconds
    } else {
        0.0
    }
}

/// The overhead of timing one call: the median of 10 000 back-to-back clock reads (ns).
pub fn timer_overhead_ns() -> f64 {
    let mut samples: Vec<u64> = (0..10_000)
        .map(|_| {
            let t0 = Instant::now();
            let t1 = Instant::now();
            u64::try_from((t1 - t0).as_nanos()).unwrap_or(u64::MAX)
        })
        .collect();
    Latency::from_samples(&mut samples).map_or(0.0, |l| l.p50_ns)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::{Kind, Mode};

    /// An in-process echo, optionally corrupting the reply.
    struct Echo {
        corrupt: bool,
    }

    impl RoundTrip for Echo {
        fn call(&mut self, request: &[u8], reply: &mut Vec<u8>) -> Result<()> {
            reply.clear();
            reply.extend_from_slice(request);
            if self.corrupt {
                if let Some(b) = reply.last_mut() {
                    *b ^= 1;
                }
            }
            Ok(())
        }
        fn close(self: Box<Self>) -> Result<()> {
            Ok(())
        }
    }

    const LABEL: Label = Label {
        id: "echo",
        title: "in-process echo",
        mode: Mode::Spinning,
        kind: Kind::Peer,
    };

    #[test]
    fn measures_an_echo_with_ordered_percentiles() {
        let row = measure(&mut Echo { corrupt: false }, LABEL, 64, &Budget::quick()).unwrap();
        assert_eq!(row.payload, 64);
        assert!(row.latency.samples > 0);
        assert!(row.latency.p50_ns <= row.latency.p99_ns);
        assert!(row.latency.p99_ns <= row.latency.p999_ns);
        assert!(row.calls_per_sec > 0.0);
    }

    #[test]
    fn a_wrong_reply_fails_the_case() {
        let err = measure(&mut Echo { corrupt: true }, LABEL, 64, &Budget::quick()).unwrap_err();
        assert!(err.to_string().contains("differs"), "{err}");
    }

    #[test]
    fn requests_differ_by_size() {
        assert_eq!(request_bytes(0), Vec::<u8>::new());
        assert_ne!(request_bytes(64)[..8], request_bytes(65)[..8]);
    }
}
