//! flax's figures: how fast a join becomes a tunnel, and what reconciling a
//! large membership costs in time and memory. Real flax processes, real
//! etcd, real OVS.

use crate::stats::{ms, summarize};
use anyhow::{bail, Context, Result};
use lab::{Netns, Ovs};
use serde_json::json;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        lab::process::stop_pid(self.0.id());
        let _ = self.0.wait();
    }
}

fn start_flax(bin: &Path, config: &Path, log: &Path) -> Result<Daemon> {
    let child = Command::new(bin)
        .arg("--config")
        .arg(config)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log)?)
        .spawn()
        .context("start flax")?;
    Ok(Daemon(child))
}

/// flax's config for a benchmark node: identity, `backend` (a TOML
/// assignment) and the tables that go with it.
fn flax_config(ovs: &Ovs, backend: &str, tables: &str) -> String {
    format!(
        "node_name = \"self\"\nnode_ip = \"172.29.255.254\"\nmetrics_address = \"127.0.0.1:0\"\nresync_seconds = 600\n{backend}\n[ovs]\nsocket = \"{}\"\ndatapath_type = \"netdev\"\nlinux_bridge = \"\"\n{tables}",
        ovs.db_sock().display()
    )
}

/// A put through etcd's JSON gateway: one HTTP request, so the figure is
/// not inflated by starting an etcdctl process.
fn etcd_put(endpoint: &str, key: &str, value: &str) -> Result<()> {
    use base64_lite::encode;
    let addr = endpoint.trim_start_matches("http://");
    let body =
        json!({"key": encode(key.as_bytes()), "value": encode(value.as_bytes())}).to_string();
    let mut s = std::net::TcpStream::connect(addr)?;
    write!(
        s,
        "POST /v3/kv/put HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut reply = String::new();
    s.read_to_string(&mut reply)?;
    if !reply.starts_with("HTTP/1.1 200") {
        bail!("etcd put {key}: {reply}");
    }
    Ok(())
}

mod base64_lite {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    pub fn encode(b: &[u8]) -> String {
        let mut out = String::new();
        for c in b.chunks(3) {
            let n = (u32::from(c[0]) << 16)
                | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
                | u32::from(*c.get(2).unwrap_or(&0));
            for i in 0..4 {
                if i <= c.len() {
                    out.push(T[(n >> (18 - 6 * i)) as usize & 63] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }
}

/// Waits on an OVSDB monitor until a port named `name` exists.
fn wait_port(mon: &mut ovsdb::Client, name: &str, timeout: Duration) -> Result<()> {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if let Some(u) = mon.next_update(Duration::from_millis(100))? {
            let seen = u["Port"]
                .as_object()
                .is_some_and(|rows| rows.values().any(|r| r["new"]["name"] == name));
            if seen {
                return Ok(());
            }
        }
    }
    bail!("port {name} did not appear within {timeout:?}")
}

fn monitor_ports(ovs: &Ovs) -> Result<ovsdb::Client> {
    let mut c = ovsdb::Client::connect(
        &ovsdb::Endpoint::Unix(ovs.db_sock().display().to_string()),
        Duration::from_secs(5),
    )?;
    c.monitor(
        "Open_vSwitch",
        json!("bench"),
        json!({"Port": {"columns": ["name"]}}),
    )?;
    Ok(c)
}

fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |k: &str| {
        status
            .lines()
            .find(|l| l.starts_with(k))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// The `took_us` of the next "reconciled" log line with `changes`.
fn next_reconcile(
    log: &Path,
    after: usize,
    changes: usize,
    timeout: Duration,
) -> Result<(Duration, usize)> {
    let start = Instant::now();
    let needle = format!("changes={changes} ");
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        if let Some((i, line)) = lines
            .iter()
            .enumerate()
            .skip(after)
            .find(|(_, l)| l.contains("reconciled") && l.contains(&needle))
        {
            let us: u64 = line
                .split("took_us=")
                .nth(1)
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.trim_matches(|c: char| !c.is_ascii_digit()).parse().ok())
                .context("took_us in log line")?;
            return Ok((Duration::from_micros(us), i + 1));
        }
        if start.elapsed() > timeout {
            bail!("no reconcile with {changes} change(s) in {timeout:?}; log:\n{text}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn peers_file(n: usize, skip: Option<usize>) -> String {
    let mut s = String::from("[[peer]]\nname = \"self\"\nip = \"172.29.255.254\"\n");
    for i in 0..n {
        if Some(i) == skip {
            continue;
        }
        s.push_str(&format!(
            "[[peer]]\nname = \"p{i}\"\nip = \"172.30.{}.{}\"\n",
            i / 250,
            i % 250 + 1
        ));
    }
    s
}

pub fn run(bin_dir: PathBuf, joins: usize, peers: usize) -> Result<()> {
    let flax = bin_dir.join("flax");
    anyhow::ensure!(
        flax.exists(),
        "{} not found: cargo build --release -p flax",
        flax.display()
    );

    // 1. Join to tunnel, etcd backend.
    let etcd = lab::etcd::Etcd::start()?;
    let ns = Netns::create("lbf")?;
    let ovs = Ovs::start(&ns)?;
    let config = ovs.dir.join("flax.toml");
    let etcd_table = format!(
        "[etcd]\nendpoints = [\"{}\"]\ncluster_cidr = \"10.244.0.0/16\"\n",
        etcd.endpoint()
    );
    std::fs::write(
        &config,
        flax_config(&ovs, "backend = \"etcd\"", &etcd_table),
    )?;
    let log = ovs.dir.join("flax.log");
    let daemon = start_flax(&flax, &config, &log)?;
    let mut mon = monitor_ports(&ovs)?;
    // Ready: flax registered itself and built the bridge.
    lab::cluster::eventually(Duration::from_secs(20), || {
        ovs.vsctl(&["br-exists", "br0"]).is_ok()
    });
    let mut lat = Vec::with_capacity(joins);
    for i in 0..joins {
        let ip = format!("172.30.{}.{}", i / 250, i % 250 + 1);
        let name = format!("vxif{}", ip.replace('.', "_"));
        let value = json!({"name": format!("j{i}"), "ip": ip}).to_string();
        let t = Instant::now();
        etcd_put(&etcd.endpoint(), &format!("/linen/nodes/j{i}"), &value)?;
        wait_port(&mut mon, &name, Duration::from_secs(10))?;
        lat.push(t.elapsed());
    }
    let j = summarize(&lat);
    let (rss_join, _) = rss_kib(daemon.0.id());
    drop(daemon);
    drop(mon);
    drop(ovs);
    drop(ns);

    // 2. 500 peers from empty, then one change among 500: static backend.
    let ns = Netns::create("lbf")?;
    let ovs = Ovs::start(&ns)?;
    let peers_path = ovs.dir.join("peers.toml");
    std::fs::write(&peers_path, peers_file(0, None))?;
    let config = ovs.dir.join("flax.toml");
    let static_table = format!(
        "[static]\npeers_file = \"{}\"\npoll_ms = 10\n",
        peers_path.display()
    );
    std::fs::write(
        &config,
        flax_config(&ovs, "backend = \"static\"", &static_table),
    )?;
    let log = ovs.dir.join("flax.log");
    let daemon = start_flax(&flax, &config, &log)?;
    let (_, mut cursor) = next_reconcile(&log, 0, 1, Duration::from_secs(20))?; // the bridge
    let (rss_idle, _) = rss_kib(daemon.0.id());
    std::fs::write(&peers_path, peers_file(peers, None))?;
    let (full, c) = next_reconcile(&log, cursor, peers, Duration::from_secs(120))?;
    cursor = c;
    let mut one = Vec::new();
    for k in 0..20 {
        // Alternately drop one peer and bring it back.
        let skip = if k % 2 == 0 {
            Some(k * 7 % peers)
        } else {
            None
        };
        std::fs::write(&peers_path, peers_file(peers, skip))?;
        let (t, c) = next_reconcile(&log, cursor, 1, Duration::from_secs(20))?;
        cursor = c;
        one.push(t);
    }
    let o = summarize(&one);
    let (rss, hwm) = rss_kib(daemon.0.id());
    drop(daemon);

    println!(
        "bench-flax: real flax processes, real etcd {}, OVS userspace datapath",
        crate::stats::tool_version("etcd")
    );
    println!();
    println!("| measure | n | p50 | p99 | target |");
    println!("|---|---|---|---|---|");
    println!(
        "| join -> tunnel in OVS (etcd put to Port row) | {} | {} | {} | p99 < 500 ms |",
        j.n,
        ms(j.p50),
        ms(j.p99)
    );
    println!("| reconcile {peers} peers from empty (one transaction, applied by ovs-vswitchd) | 1 | {} | - | < 2 s |", ms(full));
    println!(
        "| reconcile 1 change among {peers} | {} | {} | {} | < 50 ms |",
        o.n,
        ms(o.p50),
        ms(o.p99)
    );
    println!();
    println!(
        "flax RSS: {:.1} MiB idle, {:.1} MiB after 50 joins (etcd), {:.1} MiB with {peers} peers, peak {:.1} MiB (target < 30 MB)",
        rss_idle as f64 / 1024.0,
        rss_join as f64 / 1024.0,
        rss as f64 / 1024.0,
        hwm as f64 / 1024.0
    );
    Ok(())
}
