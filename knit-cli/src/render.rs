//! Human-readable rendering of a [`RegionSnapshot`].

use std::fmt::Write;

use crate::snapshot::{RegionSnapshot, RingView};

fn ring(r: &RingView) -> String {
    match r.used {
        Some(used) => format!(
            "{used}/{} bytes used (head {}, tail {})",
            r.capacity, r.head, r.tail
        ),
        None => format!("INCONSISTENT positions (head {}, tail {})", r.head, r.tail),
    }
}

/// The text `knit inspect` prints.
pub fn region(name: &str, s: &RegionSnapshot) -> String {
    let mut out = String::new();
    let g = &s.geometry;
    // Writing to a String cannot fail.
    let _ = writeln!(out, "region {name}");
    let _ = writeln!(out, "  version     {}", s.version);
    let _ = writeln!(out, "  size        {} bytes", s.region_len);
    let _ = writeln!(out, "  id          {}", s.region_id);
    let _ = writeln!(
        out,
        "  features    required {:#x}, optional {:#x}",
        s.required_features, s.optional_features
    );
    let _ = writeln!(
        out,
        "  geometry    {} worker slots, {} channel slots, inflight {}, rings {}/{}/{} bytes (request/response/channel), max message {} bytes",
        g.worker_slots, g.channel_slots, g.inflight_max, g.request_ring_cap, g.response_ring_cap,
        g.channel_ring_cap, g.max_message_len
    );
    match &s.poison {
        None => {
            let _ = writeln!(out, "  poisoned    no");
        }
        Some(p) => {
            let by =
                p.by.map_or("unknown participant".into(), |b| format!("participant {b}"));
            let _ = writeln!(
                out,
                "  poisoned    YES: {} ({}) found by {by}",
                p.name, p.code
            );
        }
    }
    let _ = writeln!(out, "participants");
    for p in &s.participants {
        let who = match (p.pid, p.alive) {
            (Some(pid), Some(alive)) => format!(
                "pid {pid} ({}){}",
                if alive { "alive" } else { "dead" },
                p.implementation
                    .as_ref()
                    .map_or(String::new(), |i| format!(", {i}"))
            ),
            _ => String::from("-"),
        };
        let role = p
            .role
            .as_deref()
            .unwrap_or(if p.index == 0 { "host" } else { "worker" });
        let _ = writeln!(
            out,
            "  [{}] {role:<6} {:<10} epoch {:<3} {who}",
            p.index, p.state, p.epoch
        );
    }
    let _ = writeln!(out, "mailboxes");
    for m in &s.mailboxes {
        let _ = writeln!(out, "  [{}] requests  {}", m.index, ring(&m.request));
        let _ = writeln!(out, "      responses {}", ring(&m.response));
        let _ = writeln!(out, "      cancel entries set: {}", m.cancel_entries_set);
    }
    if s.channels.is_empty() {
        let _ = writeln!(out, "channels: none open");
    } else {
        let _ = writeln!(out, "channels");
        for c in &s.channels {
            let _ = writeln!(
                out,
                "  [{}] {} epoch {} writer {} -> reader {} tag {}: {}",
                c.index,
                c.state,
                c.epoch,
                c.writer,
                c.reader,
                c.tag,
                ring(&c.ring)
            );
        }
    }
    out
}
