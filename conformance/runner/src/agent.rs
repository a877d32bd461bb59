//! A running agent: started once with `sh -c`, reused for every case, killed (its whole process
//! group) and restarted after a crash or a hang (conformance/README.md §2).

use std::collections::{HashSet, VecDeque};
use std::io::Read;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde_json::{json, Value};

use crate::frame::{read_frame, write_frame, FrameError};

/// How long a new agent has to answer `hello`.
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// Bytes of stderr kept per agent (the report shows the tail).
const STDERR_KEEP: usize = 4096;

/// Why a command got no reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// No reply within the bound: HANG.
    Hang,
    /// The agent exited or closed its stdout: CRASH, with what is known of how.
    Crash(String),
    /// The agent answered something that is not a reply to this command.
    Protocol(String),
}

/// One agent process.
pub struct Agent {
    command: String,
    child: Child,
    stdin: ChildStdin,
    replies: Receiver<Result<Value, String>>,
    stderr: Arc<Mutex<VecDeque<u8>>>,
    next_id: u64,
    /// The `hello` reply.
    pub hello: Value,
    stored: HashSet<String>,
    debug: bool,
}

impl Agent {
    /// Starts `command` and makes the `hello` exchange (answered within [`HELLO_TIMEOUT`]).
    pub fn start(command: &str, debug: bool) -> Result<Agent, String> {
        Self::start_with(command, debug, HELLO_TIMEOUT)
    }

    /// Like [`Agent::start`], waiting at most `hello_timeout` for the `hello` reply.
    pub fn start_with(
        command: &str,
        debug: bool,
        hello_timeout: Duration,
    ) -> Result<Agent, String> {
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(command)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .map_err(|e| format!("cannot start agent `{command}`: {e}"))?;
        let stdin = child.stdin.take().ok_or("no stdin")?;
        let mut stdout = child.stdout.take().ok_or("no stdout")?;
        let mut err_pipe = child.stderr.take().ok_or("no stderr")?;
        let (tx, replies) = mpsc::channel();
        std::thread::spawn(move || loop {
            match read_frame(&mut stdout) {
                Ok(v) => {
                    if tx.send(Ok(v)).is_err() {
                        return;
                    }
                }
                Err(FrameError::BadJson(e)) => {
                    if tx.send(Err(format!("malformed reply: {e}"))).is_err() {
                        return;
                    }
                }
                Err(e) => {
                    let _ = tx.send(Err(format!("stdout: {e}")));
                    return;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(VecDeque::new()));
        let keep = Arc::clone(&stderr);
        std::thread::spawn(move || {
            let mut buf = [0u8; 1024];
            while let Ok(n) = err_pipe.read(&mut buf) {
                if n == 0 {
                    return;
                }
                let mut q = keep.lock().unwrap_or_else(PoisonError::into_inner);
                q.extend(&buf[..n]);
                while q.len() > STDERR_KEEP {
                    q.pop_front();
                }
            }
        });
        let mut agent = Agent {
            command: command.to_owned(),
            child,
            stdin,
            replies,
            stderr,
            next_id: 1,
            hello: Value::Null,
            stored: HashSet::new(),
            debug,
        };
        let hello = agent
            .request(
                json!({"cmd": "hello", "suite": crate::SUITE_VERSION, "spec": crate::SPEC_VERSION}),
                hello_timeout,
            )
            .map_err(|f| {
                format!(
                    "agent `{command}` failed the hello exchange: {f:?}\n{}",
                    agent.stderr_tail()
                )
            })?;
        if hello.get("status").and_then(Value::as_str) != Some("ok") {
            return Err(format!("agent `{command}` refused hello: {hello}"));
        }
        agent.hello = hello;
        Ok(agent)
    }

    /// The command line it was started with.
    pub fn command(&self) -> &str {
        &self.command
    }

    /// The implementation's name and version from `hello`.
    pub fn name(&self) -> String {
        format!(
            "{} {}",
            self.hello
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("?"),
            self.hello
                .get("version")
                .and_then(Value::as_str)
                .unwrap_or("?")
        )
    }

    /// The capabilities from `hello`.
    pub fn capabilities(&self) -> Vec<String> {
        self.hello
            .get("capabilities")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|c| c.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Sends `cmd` (without `id`) and waits at most `bound` for its reply.
    pub fn request(&mut self, mut cmd: Value, bound: Duration) -> Result<Value, Failure> {
        let id = self.next_id;
        self.next_id += 1;
        cmd["id"] = json!(id);
        if self.debug {
            eprintln!("-> {cmd}");
        }
        if write_frame(&mut self.stdin, &cmd).is_err() {
            return Err(self.crash_reason());
        }
        match self.replies.recv_timeout(bound) {
            Ok(Ok(reply)) => {
                if self.debug {
                    eprintln!("<- {reply}");
                }
                if reply.get("id").and_then(Value::as_u64) == Some(id) {
                    return Ok(reply);
                }
                Err(Failure::Protocol(format!("reply to another id: {reply}")))
            }
            Ok(Err(e)) if e.starts_with("malformed") => Err(Failure::Protocol(e)),
            Ok(Err(_)) | Err(RecvTimeoutError::Disconnected) => Err(self.crash_reason()),
            Err(RecvTimeoutError::Timeout) => Err(Failure::Hang),
        }
    }

    fn crash_reason(&mut self) -> Failure {
        // Give the process a moment to be reaped so that its status is known.
        for _ in 0..50 {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Failure::Crash(match status.signal() {
                    Some(sig) => format!("killed by signal {sig}"),
                    None => format!("exited with {status}"),
                });
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Failure::Crash("closed its stdout".into())
    }

    /// Stores an image once under `name` (`put_image`).
    pub fn ensure_image(&mut self, name: &str, bytes: &[u8]) -> Result<(), Failure> {
        if self.stored.contains(name) {
            return Ok(());
        }
        let reply = self.request(
            json!({"cmd": "put_image", "name": name, "hex": crate::payload::hex(bytes)}),
            Duration::from_secs(10),
        )?;
        if reply.get("status").and_then(Value::as_str) != Some("ok") {
            return Err(Failure::Protocol(format!("put_image refused: {reply}")));
        }
        self.stored.insert(name.to_owned());
        Ok(())
    }

    /// Forgets stored images of a case (they are re-sent when a case reuses the name).
    pub fn forget_image(&mut self, name: &str) {
        self.stored.remove(name);
    }

    /// The last bytes the agent wrote on stderr.
    pub fn stderr_tail(&self) -> String {
        let q = self.stderr.lock().unwrap_or_else(PoisonError::into_inner);
        String::from_utf8_lossy(&q.iter().copied().collect::<Vec<u8>>()).into_owned()
    }

    /// Clears the kept stderr (at the start of a case).
    pub fn clear_stderr(&self) {
        self.stderr
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    /// The agent's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILLs the agent's whole process group and reaps it.
    pub fn kill(&mut self) {
        kill_group(self.child.id());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Asks the agent to exit, then makes sure it did.
    pub fn stop(mut self) {
        let _ = self.request(json!({"cmd": "exit"}), Duration::from_secs(2));
        for _ in 0..100 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.kill();
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.kill();
        }
    }
}

/// SIGKILLs the process group `pid` leads (agents are started as group leaders).
pub fn kill_group(pid: u32) {
    if let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    {
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
}
