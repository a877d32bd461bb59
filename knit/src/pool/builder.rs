//! [`PoolBuilder`]: how many workers, of which kind, and the pool's policies.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use knit_core::geometry::Params;
use knit_core::ErrorCode;

use super::Pool;
use crate::error::{Error, Result};
use crate::handler::Handlers;
use crate::spin::SpinPolicy;

/// What to do when a request ring is full or no cancel entry is free (CALL-2).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Backpressure {
    /// Wait for room, draining responses meanwhile (the default). Nothing is lost.
    #[default]
    Wait,
    /// Fail the call at once with `WOULD_BLOCK`; nothing of it was sent.
    Error,
}

/// A worker command, copied out of a [`Command`] so that it can be started again (LIVE-5).
#[derive(Clone, Debug)]
pub(crate) struct CommandTemplate {
    program: OsString,
    args: Vec<OsString>,
    envs: Vec<(OsString, Option<OsString>)>,
    cwd: Option<PathBuf>,
}

impl CommandTemplate {
    fn from_command(cmd: &Command) -> Self {
        CommandTemplate {
            program: cmd.get_program().to_owned(),
            args: cmd.get_args().map(ToOwned::to_owned).collect(),
            envs: cmd
                .get_envs()
                .map(|(k, v)| (k.to_owned(), v.map(ToOwned::to_owned)))
                .collect(),
            cwd: cmd.get_current_dir().map(ToOwned::to_owned),
        }
    }

    /// A fresh command with the program, arguments, environment and directory.
    pub(crate) fn command(&self) -> Command {
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args);
        for (k, v) in &self.envs {
            match v {
                Some(v) => cmd.env(k, v),
                None => cmd.env_remove(k),
            };
        }
        if let Some(dir) = &self.cwd {
            cmd.current_dir(dir);
        }
        cmd
    }

    /// The command line, for messages.
    pub(crate) fn describe(&self) -> String {
        let mut s = self.program.to_string_lossy().into_owned();
        for a in &self.args {
            s.push(' ');
            s.push_str(&a.to_string_lossy());
        }
        s
    }
}

/// Which workers a pool runs.
#[derive(Clone, Debug)]
pub(crate) enum WorkerKind {
    Threads(Handlers),
    Process(CommandTemplate),
    /// Started by someone else, who attaches them by region name and index (PART-11).
    External,
}

impl WorkerKind {
    pub(crate) fn describe(&self) -> String {
        match self {
            WorkerKind::Threads(_) => "thread worker".to_owned(),
            WorkerKind::Process(cmd) => format!("`{}`", cmd.describe()),
            WorkerKind::External => "external worker".to_owned(),
        }
    }

    /// True for workers the pool does not start (PART-11).
    pub(crate) fn is_external(&self) -> bool {
        matches!(self, WorkerKind::External)
    }
}

/// Everything a pool was configured with.
#[derive(Clone, Debug)]
pub(crate) struct Config {
    pub(crate) workers: u32,
    pub(crate) kind: WorkerKind,
    pub(crate) spin: SpinPolicy,
    pub(crate) params: Params,
    pub(crate) default_deadline: Option<Duration>,
    pub(crate) restart: bool,
    pub(crate) backpressure: Backpressure,
    pub(crate) start_timeout: Duration,
    pub(crate) shutdown_timeout: Duration,
    pub(crate) parent_death_signal: bool,
}

/// Configures and starts a [`Pool`].
#[derive(Debug)]
pub struct PoolBuilder {
    workers: u32,
    kind: Option<WorkerKind>,
    spin: SpinPolicy,
    params: Params,
    default_deadline: Option<Duration>,
    restart: bool,
    backpressure: Backpressure,
    start_timeout: Duration,
    shutdown_timeout: Duration,
    parent_death_signal: bool,
}

impl Default for PoolBuilder {
    fn default() -> Self {
        let params = Params {
            worker_slots: 1,
            channel_slots: 0,
            channel_ring_cap: 0,
            ..Params::default()
        };
        PoolBuilder {
            workers: 1,
            kind: None,
            spin: SpinPolicy::default(),
            params,
            default_deadline: None,
            restart: false,
            backpressure: Backpressure::Wait,
            start_timeout: Duration::from_secs(5),
            shutdown_timeout: Duration::from_secs(2),
            parent_death_signal: true,
        }
    }
}

impl PoolBuilder {
    /// Number of workers (1 to 1024; default 1).
    #[must_use]
    pub fn workers(mut self, n: u32) -> Self {
        self.workers = n;
        self
    }

    /// Workers are threads of this process serving `handlers` (PART-9).
    #[must_use]
    pub fn threads(mut self, handlers: Handlers) -> Self {
        self.kind = Some(WorkerKind::Threads(handlers));
        self
    }

    /// Workers are processes started from `cmd`, which receive `KNIT_REGION` and `KNIT_SLOT`
    /// in their environment (MAP-5). The program, arguments, environment and working directory
    /// are kept, so that a dead worker can be started again (LIVE-5); standard streams are
    /// inherited.
    #[must_use]
    // By value, so that `.process(Command::new(..))` reads naturally.
    #[allow(clippy::needless_pass_by_value)]
    pub fn process(mut self, cmd: Command) -> Self {
        self.kind = Some(WorkerKind::Process(CommandTemplate::from_command(&cmd)));
        self
    }

    /// The pool starts no workers: it creates the region, reserves every worker entry (PART-4,
    /// MBX-4) and adopts the workers that someone else starts and attaches by the region's name
    /// ([`Pool::region_name`]) and their index (PART-11; MAP-5 is the usual way to pass both).
    /// [`PoolBuilder::build`] does not wait for them: [`Pool::wait_worker`] waits for one, calls
    /// go to the ready ones ([`Pool::call_on`] pins a call to one), and
    /// [`Pool::release_worker`] lets one go. Such a worker is not this process's child: its
    /// death is found through its participant entry (LIVE-2) and its calls then fail with
    /// `PEER_DIED` (LIVE-3). The start timeout bounds only a claimed entry that stays
    /// ATTACHING; a RESERVED entry waits for its worker as long as the pool lives. With
    /// [`PoolBuilder::restart`] a dead worker's entry is reserved again under a new epoch (no
    /// process is started); [`Pool::reserve_worker`] does it on demand.
    #[must_use]
    pub fn external(mut self) -> Self {
        self.kind = Some(WorkerKind::External);
        self
    }

    /// How long waiters spin before parking (WAIT-1).
    #[must_use]
    pub fn spin(mut self, spin: SpinPolicy) -> Self {
        self.spin = spin;
        self
    }

    /// Data bytes of each request and response ring (powers of two, 4096 to 2^30).
    #[must_use]
    pub fn ring_sizes(mut self, request: u32, response: u32) -> Self {
        self.params.request_ring_cap = request;
        self.params.response_ring_cap = response;
        self
    }

    /// Channel slots and the data bytes of each channel ring.
    #[must_use]
    pub fn channels(mut self, slots: u32, ring_cap: u32) -> Self {
        self.params.channel_slots = slots;
        self.params.channel_ring_cap = if slots == 0 { 0 } else { ring_cap };
        self
    }

    /// Calls in flight per worker (a power of two, 1 to 65536; CALL-2).
    #[must_use]
    pub fn inflight(mut self, n: u32) -> Self {
        self.params.inflight_max = n;
        self
    }

    /// The largest payload of a message (CALL-10).
    #[must_use]
    pub fn max_message_len(mut self, n: u64) -> Self {
        self.params.max_message_len = n;
        self
    }

    /// The deadline of calls that give none (CALL-8).
    #[must_use]
    pub fn default_deadline(mut self, d: Duration) -> Self {
        self.default_deadline = Some(d);
        self
    }

    /// Whether a dead worker is started again (LIVE-5; default false).
    #[must_use]
    pub fn restart(mut self, on: bool) -> Self {
        self.restart = on;
        self
    }

    /// What a call does when its worker's request ring is full.
    #[must_use]
    pub fn backpressure(mut self, policy: Backpressure) -> Self {
        self.backpressure = policy;
        self
    }

    /// How long a worker may take from being started to its HELLO (LIVE-2's attach timeout;
    /// default 5 s).
    #[must_use]
    pub fn start_timeout(mut self, d: Duration) -> Self {
        self.start_timeout = d;
        self
    }

    /// How long shutdown waits for workers to detach before killing them (default 2 s).
    #[must_use]
    pub fn shutdown_timeout(mut self, d: Duration) -> Self {
        self.shutdown_timeout = d;
        self
    }

    /// Whether process workers get `PR_SET_PDEATHSIG` = `SIGKILL` (Linux; default true), so
    /// that they die with the host at once. Only an extra: workers notice a dead host through
    /// its participant entry anyway (LIVE-4), within the 50 ms park bound (WAIT-4).
    #[must_use]
    pub fn parent_death_signal(mut self, on: bool) -> Self {
        self.parent_death_signal = on;
        self
    }

    /// Creates the region, starts every worker and waits until each sent its HELLO (MBX-2),
    /// for at most the start timeout. A worker that dies or times out at start is an error
    /// naming its command; the pool is then shut down and its region removed. An
    /// [`PoolBuilder::external`] pool only reserves its entries and returns at once.
    pub fn build(self) -> Result<Pool> {
        let kind = self.kind.ok_or_else(|| {
            Error::protocol(
                ErrorCode::InvalidArgument,
                "no worker kind",
                "call .threads(handlers), .process(command) or .external()",
            )
        })?;
        let mut params = self.params;
        params.worker_slots = self.workers;
        let config = Config {
            workers: self.workers,
            kind,
            spin: self.spin,
            params,
            default_deadline: self.default_deadline,
            restart: self.restart,
            backpressure: self.backpressure,
            start_timeout: self.start_timeout,
            shutdown_timeout: self.shutdown_timeout,
            parent_death_signal: self.parent_death_signal,
        };
        Pool::start(config)
    }
}
