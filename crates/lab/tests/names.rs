//! Lab names never collide with leftovers of a crashed run.

use std::process::Command;

#[test]
fn a_leftover_namespace_with_the_next_name_is_skipped_not_adopted() {
    lab::require_root!();
    // unique() counts up per process: the name after this one is predictable.
    let probe = lab::unique("lcol");
    let n: u32 = probe.rsplit('x').next().unwrap().parse().unwrap();
    let leftover = format!("lcol{}x{}", std::process::id(), n + 1);
    assert!(Command::new("ip")
        .args(["netns", "add", &leftover])
        .status()
        .unwrap()
        .success());
    let ns = lab::Netns::create("lcol").unwrap();
    let fresh = ns.name.clone();
    let _ = Command::new("ip")
        .args(["netns", "del", &leftover])
        .status();
    assert_ne!(fresh, leftover);
    drop(ns);
    assert!(!std::path::Path::new("/var/run/netns").join(&fresh).exists());
}
