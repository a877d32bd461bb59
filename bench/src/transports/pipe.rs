//! Pipe baseline: the peer's standard input and output are two pipes to the host; frames as
//! in [`super::byte_stream`].

use std::fs::File;
use std::os::fd::AsFd;
use std::process::{ChildStdin, ChildStdout, Stdio};

use super::byte_stream::{self, Connection, Framed, Serve};
use crate::peer::{PeerArgs, PeerCommand};
use crate::results::{Kind, Label, Mode};
use crate::roundtrip::{RoundTrip, RoundTripBench};
use crate::stream::{Stream, StreamBench};
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

type Host = Connection<ChildStdout, ChildStdin>;

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
    // Closing the peer's standard input ends its loop.
    Ok(Connection::new(Framed::new(stdout, stdin), peer, |stdin| {
        drop(stdin);
        Ok(())
    }))
}

/// The peer: serves frames from standard input to standard output (as unbuffered files, so
/// that no line buffering adds system calls).
pub fn serve(args: &PeerArgs) -> Result<()> {
    let how = Serve::parse(args.get("serve")?)?;
    let input = File::from(std::io::stdin().as_fd().try_clone_to_owned()?);
    let output = File::from(std::io::stdout().as_fd().try_clone_to_owned()?);
    byte_stream::serve(input, output, how)
}
