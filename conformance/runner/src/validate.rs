//! The reference decoders behind the `validate` command (conformance/README.md §3.4): the
//! reference agent answers with them, and the runner uses them as the oracle of generated
//! mutations. Every image is decoded from a private aligned copy with the same knit-core code
//! that reads a live region.

use knit_core::fntable::FunctionTable;
use knit_core::message::{Accept, Incoming, Payload, Reassembler};
use knit_core::participant::Participant;
use knit_core::records::{self, RingKind};
use knit_core::region::Region;
use knit_core::ring::{Consumer, Producer, RingRef, HEAD_OFFSET, RING_CTRL_LEN};
use serde_json::{json, Value};

use crate::mem::Aligned;
use crate::payload::digest;

/// The answer to a `validate` command.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    /// Decoded; what was found.
    Valid(Value),
    /// Refused with a registry error.
    Invalid {
        /// Registry name.
        class: String,
        /// What the implementation said.
        detail: String,
    },
    /// Nothing wrong so far, but a message is not complete; what was delivered before it.
    Incomplete(Value),
}

impl Verdict {
    /// The `ok` reply fields of README §3.4.
    pub fn to_json(&self) -> Value {
        match self {
            Verdict::Valid(v) => merge(json!({"verdict": "valid"}), v),
            Verdict::Invalid { class, detail } => {
                json!({"verdict": "invalid", "class": class, "detail": detail})
            }
            Verdict::Incomplete(v) => merge(json!({"verdict": "incomplete"}), v),
        }
    }

    /// `valid`, `invalid` or `incomplete`.
    pub fn name(&self) -> &'static str {
        match self {
            Verdict::Valid(_) => "valid",
            Verdict::Invalid { .. } => "invalid",
            Verdict::Incomplete(_) => "incomplete",
        }
    }

    /// The class of an invalid verdict.
    pub fn class(&self) -> Option<&str> {
        match self {
            Verdict::Invalid { class, .. } => Some(class),
            _ => None,
        }
    }
}

fn merge(mut base: Value, extra: &Value) -> Value {
    if let (Value::Object(b), Value::Object(e)) = (&mut base, extra) {
        for (k, v) in e {
            b.insert(k.clone(), v.clone());
        }
    }
    base
}

fn invalid(e: knit_core::Error) -> Verdict {
    Verdict::Invalid {
        class: e.code.name().to_owned(),
        detail: e.to_string(),
    }
}

/// A command the validator cannot run: its arguments are wrong (`INVALID_ARGUMENT`) or it asks
/// for something this implementation cannot do (`skipped`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Bad arguments.
    BadArgs(String),
    /// Cannot be done by this implementation.
    Skipped(String),
}

/// Validates `image` as `kind` (README §3.4) with the extra arguments in `args`.
pub fn validate(kind: &str, image: &[u8], args: &Value) -> Result<Verdict, Refusal> {
    match kind {
        "region" => Ok(region(image)),
        "ring" => ring(image, args),
        "participant" => participant(image, args),
        "fntable" => Ok(fntable(image)),
        "typed_array" => Ok(typed_array(image)),
        other => Err(Refusal::Skipped(format!("unknown validate kind {other:?}"))),
    }
}

fn region(image: &[u8]) -> Verdict {
    let mut mem = Aligned::from_bytes(image);
    match Region::attach(mem.mem()) {
        Ok(r) => Verdict::Valid(json!({"region_len": r.geometry().region_len().to_string()})),
        Err(e) => invalid(e),
    }
}

fn participant(image: &[u8], args: &Value) -> Result<Verdict, Refusal> {
    let index = args
        .get("index")
        .and_then(Value::as_u64)
        .and_then(|i| u32::try_from(i).ok())
        .ok_or_else(|| Refusal::BadArgs("participant needs `index`".into()))?;
    let mut mem = Aligned::from_bytes(image);
    let p = Participant::new(mem.mem(), index).map_err(|e| Refusal::BadArgs(e.to_string()))?;
    Ok(match p.snapshot() {
        Ok(s) => Verdict::Valid(json!({
            "state": s.state as u32,
            "role": s.identity.map(|i| i.role as u32),
            "pid": s.identity.map(|i| i.pid),
        })),
        Err(e) => invalid(e),
    })
}

fn fntable(image: &[u8]) -> Verdict {
    match FunctionTable::decode(image) {
        Ok(t) => {
            let mut fs: Vec<_> = t
                .functions()
                .iter()
                .map(|f| (f.id, f.name.clone()))
                .collect();
            fs.sort_unstable();
            Verdict::Valid(json!({
                "functions": fs.iter().map(|(id, name)| json!({"id": id, "name": name})).collect::<Vec<_>>()
            }))
        }
        Err(e) => invalid(e),
    }
}

fn typed_array(image: &[u8]) -> Verdict {
    match knit_core::typed_array::decode(image) {
        Ok(t) => Verdict::Valid(json!({
            "dtype": t.dtype as u16,
            "shape": t.shape.dims().iter().map(ToString::to_string).collect::<Vec<_>>(),
        })),
        Err(e) => invalid(e),
    }
}

/// Most records the replay writes to bring a consumer to the image's `head`.
const MAX_REPLAY_RECORDS: u64 = 1 << 20;

/// Most polls of one ring validation; far above what a ring of 2^30 bytes can hold in messages
/// of one record each, so it never cuts a valid ring short.
const MAX_POLLS: usize = 1 << 28;

fn ring_kind(args: &Value) -> Result<RingKind, Refusal> {
    match args.get("ring_kind").and_then(Value::as_str) {
        Some("request") => Ok(RingKind::Request),
        Some("response") => Ok(RingKind::Response),
        Some("channel") => Ok(RingKind::Channel),
        other => Err(Refusal::BadArgs(format!("ring_kind {other:?}"))),
    }
}

/// A u64 argument given as a decimal string or a number.
pub fn u64_arg(args: &Value, name: &str) -> Option<u64> {
    match args.get(name)? {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.as_u64(),
        _ => None,
    }
}

fn type_name(rtype: u16) -> &'static str {
    match rtype {
        records::TYPE_REQUEST => "REQUEST",
        records::TYPE_RESPONSE => "RESPONSE",
        records::TYPE_HELLO => "HELLO",
        records::TYPE_DATA => "DATA",
        _ => "?",
    }
}

fn ring(image: &[u8], args: &Value) -> Result<Verdict, Refusal> {
    let kind = ring_kind(args)?;
    let max_message_len = u64_arg(args, "max_message_len").unwrap_or(1 << 20);
    let cap = image
        .len()
        .checked_sub(RING_CTRL_LEN)
        .filter(|c| c.is_power_of_two() && *c >= 16)
        .ok_or_else(|| Refusal::BadArgs(format!("ring image of {} bytes", image.len())))?;
    let mut head_bytes = [0u8; 8];
    head_bytes.copy_from_slice(&image[HEAD_OFFSET..HEAD_OFFSET + 8]);
    let head = u64::from_le_bytes(head_bytes);
    if head % 8 != 0 {
        return Err(Refusal::BadArgs(format!(
            "ring head {head} is not a multiple of 8"
        )));
    }
    let mut mem = Aligned::zeroed(image.len());
    let view = mem.mem();
    let sub = |off, len| {
        view.sub(off, len)
            .map_err(|e| Refusal::BadArgs(e.to_string()))
    };
    let ring = RingRef::new(sub(0, RING_CTRL_LEN)?, sub(RING_CTRL_LEN, cap)?)
        .map_err(|e| Refusal::BadArgs(e.to_string()))?;
    let mut consumer = Consumer::new(ring);
    replay_to(ring, &mut consumer, head)?;
    view.write(0, image)
        .map_err(|e| Refusal::BadArgs(e.to_string()))?;
    let mut reassembler = Reassembler::new(kind, max_message_len);
    let mut delivered = Vec::new();
    for _ in 0..MAX_POLLS {
        let before = consumer.head();
        let polled = match reassembler.poll(&mut consumer, |_| Ok(Accept::Deliver)) {
            Ok(p) => p,
            Err(e) => return Ok(invalid(e)),
        };
        let Some(incoming) = polled.incoming else {
            if consumer.head() == before {
                break;
            }
            continue;
        };
        delivered.push(describe(incoming));
    }
    let found = json!({ "messages": delivered });
    Ok(if reassembler.in_message() {
        Verdict::Incomplete(found)
    } else {
        Verdict::Valid(found)
    })
}

fn describe(incoming: Incoming<'_, '_>) -> Value {
    match incoming {
        Incoming::Message(m) => {
            let mut item = json!({
                "type": type_name(m.head.rtype()),
                "payload_len": m.head.payload_len().to_string(),
            });
            if let knit_core::message::MessageHead::Request(r) = m.head {
                item["request_id"] = json!(r.request_id.to_string());
            }
            if let knit_core::message::MessageHead::Response(r) = m.head {
                item["request_id"] = json!(r.request_id.to_string());
                item["status"] = json!(r.status);
            }
            if matches!(m.payload, Payload::Unavailable { .. }) {
                item["unavailable"] = json!(true);
            }
            item["digest"] = json!(digest(m.payload.bytes()));
            m.payload.release();
            item
        }
        Incoming::Shutdown => json!({"type": "SHUTDOWN"}),
        Incoming::End => json!({"type": "END"}),
        Incoming::ChannelOpen(o) => json!({
            "type": "CHANNEL_OPEN",
            "channel": o.channel,
            "epoch": o.epoch,
            "tag": o.tag.to_string(),
        }),
    }
}

/// Brings `consumer` to private head `target` by writing and consuming filler records: the
/// state a consumer has after it consumed and released everything before `target`.
fn replay_to(ring: RingRef<'_>, consumer: &mut Consumer<'_>, target: u64) -> Result<(), Refusal> {
    let cap = ring.capacity() as u64;
    if target / (cap / 2) > MAX_REPLAY_RECORDS {
        return Err(Refusal::Skipped(format!(
            "ring head {target} is too far for this agent to replay"
        )));
    }
    let mut producer = Producer::new(ring);
    let filler = vec![0u8; ring.max_body_len()];
    let mut pos = 0u64;
    while pos < target {
        let to_end = cap - pos % cap;
        let size = (target - pos).min(cap / 2).min(to_end);
        let body = filler.get(..(size - 8) as usize).unwrap_or(&[]);
        let ok = producer
            .try_write(records::TYPE_DATA, records::FLAGS_SINGLE, body)
            .map_err(|e| Refusal::BadArgs(e.to_string()))?;
        if !ok {
            return Err(Refusal::BadArgs("replay found no room".into()));
        }
        producer.publish();
        let record = consumer
            .peek()
            .map_err(|e| Refusal::BadArgs(e.to_string()))?
            .ok_or_else(|| Refusal::BadArgs("replay record vanished".into()))?;
        record.consume();
        consumer.publish_head();
        pos += size;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_kinds_are_skipped_and_bad_ring_args_refused() {
        assert!(matches!(
            validate("nope", &[], &json!({})),
            Err(Refusal::Skipped(_))
        ));
        let img = vec![0u8; 128 + 4096];
        assert!(matches!(
            validate("ring", &img, &json!({})),
            Err(Refusal::BadArgs(_))
        ));
        assert!(matches!(
            validate("ring", &img[..200], &json!({"ring_kind": "request"})),
            Err(Refusal::BadArgs(_))
        ));
        let v = validate("ring", &img, &json!({"ring_kind": "request"})).unwrap();
        assert_eq!(v, Verdict::Valid(json!({"messages": []})));
    }

    #[test]
    fn a_consumer_is_replayed_to_any_head_and_reads_nothing_more() {
        for head in [8u64, 2048, 4096, 4096 * 3 + 24] {
            let mut img = vec![0u8; 128 + 4096];
            img[0..8].copy_from_slice(&head.to_le_bytes());
            img[0x40..0x48].copy_from_slice(&head.to_le_bytes());
            let v = validate("ring", &img, &json!({"ring_kind": "channel"})).unwrap();
            assert_eq!(v.name(), "valid", "head {head}");
        }
        let mut img = vec![0u8; 128 + 4096];
        img[0..8].copy_from_slice(&16u64.to_le_bytes());
        let v = validate("ring", &img, &json!({"ring_kind": "channel"})).unwrap();
        assert_eq!(
            v.class(),
            Some("UNKNOWN_RECORD"),
            "type 0 at head (RING-17)"
        );
    }
}
