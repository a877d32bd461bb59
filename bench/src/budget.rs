//! How long each case runs: the full run, or the quick mode that only checks that everything
//! works (CI) and asserts nothing about time.

use std::time::Duration;

/// Time and sample limits of one case.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    /// True for the quick mode.
    pub quick: bool,
    /// Calls made before measuring, to fault in pages and warm caches and branch predictors.
    pub warmup: Duration,
    /// How long one round-trip case measures (it also stops at `max_samples`).
    pub measure: Duration,
    /// The most samples one round-trip case keeps.
    pub max_samples: usize,
    /// How long one stream case sends.
    pub stream: Duration,
    /// How long the floor is measured right before each case of another transport (the
    /// paired floor), so that a ratio compares two measurements taken moments apart.
    pub paired_floor: Duration,
}

impl Budget {
    /// The budget of a paired-floor slice: the same warm-up, a shorter measurement.
    #[must_use]
    pub fn paired(&self) -> Budget {
        Budget {
            measure: self.paired_floor,
            stream: self.paired_floor,
            ..*self
        }
    }
}

impl Budget {
    /// The full run: about 1 s per round-trip case and per stream case, enough samples for a
    /// p99.9 at every size (a thousand or more even at 1 MiB).
    pub fn full() -> Budget {
        Budget {
            quick: false,
            warmup: Duration::from_millis(200),
            measure: Duration::from_secs(1),
            max_samples: 2_000_000,
            stream: Duration::from_secs(1),
            paired_floor: Duration::from_millis(200),
        }
    }

    /// The quick mode: a few milliseconds per case, so the whole suite runs in seconds.
    pub fn quick() -> Budget {
        Budget {
            quick: true,
            warmup: Duration::from_millis(5),
            measure: Duration::from_millis(30),
            max_samples: 5_000,
            stream: Duration::from_millis(30),
            paired_floor: Duration::from_millis(10),
        }
    }
}
