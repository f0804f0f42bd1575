//! The README's demo command, end to end, and its clean-up on Ctrl-C.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

fn netns_list() -> String {
    String::from_utf8_lossy(
        &Command::new("ip")
            .args(["netns", "list"])
            .output()
            .unwrap()
            .stdout,
    )
    .to_string()
}

/// Namespace names the demo printed (`netns NAME` and pod lines).
fn printed_namespaces(out: &str) -> Vec<String> {
    out.split_whitespace()
        .map(|w| w.trim_matches(|c: char| !c.is_ascii_alphanumeric()))
        .filter(|w| {
            (w.starts_with("lfab")
                || w.starts_with("lpod")
                || (w.starts_with("ln") && w.contains('x')))
                && w.len() > 5
        })
        .map(str::to_string)
        .collect()
}

#[test]
fn the_demo_runs_and_every_pair_talks() {
    lab::require_root!();
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["demo", "--nodes", "2", "--pods-per-node", "2"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("12 of 12 pairs reachable"), "{text}");
    assert!(text.contains("Mbit/s"), "{text}");
    assert!(text.contains("master kbr0"), "{text}");
    assert!(text.contains("vxif172_31_0_2"), "{text}");
    let names = printed_namespaces(&text);
    assert!(names.len() >= 6, "{names:?}");
    let left = netns_list();
    for n in names {
        assert!(!left.contains(&n), "{n} left behind");
    }
}

#[test]
fn ctrl_c_tears_the_lab_down() {
    lab::require_root!();
    let mut child = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["demo", "--nodes", "2", "--pods-per-node", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut seen = String::new();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    // Interrupt once pods exist: the lab is fully up.
    for line in lines.by_ref() {
        let line = line.unwrap();
        seen.push_str(&line);
        seen.push('\n');
        if line.contains("lpod") {
            break;
        }
    }
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    for line in lines {
        seen.push_str(&line.unwrap());
        seen.push('\n');
    }
    let status = child.wait().unwrap();
    assert!(
        !status.success(),
        "an interrupted demo must not report success:\n{seen}"
    );
    let names = printed_namespaces(&seen);
    assert!(names.len() >= 3, "{names:?}\n{seen}");
    let left = netns_list();
    for n in names {
        assert!(!left.contains(&n), "{n} left behind after Ctrl-C:\n{seen}");
    }
}
