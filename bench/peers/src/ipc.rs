//! ipc-channel (Servo's), with its raw byte channels (`bytes_channel`, no serialisation):
//! blocking receives. Round trips: the peer echoes each message on a second channel.
//! Streams: a batch is one message holding `batch` messages back to back; an empty message
//! asks the peer for the bytes it received.

use std::sync::mpsc;
use std::time::Duration;

use ipc_channel::ipc::{self, IpcBytesReceiver, IpcBytesSender, IpcOneShotServer, IpcSender};
use knit_bench::peer::{PeerArgs, PeerCommand, PeerProcess};
use knit_bench::results::{Kind, Label, Mode};
use knit_bench::roundtrip::{RoundTrip, RoundTripBench};
use knit_bench::stream::{Stream, StreamBench, StreamCount, Timer};
use knit_bench::{error, Result};

use crate::names::fail;

/// Role name of the peer.
pub const ROLE: &str = "ipc-channel";

/// How long the host waits for the peer to connect.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The label of the ipc-channel rows.
pub const LABEL: Label = Label {
    id: "ipc-channel",
    title: "ipc-channel (bytes)",
    mode: Mode::Parked,
    kind: Kind::Peer,
};

/// ipc-channel.
#[derive(Clone, Copy, Debug, Default)]
pub struct IpcChannel;

/// What the peer sends the host when it connects: where to send, where to read answers.
type Hello = (IpcBytesSender, IpcBytesReceiver);

struct Host {
    to_peer: Option<IpcBytesSender>,
    from_peer: IpcBytesReceiver,
    peer: Option<PeerProcess>,
}

fn connect(serve: &str) -> Result<Host> {
    let (server, name) = IpcOneShotServer::<Hello>::new()?;
    let mut peer = PeerCommand::new(ROLE)?
        .arg("server", &name)
        .arg("serve", serve)
        .spawn()?;
    // `accept` has no timeout: run it aside and give up on a peer that never connects.
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(server.accept().map(|(_, hello)| hello));
    });
    let (to_peer, from_peer) = match rx.recv_timeout(CONNECT_TIMEOUT) {
        Ok(Ok(hello)) => hello,
        Ok(Err(e)) => return Err(error(format!("ipc-channel accept: {e:?}"))),
        Err(_) => {
            if let Some(child) = peer.child_mut() {
                let _ = child.kill();
            }
            return Err(error("ipc-channel peer did not connect"));
        }
    };
    Ok(Host {
        to_peer: Some(to_peer),
        from_peer,
        peer: Some(peer),
    })
}

impl Host {
    fn send(&self, bytes: &[u8]) -> Result<()> {
        self.to_peer
            .as_ref()
            .ok_or_else(|| error("ipc-channel closed"))?
            .send(bytes)?;
        Ok(())
    }

    fn finish(&mut self) -> Result<()> {
        // Dropping the sender ends the peer's receive loop.
        self.to_peer = None;
        match self.peer.take() {
            Some(peer) => peer.finish(),
            None => Ok(()),
        }
    }
}

impl RoundTripBench for IpcChannel {
    fn label(&self) -> Label {
        LABEL
    }
    fn connect(&self) -> Result<Box<dyn RoundTrip>> {
        Ok(Box::new(connect("echo")?))
    }
}

impl StreamBench for IpcChannel {
    fn label(&self) -> Label {
        LABEL
    }
    fn connect(&self) -> Result<Box<dyn Stream>> {
        Ok(Box::new(connect("sink")?))
    }
}

impl RoundTrip for Host {
    fn call(&mut self, request: &[u8], reply: &mut Vec<u8>) -> Result<()> {
        self.send(request)?;
        *reply = self.from_peer.recv().map_err(fail("ipc-channel receive"))?;
        Ok(())
    }
    fn close(mut self: Box<Self>) -> Result<()> {
        self.finish()
    }
}

impl Stream for Host {
    fn run(&mut self, message: usize, batch: usize, duration: Duration) -> Result<StreamCount> {
        let bytes = vec![0x5au8; message * batch];
        let timer = Timer::start(duration);
        let mut sent = 0u64;
        while !timer.done() {
            self.send(&bytes)?;
            sent += batch as u64;
        }
        self.send(&[])?;
        let report = self.from_peer.recv().map_err(fail("ipc-channel receive"))?;
        let word: [u8; 8] = report
            .as_slice()
            .try_into()
            .map_err(|_| error("ipc-channel report is not 8 bytes"))?;
        let received = u64::from_le_bytes(word);
        let per = message.max(1) as u64;
        Ok(StreamCount {
            sent,
            received: if received.is_multiple_of(per) {
                received / per
            } else {
                0
            },
            elapsed: timer.elapsed(),
        })
    }
    fn close(mut self: Box<Self>) -> Result<()> {
        self.finish()
    }
}

/// The peer: connects to the host's one-shot server, then echoes or counts until the host
/// drops its sender.
pub fn serve(args: &PeerArgs) -> Result<()> {
    let echo = match args.get("serve")? {
        "echo" => true,
        "sink" => false,
        other => return Err(error(format!("unknown serve mode {other:?}"))),
    };
    let (to_me, my_inbox) = ipc::bytes_channel()?;
    let (to_host, host_inbox) = ipc::bytes_channel()?;
    IpcSender::<Hello>::connect(args.get("server")?.to_owned())?
        .send((to_me, host_inbox))
        .map_err(fail("ipc-channel hello"))?;
    let mut bytes = 0u64;
    // A receive error means the host dropped its sender: the normal end.
    while let Ok(msg) = my_inbox.recv() {
        if echo {
            to_host.send(&msg)?;
        } else if msg.is_empty() {
            to_host.send(&bytes.to_le_bytes())?;
            bytes = 0;
        } else {
            bytes += msg.len() as u64;
        }
    }
    Ok(())
}
