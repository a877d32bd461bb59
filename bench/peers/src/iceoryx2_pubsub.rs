//! iceoryx2 publish-subscribe, spinning: the host publishes loaned slices; the peer polls its
//! subscriber and copies each sample out. A batch is one sample holding `batch` messages back
//! to back (iceoryx2 publishes sample by sample; batching means bigger samples). A 0-byte
//! sample asks the peer for the bytes it received, which it publishes on a second service.

use std::time::Duration;

use iceoryx2::port::publisher::Publisher;
use iceoryx2::port::subscriber::Subscriber;
use iceoryx2::prelude::*;
use iceoryx2::service::port_factory::publish_subscribe::PortFactory as PubSubFactory;
use knit_bench::peer::{PeerArgs, PeerCommand, PeerProcess};
use knit_bench::results::{Kind, Label, Mode};
use knit_bench::stream::{Stream, StreamBench, StreamCount, Timer, BATCH, MESSAGES};
use knit_bench::wait::{spin_until, Patience};
use knit_bench::{error, Result};

use crate::names::{fail, unique_service};

/// Role name of the subscriber.
pub const ROLE: &str = "iceoryx2-pubsub";

/// The largest sample: a batch of the largest messages.
const MAX_SAMPLE: usize = BATCH * MESSAGES[1];

/// Samples a subscriber buffers; the publisher waits when they are all unread.
const BUFFER: usize = 16;

/// The label of the iceoryx2 publish-subscribe rows.
pub const LABEL: Label = Label {
    id: "iceoryx2-pubsub",
    title: "iceoryx2 publish-subscribe",
    mode: Mode::Spinning,
    kind: Kind::Peer,
};

/// iceoryx2 publish-subscribe.
#[derive(Clone, Copy, Debug, Default)]
pub struct Iceoryx2PubSub;

type Service = iceoryx2::service::ipc::Service;

fn data_service(node: &Node<Service>, name: &str) -> Result<PubSubFactory<Service, [u8], ()>> {
    let name: ServiceName = name.try_into().map_err(fail("iceoryx2 service name"))?;
    node.service_builder(&name)
        .publish_subscribe::<[u8]>()
        .enable_safe_overflow(false)
        .subscriber_max_buffer_size(BUFFER)
        .history_size(0)
        .open_or_create()
        .map_err(fail("iceoryx2 data service"))
}

fn report_service(node: &Node<Service>, name: &str) -> Result<PubSubFactory<Service, u64, ()>> {
    let name: ServiceName = format!("{name}/report")
        .as_str()
        .try_into()
        .map_err(fail("iceoryx2 service name"))?;
    node.service_builder(&name)
        .publish_subscribe::<u64>()
        .enable_safe_overflow(false)
        .history_size(0)
        .open_or_create()
        .map_err(fail("iceoryx2 report service"))
}

struct Host {
    publisher: Publisher<Service, [u8], ()>,
    reports: Subscriber<Service, u64, ()>,
    peer: Option<PeerProcess>,
    _data: PubSubFactory<Service, [u8], ()>,
    _report: PubSubFactory<Service, u64, ()>,
    _node: Node<Service>,
}

impl StreamBench for Iceoryx2PubSub {
    fn label(&self) -> Label {
        LABEL
    }

    fn connect(&self) -> Result<Box<dyn Stream>> {
        let node = NodeBuilder::new()
            .create::<Service>()
            .map_err(fail("iceoryx2 node"))?;
        let name = unique_service("pubsub");
        let data = data_service(&node, &name)?;
        let report = report_service(&node, &name)?;
        let publisher = data
            .publisher_builder()
            .initial_max_slice_len(MAX_SAMPLE)
            .allocation_strategy(AllocationStrategy::Static)
            .backpressure_strategy(BackpressureStrategy::RetryUntilDelivered)
            .create()
            .map_err(fail("iceoryx2 publisher"))?;
        let reports = report
            .subscriber_builder()
            .create()
            .map_err(fail("iceoryx2 report subscriber"))?;
        let peer = PeerCommand::new(ROLE)?.arg("service", &name).spawn()?;
        spin_until(Patience::host(), || {
            data.dynamic_config().number_of_subscribers() > 0
                && report.dynamic_config().number_of_publishers() > 0
        })?;
        Ok(Box::new(Host {
            publisher,
            reports,
            peer: Some(peer),
            _data: data,
            _report: report,
            _node: node,
        }))
    }
}

impl Host {
    fn publish(&self, bytes: &[u8]) -> Result<()> {
        self.publisher
            .loan_slice_uninit(bytes.len())
            .map_err(fail("iceoryx2 loan sample"))?
            .write_from_slice(bytes)
            .send()
            .map_err(fail("iceoryx2 send sample"))?;
        Ok(())
    }
}

impl Stream for Host {
    fn run(&mut self, message: usize, batch: usize, duration: Duration) -> Result<StreamCount> {
        let sample = vec![0x5au8; message * batch];
        let timer = Timer::start(duration);
        let mut sent = 0u64;
        while !timer.done() {
            self.publish(&sample)?;
            sent += batch as u64;
        }
        self.publish(&[])?;
        let mut bytes = None;
        let mut failure = None;
        spin_until(Patience::host(), || match self.reports.receive() {
            Ok(Some(r)) => {
                bytes = Some(*r.payload());
                true
            }
            Ok(None) => false,
            Err(e) => {
                failure = Some(error(format!("iceoryx2 receive report: {e:?}")));
                true
            }
        })?;
        if let Some(e) = failure {
            return Err(e);
        }
        let bytes = bytes.unwrap_or(0);
        let per = message.max(1) as u64;
        Ok(StreamCount {
            sent,
            received: if bytes.is_multiple_of(per) {
                bytes / per
            } else {
                0
            },
            elapsed: timer.elapsed(),
        })
    }

    fn close(mut self: Box<Self>) -> Result<()> {
        drop(self.publisher);
        match self.peer.take() {
            Some(peer) => peer.finish(),
            None => Ok(()),
        }
    }
}

/// The subscriber: copies every sample out, counts bytes, reports on each empty sample, and
/// exits when the publisher is gone.
pub fn serve(args: &PeerArgs) -> Result<()> {
    let node = NodeBuilder::new()
        .create::<Service>()
        .map_err(fail("iceoryx2 node"))?;
    let name = args.get("service")?;
    let data = data_service(&node, name)?;
    let report = report_service(&node, name)?;
    let subscriber = data
        .subscriber_builder()
        .buffer_size(BUFFER)
        .create()
        .map_err(fail("iceoryx2 subscriber"))?;
    let reporter = report
        .publisher_builder()
        .create()
        .map_err(fail("iceoryx2 report publisher"))?;
    let mut copy = vec![0u8; MAX_SAMPLE];
    let mut bytes = 0u64;
    loop {
        let mut failure = None;
        let mut gone = false;
        spin_until(Patience::peer(), || match subscriber.receive() {
            Ok(Some(sample)) => {
                let payload = sample.payload();
                if payload.is_empty() {
                    if let Err(e) = reporter.send_copy(bytes) {
                        failure = Some(error(format!("iceoryx2 send report: {e:?}")));
                        return true;
                    }
                    bytes = 0;
                } else if let Some(dst) = copy.get_mut(..payload.len()) {
                    dst.copy_from_slice(payload);
                    bytes += payload.len() as u64;
                } else {
                    failure = Some(error("sample larger than the buffer"));
                    return true;
                }
                false
            }
            Ok(None) => {
                gone = data.dynamic_config().number_of_publishers() == 0;
                gone
            }
            Err(e) => {
                failure = Some(error(format!("iceoryx2 receive sample: {e:?}")));
                true
            }
        })?;
        if let Some(e) = failure {
            return Err(e);
        }
        if gone {
            return Ok(());
        }
    }
}
