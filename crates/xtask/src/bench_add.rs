//! ADD latency: the `linen` step warm (everything in place) and cold
//! (creates the bridge), beside the `bridge`+`host-local` steps it follows,
//! all as real plugin processes on one emulated node.

use crate::stats::{ms, summarize};
use anyhow::{bail, Context, Result};
use lab::{Netns, Ovs};
use serde_json::{json, Value};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs one plugin process in the current network namespace and returns
/// its stdout and how long it took.
fn exec(
    bin: &Path,
    command: &str,
    netns: &Path,
    container: &str,
    conf: &Value,
) -> Result<(Value, Duration)> {
    let start = Instant::now();
    let mut child = Command::new(bin)
        .env_clear()
        .env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", container)
        .env("CNI_NETNS", netns)
        .env("CNI_IFNAME", "eth0")
        .env("CNI_PATH", bin.parent().unwrap())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("spawn {}", bin.display()))?;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(conf.to_string().as_bytes())?;
    let out = child.wait_with_output()?;
    let took = start.elapsed();
    if !out.status.success() {
        bail!(
            "{} {command} failed: {}{}",
            bin.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let v = if out.stdout.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&out.stdout)?
    };
    Ok((v, took))
}

/// Moves this process into `ns`, so plugins run there without the cost of
/// `ip netns exec` inflating the figures.
fn enter(ns: &Netns) -> Result<()> {
    let f = std::fs::File::open(ns.path())?;
    // SAFETY: a valid netns fd; this is the only thread at this point.
    let rc = unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&f), libc::CLONE_NEWNET) };
    if rc != 0 {
        bail!("setns: {}", std::io::Error::last_os_error());
    }
    Ok(())
}

/// The directory of the `linen` binary built beside this one.
pub fn linen_dir() -> Result<PathBuf> {
    let me = std::env::current_exe()?;
    let dir = me.parent().unwrap().to_path_buf();
    if !dir.join("linen").exists() {
        bail!(
            "{} not found: build it first (cargo build --release -p linen)",
            dir.join("linen").display()
        );
    }
    Ok(dir)
}

pub fn run(iterations: usize) -> Result<()> {
    let linen = linen_dir()?.join("linen");
    let bridge = PathBuf::from(lab::chain::DEBIAN_CNI_DIR).join("bridge");
    let node = Netns::create("lnb")?;
    let mut ovs = Ovs::start(&node)?;
    enter(&node)?;
    let ipam_dir = ovs.dir.join("ipam");
    let bridge_conf = json!({
        "cniVersion": "1.0.0", "name": "bench", "type": "bridge", "bridge": "kbr0",
        "isGateway": true, "isDefaultGateway": true, "mtu": 1400,
        "ipam": {"type": "host-local", "subnet": "10.244.0.0/16", "gateway": "10.244.1.1",
                 "rangeStart": "10.244.1.10", "rangeEnd": "10.244.1.250", "dataDir": ipam_dir}
    });
    let linen_conf = |prev: &Value| {
        json!({
            "cniVersion": "1.0.0", "name": "bench", "type": "linen",
            "ovsdbSocket": ovs.db_sock(), "datapathType": "netdev",
            "vtepIPs": ["172.31.0.2", "172.31.0.3", "172.31.0.4"],
            "prevResult": prev,
        })
    };
    println!(
        "bench-add: {iterations} ADDs per step on one node (OVS {} userspace datapath)",
        crate::stats::tool_version("ovs-vswitchd")
    );

    // bridge + host-local, a fresh pod each time (DEL afterwards, untimed,
    // so the address range never runs out).
    let pod = Netns::create("lnbp")?;
    let mut base = Vec::with_capacity(iterations);
    for i in 0..iterations {
        let id = format!("bench{i}");
        let (_, t) = exec(&bridge, "ADD", &pod.path(), &id, &bridge_conf)?;
        base.push(t);
        exec(&bridge, "DEL", &pod.path(), &id, &bridge_conf)?;
    }
    // One pod stays attached so kbr0 exists for linen's steps.
    let (prev, _) = exec(&bridge, "ADD", &pod.path(), "kept", &bridge_conf)?;
    let conf = linen_conf(&prev);

    let mut cold = Vec::with_capacity(iterations);
    for i in 0..iterations {
        // Untimed: remove the bridge (and with it the ports) so the next
        // ADD builds everything from scratch.
        ovs.vsctl(&["--if-exists", "del-br", "br0"])?;
        let (_, t) = exec(&linen, "ADD", &pod.path(), &format!("cold{i}"), &conf)?;
        cold.push(t);
    }
    let mut warm = Vec::with_capacity(iterations);
    for i in 0..iterations {
        let (_, t) = exec(&linen, "ADD", &pod.path(), &format!("warm{i}"), &conf)?;
        warm.push(t);
    }

    // The very first ADD a node ever sees: a freshly started OVS with an
    // empty database and no tap device yet, where ovs-vswitchd also builds
    // its userspace datapath. Fewer samples: each restarts OVS (untimed).
    let fresh_runs = (iterations / 10).max(5);
    let mut fresh = Vec::with_capacity(fresh_runs);
    for i in 0..fresh_runs {
        drop(ovs);
        let _ = Command::new("ip").args(["link", "del", "br0"]).output();
        ovs = Ovs::start(&node)?;
        let (_, t) = exec(&linen, "ADD", &pod.path(), &format!("fresh{i}"), &conf)?;
        fresh.push(t);
    }

    let (b, w, c) = (summarize(&base), summarize(&warm), summarize(&cold));
    let f = summarize(&fresh);
    println!();
    println!("| step | n | p50 | p99 | mean |");
    println!("|---|---|---|---|---|");
    for (name, s) in [
        ("bridge + host-local (Debian 1.1.1)", &b),
        ("linen, warm (bridge and 3 VTEPs in place)", &w),
        ("linen, cold (creates bridge, internal port, 3 VTEPs)", &c),
        ("linen, first ADD on a freshly started OVS", &f),
    ] {
        println!(
            "| {name} | {} | {} | {} | {} |",
            s.n,
            ms(s.p50),
            ms(s.p99),
            ms(s.mean)
        );
    }
    println!();
    println!(
        "warm p50 / bridge+host-local p50 = {:.2}x (target <= 0.25x); warm p50 target <= 5 ms; cold p50 target <= 50 ms",
        w.p50.as_secs_f64() / b.p50.as_secs_f64()
    );
    drop(pod);
    drop(ovs);
    Ok(())
}
