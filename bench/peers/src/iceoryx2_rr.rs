//! iceoryx2 request-response, spinning: the client sends a request of `payload` bytes (a
//! loaned slice, written once) and polls its pending response; the server polls for requests
//! and answers each with a loaned response holding the same bytes. Busy polling is
//! iceoryx2's lowest-latency way to wait.

use iceoryx2::port::client::Client;
use iceoryx2::prelude::*;
use knit_bench::peer::{PeerArgs, PeerCommand, PeerProcess};
use knit_bench::report::bars::ICEORYX2_RR;
use knit_bench::results::{Kind, Label, Mode};
use knit_bench::roundtrip::{RoundTrip, RoundTripBench, MAX_PAYLOAD};
use knit_bench::wait::{spin_until, Patience};
use knit_bench::{error, Result};

use crate::names::{fail, unique_service};

/// Role name of the server.
pub const ROLE: &str = "iceoryx2-rr";

/// The request that tells the server to exit (no case sends 15 bytes).
const STOP: &[u8] = b"knit-bench-stop";

/// The label of the iceoryx2 request-response rows.
pub const LABEL: Label = Label {
    id: ICEORYX2_RR,
    title: "iceoryx2 request-response",
    mode: Mode::Spinning,
    kind: Kind::Peer,
};

/// iceoryx2 request-response.
#[derive(Clone, Copy, Debug, Default)]
pub struct Iceoryx2Rr;

type Service = iceoryx2::service::ipc::Service;
/// The request-response service of byte slices.
type RrFactory =
    iceoryx2::service::port_factory::request_response::PortFactory<Service, [u8], (), [u8], ()>;
/// A request waiting for its response.
type Pending = iceoryx2::pending_response::PendingResponse<Service, [u8], (), [u8], ()>;

struct Host {
    client: Client<Service, [u8], (), [u8], ()>,
    peer: Option<PeerProcess>,
    // Kept alive for the ports above.
    _service: RrFactory,
    _node: Node<Service>,
}

fn open(node: &Node<Service>, name: &str) -> Result<RrFactory> {
    let name: ServiceName = name.try_into().map_err(fail("iceoryx2 service name"))?;
    node.service_builder(&name)
        .request_response::<[u8], [u8]>()
        .open_or_create()
        .map_err(fail("iceoryx2 request-response service"))
}

impl RoundTripBench for Iceoryx2Rr {
    fn label(&self) -> Label {
        LABEL
    }

    fn connect(&self) -> Result<Box<dyn RoundTrip>> {
        let node = NodeBuilder::new()
            .create::<Service>()
            .map_err(fail("iceoryx2 node"))?;
        let name = unique_service("rr");
        let service = open(&node, &name)?;
        let client = service
            .client_builder()
            .initial_max_slice_len(MAX_PAYLOAD)
            .allocation_strategy(AllocationStrategy::Static)
            .create()
            .map_err(fail("iceoryx2 client"))?;
        let peer = PeerCommand::new(ROLE)?.arg("service", &name).spawn()?;
        spin_until(Patience::host(), || {
            service.dynamic_config().number_of_servers() > 0
        })?;
        Ok(Box::new(Host {
            client,
            peer: Some(peer),
            _service: service,
            _node: node,
        }))
    }
}

impl Host {
    fn send(&self, request: &[u8]) -> Result<Pending> {
        let loan = self
            .client
            .loan_slice_uninit(request.len())
            .map_err(fail("iceoryx2 loan request"))?;
        loan.write_from_slice(request)
            .send()
            .map_err(fail("iceoryx2 send request"))
    }
}

impl RoundTrip for Host {
    fn call(&mut self, request: &[u8], reply: &mut Vec<u8>) -> Result<()> {
        let pending = self.send(request)?;
        let mut outcome: Result<()> = Err(error("no response"));
        spin_until(Patience::host(), || match pending.receive() {
            Ok(Some(response)) => {
                reply.clear();
                reply.extend_from_slice(response.payload());
                outcome = Ok(());
                true
            }
            Ok(None) => false,
            Err(e) => {
                outcome = Err(error(format!("iceoryx2 receive response: {e:?}")));
                true
            }
        })?;
        outcome
    }

    fn close(mut self: Box<Self>) -> Result<()> {
        drop(self.send(STOP)?);
        match self.peer.take() {
            Some(peer) => peer.finish(),
            None => Ok(()),
        }
    }
}

/// The server: answers every request with its own bytes until it reads [`STOP`].
pub fn serve(args: &PeerArgs) -> Result<()> {
    let node = NodeBuilder::new()
        .create::<Service>()
        .map_err(fail("iceoryx2 node"))?;
    let service = open(&node, args.get("service")?)?;
    let server = service
        .server_builder()
        .initial_max_slice_len(MAX_PAYLOAD)
        .allocation_strategy(AllocationStrategy::Static)
        .create()
        .map_err(fail("iceoryx2 server"))?;
    let mut failure = None;
    spin_until(Patience::peer(), || match server.receive() {
        Ok(Some(request)) => {
            let payload = request.payload();
            if payload == STOP {
                return true;
            }
            let sent = request
                .loan_slice_uninit(payload.len())
                .map_err(fail("iceoryx2 loan response"))
                .and_then(|r| {
                    r.write_from_slice(payload)
                        .send()
                        .map_err(fail("iceoryx2 send response"))
                });
            if let Err(e) = sent {
                failure = Some(e);
                return true;
            }
            false
        }
        Ok(None) => false,
        Err(e) => {
            failure = Some(error(format!("iceoryx2 receive request: {e:?}")));
            true
        }
    })?;
    failure.map_or(Ok(()), Err)
}
