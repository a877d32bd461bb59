//! The `knit` binary against real named regions in /dev/shm.

use std::process::{Command, Output};

use knit::{Mapping, ProcessIdentity, RegionName};
use knit_core::geometry::{Geometry, Params};
use knit_core::participant::Identity;
use knit_core::region::Region;

fn knit(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_knit"))
        .args(args)
        .output()
        .expect("run knit")
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "knit failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).expect("utf-8 output")
}

/// A named region formatted with `host` as participant 0; unlinked on drop.
struct TestRegion {
    _mapping: Mapping,
    name: RegionName,
}

impl TestRegion {
    fn new(host: ProcessIdentity) -> TestRegion {
        let params = Params {
            worker_slots: 2,
            channel_slots: 1,
            ..Params::default()
        };
        let len = Geometry::compute(&params).expect("geometry").region_len();
        let (mapping, name) = Mapping::create_named(len).expect("create region");
        let id = Identity {
            pid: host.pid,
            start_time: host.start_time,
            impl_name: "knit-cli test",
        };
        Region::format(mapping.as_shared(), &params, &id, [7; 16], 1).expect("format");
        TestRegion {
            _mapping: mapping,
            name,
        }
    }
}

impl Drop for TestRegion {
    fn drop(&mut self) {
        let _ = knit::unlink(&self.name);
    }
}

/// The identity of a process that existed and is now dead and reaped.
fn dead_identity() -> ProcessIdentity {
    let mut child = Command::new("sleep")
        .arg("30")
        .spawn()
        .expect("spawn sleep");
    let id = ProcessIdentity::of(child.id()).expect("identity of the child");
    child.kill().expect("kill");
    child.wait().expect("reap");
    id
}

#[test]
fn inspect_json_reports_header_participants_and_rings() {
    let region = TestRegion::new(ProcessIdentity::current().unwrap());
    let out = stdout(&knit(&["inspect", "--json", region.name.as_str()]));
    let v: serde_json::Value = serde_json::from_str(&out).expect("valid JSON");
    assert_eq!(v["version"], "1.0");
    assert_eq!(v["region_id"], "07".repeat(16));
    assert_eq!(v["geometry"]["worker_slots"], 2);
    assert_eq!(v["poison"], serde_json::Value::Null);
    let host = &v["participants"][0];
    assert_eq!(host["state"], "ACTIVE");
    assert_eq!(host["role"], "host");
    assert_eq!(host["pid"], std::process::id());
    assert_eq!(host["alive"], true);
    assert_eq!(host["implementation"], "knit-cli test");
    assert_eq!(v["participants"][1]["state"], "EMPTY");
    assert_eq!(v["mailboxes"].as_array().unwrap().len(), 2);
    assert_eq!(v["mailboxes"][0]["request"]["used"], 0);
}

#[test]
fn inspect_text_names_the_region_and_its_host() {
    let region = TestRegion::new(ProcessIdentity::current().unwrap());
    let out = stdout(&knit(&["inspect", region.name.as_str()]));
    assert!(
        out.contains(&format!("region {}", region.name.as_str())),
        "{out}"
    );
    assert!(
        out.contains(&format!("pid {} (alive", std::process::id())),
        "{out}"
    );
    assert!(out.contains("poisoned    no"), "{out}");
}

#[test]
fn inspect_refuses_a_name_that_is_not_a_region_name() {
    let out = knit(&["inspect", "../etc/passwd"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("INVALID_ARGUMENT"));
}

#[test]
fn ls_lists_live_regions_and_gc_removes_only_abandoned_ones() {
    let live = TestRegion::new(ProcessIdentity::current().unwrap());
    let abandoned = TestRegion::new(dead_identity());

    let listed: serde_json::Value =
        serde_json::from_str(&stdout(&knit(&["ls", "--json"]))).unwrap();
    let find = |name: &RegionName| {
        listed
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name.as_str())
            .cloned()
    };
    let live_row = find(&live.name).expect("live region listed");
    assert_eq!(live_row["host_alive"], true);
    assert_eq!(live_row["abandoned"], false);
    assert_eq!(
        find(&abandoned.name).expect("abandoned region listed")["abandoned"],
        true
    );

    let dry = stdout(&knit(&["gc", "--dry-run"]));
    assert!(
        dry.contains(&format!("would remove {}", abandoned.name.as_str())),
        "{dry}"
    );
    assert!(
        abandoned.name.shm_path().exists(),
        "dry run removed the region"
    );

    let out = stdout(&knit(&["gc"]));
    assert!(
        out.contains(&format!("removed {}", abandoned.name.as_str())),
        "{out}"
    );
    assert!(
        !abandoned.name.shm_path().exists(),
        "abandoned region still there"
    );
    assert!(live.name.shm_path().exists(), "gc removed a live region");
    assert!(!out.contains(live.name.as_str()), "{out}");
}
