//! `knit_config`: what a pool (or a bare region) is built from. Setters record values; they are
//! checked when the pool or region is built, where the runtime names the field that is wrong.

use std::ffi::{c_char, OsString};
use std::os::unix::ffi::OsStrExt;
use std::process::Command;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use knit_core::geometry::Params;
use knit_rt::{Backpressure, Handlers, PoolBuilder, SpinPolicy};

use crate::args::{nonzero, out, store, timeout};
use crate::handle::{self, Object};
use crate::handlers::{HandlerSet, KnitHandlers};
use crate::status::{guard, Failure, FfiResult, KnitStatus};
use crate::worker::spin_policy;

/// Backpressure: a call waits for room in a full request ring (the default); nothing is lost.
pub const KNIT_BACKPRESSURE_WAIT: u32 = 0;
/// Backpressure: a call to a full request ring fails at once with `KNIT_WOULD_BLOCK`.
pub const KNIT_BACKPRESSURE_ERROR: u32 = 1;

/// Most entries read from a NULL-terminated `argv` or `envp` array: a bound on the scan of an
/// array whose terminator is missing.
const MAX_ARRAY_ENTRIES: usize = 65_536;

/// The configuration of a pool or region (opaque).
pub struct KnitConfig {
    _private: [u8; 0],
}

/// Which workers a pool runs.
#[derive(Clone)]
enum Kind {
    Threads(Handlers),
    Process {
        argv: Vec<OsString>,
        env: Vec<(OsString, OsString)>,
    },
    /// Started by someone else (`knit_config_set_external`).
    External,
}

/// The values set so far; `None` keeps the runtime's default.
#[derive(Clone, Default)]
pub(crate) struct Settings {
    workers: Option<u32>,
    kind: Option<Kind>,
    spin: Option<SpinPolicy>,
    ring_sizes: Option<(u32, u32)>,
    channels: Option<(u32, u32)>,
    inflight: Option<u32>,
    max_message_len: Option<u64>,
    default_deadline: Option<Duration>,
    restart: Option<bool>,
    backpressure: Option<Backpressure>,
    start_timeout: Option<Duration>,
    shutdown_timeout: Option<Duration>,
}

impl Settings {
    /// The pool builder these settings describe.
    pub(crate) fn builder(&self) -> FfiResult<PoolBuilder> {
        let mut b = PoolBuilder::default();
        b = match &self.kind {
            Some(Kind::Threads(h)) => b.threads(h.clone()),
            Some(Kind::Process { argv, env }) => {
                let (program, args) = argv.split_first().ok_or_else(|| Failure::invalid("argv is empty"))?;
                let mut cmd = Command::new(program);
                cmd.args(args);
                for (k, v) in env {
                    cmd.env(k, v);
                }
                b.process(cmd)
            }
            Some(Kind::External) => b.external(),
            None => {
                return Err(Failure::invalid(
                    "the config names no workers: call knit_config_set_threads, knit_config_set_process or knit_config_set_external",
                ))
            }
        };
        if let Some(n) = self.workers {
            b = b.workers(n);
        }
        if let Some(s) = self.spin {
            b = b.spin(s);
        }
        if let Some((req, resp)) = self.ring_sizes {
            b = b.ring_sizes(req, resp);
        }
        if let Some((slots, cap)) = self.channels {
            b = b.channels(slots, cap);
        }
        if let Some(n) = self.inflight {
            b = b.inflight(n);
        }
        if let Some(n) = self.max_message_len {
            b = b.max_message_len(n);
        }
        if let Some(d) = self.default_deadline {
            b = b.default_deadline(d);
        }
        if let Some(r) = self.restart {
            b = b.restart(r);
        }
        if let Some(p) = self.backpressure {
            b = b.backpressure(p);
        }
        if let Some(d) = self.start_timeout {
            b = b.start_timeout(d);
        }
        if let Some(d) = self.shutdown_timeout {
            b = b.shutdown_timeout(d);
        }
        Ok(b)
    }

    /// The region geometry these settings describe (for `knit_region_create`).
    pub(crate) fn params(&self) -> Params {
        let mut p = Params::default();
        if let Some(n) = self.workers {
            p.worker_slots = n;
        }
        if let Some((req, resp)) = self.ring_sizes {
            p.request_ring_cap = req;
            p.response_ring_cap = resp;
        }
        if let Some((slots, cap)) = self.channels {
            p.channel_slots = slots;
            p.channel_ring_cap = if slots == 0 { 0 } else { cap };
        }
        if let Some(n) = self.inflight {
            p.inflight_max = n;
        }
        if let Some(n) = self.max_message_len {
            p.max_message_len = n;
        }
        p
    }
}

/// The object behind a `knit_config` handle.
pub(crate) struct ConfigObject(Mutex<Settings>);

impl Object for ConfigObject {
    type Opaque = KnitConfig;
    const KIND: &'static str = "knit_config";
}

impl ConfigObject {
    /// A copy of the settings.
    pub(crate) fn settings(&self) -> Settings {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Runs `f` on the settings behind `config`.
fn set(config: *mut KnitConfig, f: impl FnOnce(&mut Settings) -> FfiResult) -> FfiResult {
    let c = handle::get::<ConfigObject>(config)?;
    let mut settings = c.0.lock().unwrap_or_else(PoisonError::into_inner);
    f(&mut settings)
}

/// Reads a NULL-terminated array of C strings (at most [`MAX_ARRAY_ENTRIES`]).
///
/// # Safety
/// `array` points to C string pointers ending with NULL, each NUL-terminated.
unsafe fn string_array(array: *const *const c_char, what: &str) -> FfiResult<Vec<OsString>> {
    let mut items = Vec::new();
    for i in 0..MAX_ARRAY_ENTRIES {
        // SAFETY: the array is NULL-terminated (caller's contract) and entries before the
        // terminator are read one by one, so `i` never passes it.
        let item = unsafe { *array.add(i) };
        if item.is_null() {
            return Ok(items);
        }
        // SAFETY: each entry is a NUL-terminated string (caller's contract).
        let s = unsafe { std::ffi::CStr::from_ptr(item) };
        items.push(std::ffi::OsStr::from_bytes(s.to_bytes()).to_owned());
    }
    Err(Failure::invalid(format!(
        "{what} has no NULL terminator within {MAX_ARRAY_ENTRIES} entries"
    )))
}

/// Creates a configuration with the defaults in `*config`: one worker, no worker kind yet
/// (set one with `knit_config_set_threads` or `knit_config_set_process`), balanced spinning,
/// 256 KiB rings, 256 calls in flight per worker, 64 MiB messages, no channels, no default
/// deadline, no restart, waiting backpressure, 5 s start timeout, 2 s shutdown timeout.
///
/// Ownership: the caller owns the new handle and frees it with `knit_config_free`.
/// Thread safety: safe from any thread; a config may be shared, its setters are serialised.
///
/// # Safety
/// `config` points to a writable `knit_config *`.
#[no_mangle]
pub unsafe extern "C" fn knit_config_new(config: *mut *mut KnitConfig) -> KnitStatus {
    guard("knit_config_new", || {
        let config = out(config, "config")?;
        let h = handle::register(ConfigObject(Mutex::new(Settings::default())))?;
        // SAFETY: checked non-NULL; writable by the caller's contract.
        unsafe { store(config, h) };
        Ok(())
    })
}

/// Frees a configuration; pools built from it are not affected.
///
/// Ownership: the handle is invalid afterwards.
/// Thread safety: safe from any thread.
#[no_mangle]
pub extern "C" fn knit_config_free(config: *mut KnitConfig) -> KnitStatus {
    guard("knit_config_free", || {
        handle::remove::<ConfigObject>(config).map(drop)
    })
}

/// Sets the number of workers (1 to 1024).
///
/// Thread safety: safe from any thread.
#[no_mangle]
pub extern "C" fn knit_config_set_workers(config: *mut KnitConfig, workers: u32) -> KnitStatus {
    guard("knit_config_set_workers", || {
        let n = nonzero(workers, "workers")?;
        set(config, |s| {
            s.workers = Some(n);
            Ok(())
        })
    })
}

/// Makes the workers threads of this process, each serving a copy of `handlers` (their
/// handlers may run on several threads at once).
///
/// Ownership: the config shares the handlers; `handlers` stays the caller's.
/// Thread safety: safe from any thread.
#[no_mangle]
pub extern "C" fn knit_config_set_threads(
    config: *mut KnitConfig,
    handlers: *const KnitHandlers,
) -> KnitStatus {
    guard("knit_config_set_threads", || {
        let h = handle::get::<HandlerSet>(handlers)?.snapshot();
        set(config, |s| {
            s.kind = Some(Kind::Threads(h));
            Ok(())
        })
    })
}

/// Makes the workers processes started from `argv` (a NULL-terminated array: `argv[0]` is the
/// program, searched in `PATH` when it has no `/`; the rest are its arguments). `envp` is NULL
/// or a NULL-terminated array of `"NAME=VALUE"` strings added to the inherited environment.
/// Each worker also gets `KNIT_REGION` and `KNIT_SLOT` (MAP-5); it calls `knit_worker_from_env`.
/// A dead worker is started again from the same command when restart is on.
///
/// Ownership: the strings are copied.
/// Thread safety: safe from any thread.
///
/// # Safety
/// `argv` (and `envp` when not NULL) is a NULL-terminated array of NUL-terminated strings.
#[no_mangle]
pub unsafe extern "C" fn knit_config_set_process(
    config: *mut KnitConfig,
    argv: *const *const c_char,
    envp: *const *const c_char,
) -> KnitStatus {
    guard("knit_config_set_process", || {
        if argv.is_null() {
            return Err(Failure::invalid("argv is NULL"));
        }
        // SAFETY: the caller's contract for `argv`.
        let argv = unsafe { string_array(argv, "argv") }?;
        if argv.first().map_or(true, |p| p.is_empty()) {
            return Err(Failure::invalid(
                "argv[0] (the program) is missing or empty",
            ));
        }
        let mut env = Vec::new();
        if !envp.is_null() {
            // SAFETY: the caller's contract for `envp`.
            for entry in unsafe { string_array(envp, "envp") }? {
                let bytes = entry.as_bytes();
                let eq = bytes
                    .iter()
                    .position(|&b| b == b'=')
                    .filter(|&i| i > 0)
                    .ok_or_else(|| {
                        Failure::invalid(format!("envp entry {entry:?} is not NAME=VALUE"))
                    })?;
                let (name, value) = bytes.split_at(eq);
                let value = value.get(1..).unwrap_or_default();
                env.push((
                    std::ffi::OsStr::from_bytes(name).to_owned(),
                    std::ffi::OsStr::from_bytes(value).to_owned(),
                ));
            }
        }
        set(config, |s| {
            s.kind = Some(Kind::Process { argv, env });
            Ok(())
        })
    })
}

/// Sets how long waiting threads (callers and workers) spin before parking: `policy` is a
/// `KNIT_SPIN_*` value; `iterations` is used only by `KNIT_SPIN_ITERATIONS`.
///
/// Thread safety: safe from any thread.
#[no_mangle]
pub extern "C" fn knit_config_set_spin(
    config: *mut KnitConfig,
    policy: u32,
    iterations: u32,
) -> KnitStatus {
    guard("knit_config_set_spin", || {
        let spin = spin_policy(policy, iterations)?;
        set(config, |s| {
            s.spin = Some(spin);
            Ok(())
        })
    })
}

/// Sets the data bytes of each request and response ring (powers of two, 4096 to 2^30;
/// checked when the pool is built). A request or result larger than half a ring is sent in
/// fragments.
///
/// Thread safety: safe from any thread.
#[no_mangle]
pub extern "C" fn knit_config_set_ring_sizes(
    config: *mut KnitConfig,
    request_ring: u32,
    response_ring: u32,
) -> KnitStatus {
    guard("knit_config_set_ring_sizes", || {
        set(config, |s| {
            s.ring_sizes = Some((request_ring, response_ring));
            Ok(())
        })
    })
}

/// Sets the number of channel slots (0 to 4096) and the data bytes of each channel ring (a
/// power of two, 4096 to 2^30).
///
/// Thread safety: safe from any thread.
#[no_mangle]
pub extern "C" fn knit_config_set_channels(
    config: *mut KnitConfig,
    slots: u32,
    ring_size: u32,
) -> KnitStatus {
    guard("knit_config_set_channels", || {
        set(config, |s| {
            s.channels = Some((slots, ring_size));
            Ok(())
        })
    })
}

/// Sets the most calls in flight per worker (a power of two, 1 to 65536).
///
/// Thread safety: safe from any thread.
#[no_mangle]
pub extern "C" fn knit_config_set_inflight(config: *mut KnitConfig, calls: u32) -> KnitStatus {
    guard("knit_config_set_inflight", || {
        set(config, |s| {
            s.inflight = Some(calls);
            Ok(())
        })
    })
}

/// Sets the largest payload of a request or result in bytes (1 to 2^40). A larger request
/// fails with `KNIT_PAYLOAD_TOO_LARGE` without being sent.
///
/// Thread safety: safe from any thread.
#[no_mangle]
pub extern "C" fn knit_config_set_max_message_len(
    config: *mut KnitConfig,
    bytes: u64,
) -> KnitStatus {
    guard("knit_config_set_max_message_len", || {
        set(config, |s| {
            s.max_message_len = Some(bytes);
            Ok(())
        })
    })
}

/// Sets the deadline of calls that give none (`timeout_ns` of 0), in nanoseconds from the
/// call; `KNIT_FOREVER` for none (the default).
///
/// Thread safety: safe from any thread.
#[no_mangle]
pub extern "C" fn knit_config_set_default_deadline(
    config: *mut KnitConfig,
    timeout_ns: u64,
) -> KnitStatus {
    guard("knit_config_set_default_deadline", || {
        set(config, |s| {
            s.default_deadline = timeout(timeout_ns);
            Ok(())
        })
    })
}

/// Sets whether a dead worker is started again (default false).
///
/// Thread safety: safe from any thread.
#[no_mangle]
pub extern "C" fn knit_config_set_restart(config: *mut KnitConfig, restart: bool) -> KnitStatus {
    guard("knit_config_set_restart", || {
        set(config, |s| {
            s.restart = Some(restart);
            Ok(())
        })
    })
}

/// Sets what a call does when its worker's request ring is full: `KNIT_BACKPRESSURE_WAIT`
/// (the default) or `KNIT_BACKPRESSURE_ERROR`.
///
/// Thread safety: safe from any thread.
#[no_mangle]
pub extern "C" fn knit_config_set_backpressure(config: *mut KnitConfig, policy: u32) -> KnitStatus {
    guard("knit_config_set_backpressure", || {
        let policy = match policy {
            KNIT_BACKPRESSURE_WAIT => Backpressure::Wait,
            KNIT_BACKPRESSURE_ERROR => Backpressure::Error,
            other => {
                return Err(Failure::invalid(format!(
                    "backpressure {other} is not a KNIT_BACKPRESSURE_* value"
                )))
            }
        };
        set(config, |s| {
            s.backpressure = Some(policy);
            Ok(())
        })
    })
}

/// Sets how long a worker may take from being started to being ready (default 5 s), in
/// nanoseconds.
///
/// Thread safety: safe from any thread.
#[no_mangle]
pub extern "C" fn knit_config_set_start_timeout(
    config: *mut KnitConfig,
    timeout_ns: u64,
) -> KnitStatus {
    guard("knit_config_set_start_timeout", || {
        set(config, |s| {
            s.start_timeout = Some(Duration::from_nanos(timeout_ns));
            Ok(())
        })
    })
}

/// Sets how long shutting a pool down waits for its workers to leave before killing them
/// (default 2 s), in nanoseconds.
///
/// Thread safety: safe from any thread.
#[no_mangle]
pub extern "C" fn knit_config_set_shutdown_timeout(
    config: *mut KnitConfig,
    timeout_ns: u64,
) -> KnitStatus {
    guard("knit_config_set_shutdown_timeout", || {
        set(config, |s| {
            s.shutdown_timeout = Some(Duration::from_nanos(timeout_ns));
            Ok(())
        })
    })
}

/// Makes the pool start no workers (`external` true): `knit_pool_start` creates the region,
/// reserves every worker entry and returns at once, without waiting for anyone. Workers are
/// started by someone else (a supervisor, another program, a test) and attach by the region's
/// name (`knit_pool_get_info`) and their index (1 to the number of workers), for example with
/// `KNIT_REGION` and `KNIT_SLOT` in their environment and `knit_worker_from_env`. Then
/// `knit_pool_wait_worker` waits for one, calls go to the ready ones (`knit_call_on` and
/// `knit_call_async_on` pin a call to one), and `knit_pool_release_worker` lets one go.
///
/// Such a worker is not this process's child: its death is found through its participant
/// entry and its calls then fail with `KNIT_PEER_DIED`. The start timeout bounds only a worker
/// that claimed its entry and never finished attaching; a reserved entry waits as long as the
/// pool lives. With restart on, a dead worker's entry is reserved again (a new epoch) so that
/// a new worker can attach; no process is started (`knit_pool_reserve_worker` does it on
/// demand). `external` false undoes an earlier true: the config then names no workers until
/// `knit_config_set_threads` or `knit_config_set_process`.
///
/// Thread safety: safe from any thread.
#[no_mangle]
pub extern "C" fn knit_config_set_external(config: *mut KnitConfig, external: bool) -> KnitStatus {
    guard("knit_config_set_external", || {
        set(config, |s| {
            if external {
                s.kind = Some(Kind::External);
            } else if matches!(s.kind, Some(Kind::External)) {
                s.kind = None;
            }
            Ok(())
        })
    })
}
