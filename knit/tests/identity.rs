//! Process identity and liveness against real processes (PART-8, LIVE-2).

use std::process::Command;

use knit::identity::{check_alive, read_stat};
use knit::{is_alive, ProcessIdentity};
use rustix::process::{waitid, Pid, WaitId, WaitIdOptions};

#[test]
fn the_current_process_is_alive() {
    let me = ProcessIdentity::current().expect("identity");
    assert_eq!(me.pid, std::process::id());
    assert!(me.start_time > 0);
    assert!(me.is_alive());
    assert!(is_alive(me.pid, me.start_time));
    assert_eq!(ProcessIdentity::of(me.pid).expect("of"), me);
}

#[test]
fn a_wrong_start_time_is_dead() {
    let me = ProcessIdentity::current().expect("identity");
    // PART-8: same pid, other start time = a different (reused-pid) process.
    assert!(!is_alive(me.pid, me.start_time + 1));
    assert!(!is_alive(me.pid, me.start_time - 1));
    assert!(!is_alive(me.pid, 0));
}

#[test]
fn a_child_that_exited_and_was_reaped_is_dead() {
    let mut child = Command::new("true").spawn().expect("spawn true");
    let identity = ProcessIdentity::of(child.id()).expect("identity of child");
    let status = child.wait().expect("reap");
    assert!(status.success());
    assert!(!identity.is_alive());
    // Positive evidence of death, not an undetermined check (LIVE-8).
    assert_eq!(
        check_alive(identity.pid, identity.start_time).ok(),
        Some(false)
    );
}

#[test]
fn a_zombie_is_dead() {
    let mut child = Command::new("true").spawn().expect("spawn true");
    let identity = ProcessIdentity::of(child.id()).expect("identity of child");
    let pid = Pid::from_child(&child);
    // Wait for the exit without reaping (WNOWAIT): the child stays a zombie.
    waitid(
        WaitId::Pid(pid),
        WaitIdOptions::EXITED | WaitIdOptions::NOWAIT,
    )
    .expect("waitid")
    .expect("an exit status");
    let stat = read_stat(identity.pid).expect("zombie still has a stat");
    assert_eq!(stat.state, b'Z');
    assert_eq!(stat.start_time, identity.start_time);
    assert!(!identity.is_alive(), "a zombie must not count as alive");
    assert_eq!(
        check_alive(identity.pid, identity.start_time).ok(),
        Some(false)
    );
    child.wait().expect("reap");
}

#[test]
fn a_running_child_is_alive_until_killed() {
    let mut child = Command::new("sleep")
        .arg("600")
        .spawn()
        .expect("spawn sleep");
    let identity = ProcessIdentity::of(child.id()).expect("identity of child");
    assert!(identity.is_alive());
    child.kill().expect("kill");
    child.wait().expect("reap");
    assert!(!identity.is_alive());
}
