//! Attaching with a bounded wait (INIT-2) and an exact mapping length (MAP-6, HDR-7).

use std::sync::atomic::Ordering;
use std::time::Duration;

use knit::{attach_region, realtime_ns, unlink, Mapping, ProcessIdentity, RegionName};
use knit_core::geometry::{Geometry, Params};
use knit_core::layout::INIT_STATE_OFFSET;
use knit_core::participant::Identity;
use knit_core::region::Region;
use knit_core::ErrorCode;

/// Unlinks a test's name even when an assertion fails first.
struct Unlink(RegionName);

impl Drop for Unlink {
    fn drop(&mut self) {
        let _ = unlink(&self.0);
    }
}

fn small_params() -> Params {
    Params {
        worker_slots: 1,
        channel_slots: 1,
        inflight_max: 16,
        request_ring_cap: 4096,
        response_ring_cap: 4096,
        channel_ring_cap: 4096,
        max_message_len: 1 << 20,
    }
}

fn format(mapping: &Mapping) -> Geometry {
    let me = ProcessIdentity::current().expect("identity");
    let host = Identity {
        pid: me.pid,
        start_time: me.start_time,
        impl_name: "knit-test",
    };
    let region = Region::format(
        mapping.as_shared(),
        &small_params(),
        &host,
        [7; 16],
        realtime_ns(),
    )
    .expect("format");
    *region.geometry()
}

#[test]
fn attaching_keeps_exactly_region_len_mapped() {
    let region_len = Geometry::compute(&small_params())
        .expect("geometry")
        .region_len();
    // The object is larger than the region: the attacher must not keep the excess mapped.
    let (creator, name) = Mapping::create_named(region_len + 3 * 4096).expect("create");
    let _guard = Unlink(name.clone());
    let geometry = format(&creator);

    let attached = attach_region(name.as_str(), Duration::from_secs(1)).expect("attach");
    assert_eq!(attached.len(), region_len);
    let region = Region::attach(attached.as_shared()).expect("attach to the kept mapping");
    assert_eq!(*region.geometry(), geometry);
    let host = region
        .participant(0)
        .expect("host entry")
        .snapshot()
        .expect("snapshot");
    assert_eq!(host.identity.map(|i| i.pid), Some(std::process::id()));
}

#[test]
fn a_region_never_made_ready_fails_with_not_ready_after_the_timeout() {
    let region_len = Geometry::compute(&small_params())
        .expect("geometry")
        .region_len();
    let (_creator, name) = Mapping::create_named(region_len).expect("create");
    let _guard = Unlink(name.clone());
    // init_state stays BLANK (0).
    for timeout in [Duration::ZERO, Duration::from_millis(20)] {
        let err = attach_region(name.as_str(), timeout).expect_err("never ready");
        assert_eq!(err.code(), ErrorCode::NotReady, "{err}");
        assert!(err.to_string().contains(name.as_str()), "{err}");
    }
}

#[test]
fn a_region_made_ready_during_the_wait_is_attached() {
    let region_len = Geometry::compute(&small_params())
        .expect("geometry")
        .region_len();
    let (creator, name) = Mapping::create_named(region_len).expect("create");
    let _guard = Unlink(name.clone());
    // INITIALISING, as a creator that has started but not finished (INIT-1).
    let init = creator
        .as_shared()
        .atomic_u32(INIT_STATE_OFFSET)
        .expect("init word");
    init.store(1, Ordering::Release);
    let waiting = {
        let name = name.clone();
        std::thread::spawn(move || attach_region(name.as_str(), Duration::from_secs(30)))
    };
    std::thread::sleep(Duration::from_millis(20));
    let geometry = format(&creator);
    let attached = waiting.join().expect("attacher thread").expect("attach");
    assert_eq!(attached.len(), geometry.region_len());
}

#[test]
fn a_corrupt_header_is_refused_at_once_not_retried() {
    let region_len = Geometry::compute(&small_params())
        .expect("geometry")
        .region_len();
    let (creator, name) = Mapping::create_named(region_len).expect("create");
    let _guard = Unlink(name.clone());
    format(&creator);
    creator
        .as_shared()
        .write(0, b"NOTKNIT!")
        .expect("corrupt magic");
    // A long timeout: a refusal other than NOT_READY must not wait for it.
    let err = attach_region(name.as_str(), Duration::from_secs(600)).expect_err("bad magic");
    assert_eq!(err.code(), ErrorCode::BadMagic, "{err}");
}

#[test]
fn an_object_shorter_than_region_len_is_refused() {
    let region_len = Geometry::compute(&small_params())
        .expect("geometry")
        .region_len();
    let (creator, name) = Mapping::create_named(region_len).expect("create");
    let _guard = Unlink(name.clone());
    format(&creator);
    // Shrink the object under the name: an attacher sees a header promising more than exists.
    let short = region_len / 2;
    rustix::fs::ftruncate(creator.fd(), short as u64).expect("shrink");
    drop(creator);
    let err = attach_region(name.as_str(), Duration::from_secs(1)).expect_err("too small");
    assert_eq!(err.code(), ErrorCode::RegionTooSmall, "{err}");
}
