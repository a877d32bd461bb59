//! Unix stream socket baseline: the host listens on a socket in a private directory, the peer
//! connects; frames as in [`super::byte_stream`].

use std::os::unix::fs::DirBuilderExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::byte_stream::{self, Connection, Framed, Serve};
use crate::peer::{PeerArgs, PeerCommand, PeerProcess};
use crate::results::{Kind, Label, Mode};
use crate::roundtrip::{RoundTrip, RoundTripBench};
use crate::stream::{Stream, StreamBench};
use crate::{error, Result};

/// Role name of the peer.
pub const ROLE: &str = "unix-socket";

/// How long the host waits for the peer to connect.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The label of the socket rows.
pub const LABEL: Label = Label {
    id: "unix-socket",
    title: "Unix stream socket",
    mode: Mode::Parked,
    kind: Kind::Peer,
};

/// The Unix socket baseline (round trips and streams).
#[derive(Clone, Copy, Debug, Default)]
pub struct UnixSocket;

type Host = Connection<UnixStream, UnixStream>;

impl RoundTripBench for UnixSocket {
    fn label(&self) -> Label {
        LABEL
    }
    fn connect(&self) -> Result<Box<dyn RoundTrip>> {
        Ok(Box::new(connect(Serve::Echo)?))
    }
}

impl StreamBench for UnixSocket {
    fn label(&self) -> Label {
        LABEL
    }
    fn connect(&self) -> Result<Box<dyn Stream>> {
        Ok(Box::new(connect(Serve::Sink)?))
    }
}

/// A private directory for the socket, removed on drop.
struct SocketDir(PathBuf);

impl SocketDir {
    fn create() -> Result<SocketDir> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "knit-bench-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
        Ok(SocketDir(dir))
    }

    fn socket(&self) -> PathBuf {
        self.0.join("s")
    }
}

impl Drop for SocketDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn connect(how: Serve) -> Result<Host> {
    let dir = SocketDir::create()?;
    let path = dir.socket();
    let listener = UnixListener::bind(&path)?;
    let mut peer = PeerCommand::new(ROLE)?
        .arg("path", path.display())
        .arg("serve", how.name())
        .spawn()?;
    let stream = accept(&listener, &mut peer)?;
    let framed = Framed::new(stream.try_clone()?, stream);
    Ok(Connection::new(framed, peer, |stream| {
        Ok(stream.shutdown(std::net::Shutdown::Write)?)
    }))
}

/// Accepts the peer's connection, giving up when the peer exits or after a timeout.
fn accept(listener: &UnixListener, peer: &mut PeerProcess) -> Result<UnixStream> {
    listener.set_nonblocking(true)?;
    let start = Instant::now();
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                stream.set_nonblocking(false)?;
                return Ok(stream);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e.into()),
        }
        if let Some(child) = peer.child_mut() {
            if let Some(status) = child.try_wait()? {
                return Err(error(format!(
                    "socket peer exited with {status} before connecting"
                )));
            }
        }
        if start.elapsed() > CONNECT_TIMEOUT {
            return Err(error("socket peer did not connect"));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The peer: connects to `path` and serves frames until the host closes the stream.
pub fn serve(args: &PeerArgs) -> Result<()> {
    let how = Serve::parse(args.get("serve")?)?;
    let stream = UnixStream::connect(Path::new(args.get("path")?))?;
    byte_stream::serve(stream.try_clone()?, stream, how)
}
