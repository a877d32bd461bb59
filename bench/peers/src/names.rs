//! Helpers shared by the peers: unique service names and error conversion.

use std::fmt::Debug;
use std::time::{SystemTime, UNIX_EPOCH};

use knit_bench::{error, Error};

/// A service name no other run uses: the process id and the time.
pub fn unique_service(kind: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("knit-bench/{}/{nanos}/{kind}", std::process::id())
}

/// Turns a library error (some implement only `Debug`) into a benchmark error naming `what`.
pub fn fail<E: Debug>(what: &'static str) -> impl FnOnce(E) -> Error {
    move |e| error(format!("{what}: {e:?}"))
}
