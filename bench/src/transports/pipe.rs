//! Pipe baseline: the peer's standard input and output are two pipes to the host; frames as
//! in [`super::byte_stream`].

use std::fs::File;
use std::os::fd::AsFd;
use std::process::{ChildStdin, ChildStdout, Stdio};
use std::time::Duration;

use super::byte_stream::{self, Framed, Serve};
use crate::peer::{PeerArgs, PeerCommand, PeerProcess};
use crate::results::{Kind, Label, Mode};
use crate::roundtrip::{RoundTrip, RoundTripBench};
use crate::stream::{Stream, StreamBench, StreamCount};
use crate::{error, Result};

/// Role name of the peer.
pub const ROLE: &str = "pipe";

/// The label of the pipe rows.
pub const LABEL: Label = Label {
    id: "pipe",
    title: "pipe pair",
    mode: Mode::Parked,
    kind: Kind::Peer,
};

/// The pipe baseline (round trips and streams).
#[derive(Clone, Copy, Debug, Default)]
pub struct Pipe;

struct Host {
    framed: Framed<ChildStdout, ChildStdin>,
    peer: PeerProcess,
}

impl RoundTripBench for Pipe {
    fn label(&self) -> Label {
        LABEL
    }
    fn connect(&self) -> Result<Box<dyn RoundTrip>> {
        Ok(Box::new(connect(Serve::Echo)?))
    }
}

impl StreamBench for Pipe {
    fn label(&self) -> Label {
        LABEL
    }
    fn connect(&self) -> Result<Box<dyn Stream>> {
        Ok(Box::new(connect(Serve::Sink)?))
    }
}

impl RoundTrip for Host {
    fn call(&mut self, request: &[u8], reply: &mut Vec<u8>) -> Result<()> {
        self.framed.call(request, reply)
    }
    fn close(self: Box<Self>) -> Result<()> {
        let Host { framed, peer } = *self;
        // Closing the peer's standard input ends its loop.
        drop(framed.into_writer());
        peer.finish()
    }
}

impl Stream for Host {
    fn run(&mut self, message: usize, batch: usize, duration: Duration) -> Result<StreamCount> {
        self.framed.stream(message, batch, duration)
    }
    fn close(self: Box<Self>) -> Result<()> {
        RoundTrip::close(self)
    }
}

fn connect(how: Serve) -> Result<Host> {
    let mut command = PeerCommand::new(ROLE)?.arg("serve", how.name());
    command
        .command()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    let mut peer = command.spawn()?;
    let child = peer
        .child_mut()
        .ok_or_else(|| error("pipe peer has no process"))?;
    let (stdin, stdout) = (child.stdin.take(), child.stdout.take());
    let (Some(stdin), Some(stdout)) = (stdin, stdout) else {
        return Err(error("pipe peer has no standard streams"));
    };
    Ok(Host {
        framed: Framed::new(stdout, stdin),
        peer,
    })
}

/// The peer: serves frames from standard input to standard output (as unbuffered files, so
/// that no line buffering adds system calls).
pub fn serve(args: &PeerArgs) -> Result<()> {
    let how = Serve::parse(args.get("serve")?)?;
    let input = File::from(std::io::stdin().as_fd().try_clone_to_owned()?);
    let output = File::from(std::io::stdout().as_fd().try_clone_to_owned()?);
    byte_stream::serve(input, output, how)
}
