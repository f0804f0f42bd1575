//! The demo: several emulated nodes, pods attached through the real CNI
//! chain, then what a person wants to see: every pod reaching every other,
//! throughput, and the OVS wiring.

use anyhow::{bail, Context, Result};
use lab::cluster::{Cluster, Options, Topology};
use lab::Netns;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Ctrl-C or SIGTERM end the demo between steps, so the lab is torn down by
/// the normal drop path instead of being left behind.
fn trap_signals() {
    // SAFETY: the handler only stores to an atomic.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
}

fn check_interrupt() -> Result<()> {
    if INTERRUPTED.load(Ordering::SeqCst) {
        bail!("interrupted: tearing the lab down");
    }
    Ok(())
}

pub struct Args {
    pub nodes: usize,
    pub pods_per_node: usize,
    pub hub: bool,
    pub keep: bool,
    pub controller: bool,
    /// The original workflow: `vtepIPs` written into each node's conflist
    /// instead of flax keeping the mesh.
    pub static_vteps: bool,
}

struct Steps {
    n: usize,
    total: usize,
    start: Instant,
}

impl Steps {
    fn next(&mut self, what: &str) -> Result<()> {
        check_interrupt()?;
        self.n += 1;
        println!(
            "\n[{}/{}] {what}  (t+{:.1}s)",
            self.n,
            self.total,
            self.start.elapsed().as_secs_f64()
        );
        Ok(())
    }
}

fn describe_node(n: &lab::cluster::Node) {
    let linen = &n.chain.conflist["plugins"][1];
    let how = match linen.get("vtepIPs") {
        Some(v) => format!("vtepIPs {v}"),
        None => format!("conflist by flax, tunnels {:?}", n.tunnels()),
    };
    println!(
        "  node{} (netns {})  underlay {}  pod gateway {}  {how}",
        n.index,
        n.ns.name,
        n.underlay_ip,
        n.gateway()
    );
}

/// Waits until every node's br0 holds exactly the tunnels a full mesh of
/// the current nodes needs; returns how long that took.
fn wait_for_mesh(cluster: &Cluster, timeout: Duration) -> Option<Duration> {
    let start = Instant::now();
    let ok = lab::cluster::eventually(timeout, || {
        cluster.nodes.iter().all(|n| {
            let mut want: Vec<String> = cluster
                .nodes
                .iter()
                .filter(|m| m.index != n.index)
                .map(|m| format!("vxif{}", m.underlay_ip.replace('.', "_")))
                .collect();
            want.sort();
            let mut have = n.tunnels();
            have.sort();
            have == want
        })
    });
    ok.then(|| start.elapsed())
}

pub fn run(args: Args, linen_dir: std::path::PathBuf) -> Result<()> {
    trap_signals();
    let mut steps = Steps {
        n: 0,
        total: 6,
        start: Instant::now(),
    };
    let topology = if args.hub {
        Topology::Hub
    } else {
        Topology::Mesh
    };
    let mut opts = Options::new(linen_dir);
    opts.nodes = args.nodes;
    opts.topology = topology;
    opts.controller = args.controller;
    opts.flax = !(args.static_vteps || args.hub || args.controller);
    if opts.flax {
        steps.total += 2;
    }

    steps.next(&format!(
        "starting {} nodes: a namespace each with its own ovsdb-server + ovs-vswitchd (userspace datapath), underlay 172.31.0.0/24 on br-phy; topology {}; {}",
        args.nodes,
        if args.hub { "hub (node 1 isMaster, the original star)" } else { "full mesh (protected tunnel ports)" },
        if opts.flax {
            "membership: flax on every node, etcd on the fabric at 172.31.0.254:2379; conflists rendered by flax, no vtepIPs"
        } else {
            "membership: vtepIPs written in each node's conflist (the original workflow)"
        }
    ))?;
    let mut cluster = Cluster::up(&opts).context("bringing the lab up")?;
    println!(
        "  lab state {} (fabric netns {})",
        cluster.state_path().display(),
        cluster.fabric.name
    );
    for n in &cluster.nodes {
        describe_node(n);
    }

    steps.next(&format!(
        "attaching {} pods per node through the chain bridge -> host-local -> linen",
        args.pods_per_node
    ))?;
    for n in &mut cluster.nodes {
        for _ in 0..args.pods_per_node {
            let t = Instant::now();
            let index = n.index;
            let pod = n.add_pod()?;
            println!(
                "  node{index}  {}  {}  ({:.0} ms)",
                pod.ns.name,
                pod.ip,
                t.elapsed().as_secs_f64() * 1e3
            );
        }
    }
    cluster.write_state();

    let mut faucet = if args.controller {
        steps.total += 1;
        steps.next("starting Faucet (OpenFlow controller) on the fabric at 172.31.0.254:6653")?;
        let yaml = lab::faucet::config(&cluster)?;
        let f = lab::faucet::Faucet::start(&cluster, &lab::faucet::default_venv(), &yaml)?;
        let connected = lab::cluster::eventually(Duration::from_secs(30), || {
            cluster.nodes.iter().all(lab::faucet::connected)
        });
        println!("  every br0 reports the controller connected: {connected}");
        Some(f)
    } else {
        None
    };

    steps.next("pod-to-pod ping matrix (3 probes each, every pair)")?;
    if opts.flax {
        // flax may still be adding the last tunnels when the pods exist.
        wait_for_mesh(&cluster, Duration::from_secs(10));
    }
    let mut failures = ping_matrix(&cluster);

    if opts.flax {
        steps.next(
            "a fourth node joins: flax registers it in etcd, every node's flax adds a tunnel to it",
        )?;
        let t = Instant::now();
        let index = cluster.add_node(&opts)?;
        let up = t.elapsed();
        let meshed = wait_for_mesh(&cluster, Duration::from_secs(20));
        println!(
            "  node{index} up in {:.1}s; full mesh again {} later",
            up.as_secs_f64(),
            match meshed {
                Some(d) => format!("{:.0} ms", d.as_secs_f64() * 1e3),
                None => "NEVER".into(),
            }
        );
        if meshed.is_none() {
            failures += 1;
        }
        let node = cluster
            .nodes
            .iter_mut()
            .find(|n| n.index == index)
            .expect("just added");
        describe_node(node);
        let pod = node.add_pod()?;
        println!("  node{index}  {}  {}", pod.ns.name, pod.ip);
        failures += ping_matrix(&cluster);

        steps.next(
            "the fourth node leaves (dies): its lease expires, every flax removes the tunnel to it",
        )?;
        let t = Instant::now();
        cluster.remove_node(index);
        let gone = wait_for_mesh(&cluster, Duration::from_secs(30));
        match gone {
            Some(_) => println!(
                "  tunnels to node{index} gone from every node after {:.1}s (lease TTL {} s)",
                t.elapsed().as_secs_f64(),
                lab::cluster::LEASE_TTL
            ),
            None => {
                println!("  tunnels to node{index} still present after 30 s");
                failures += 1;
            }
        }
        for n in &cluster.nodes {
            println!("  node{}  tunnels {:?}", n.index, n.tunnels());
        }
    }

    if let Some(f) = faucet.take() {
        steps.total += 1;
        steps
            .next("stopping the controller: fail_mode=standalone falls back to normal switching")?;
        f.stop();
        let gone = lab::cluster::eventually(Duration::from_secs(30), || {
            !cluster.nodes.iter().any(lab::faucet::connected)
        });
        println!("  every br0 reports the controller disconnected: {gone}");
        // OVS fails open after three missed inactivity probes (about 15 s);
        // until then the controller's last flows keep forwarding.
        let t = Instant::now();
        let open = lab::cluster::eventually(Duration::from_secs(40), || {
            cluster.nodes.iter().all(lab::faucet::failed_open)
        });
        println!(
            "  every br0 failed open to normal (NORMAL) switching after {:.1}s: {open}",
            t.elapsed().as_secs_f64()
        );
        failures += ping_matrix(&cluster);
    }

    steps.next("iperf3 throughput, one TCP stream, 3 s")?;
    let pods = cluster.pods();
    let same = pods
        .iter()
        .find(|(n, _)| *n == 1)
        .zip(pods.iter().filter(|(n, _)| *n == 1).nth(1));
    let cross = pods
        .iter()
        .find(|(n, _)| *n == 1)
        .zip(pods.iter().find(|(n, _)| *n == 2));
    for (label, pair) in [
        ("same node (node1 -> node1)", same),
        ("cross node (node1 -> node2, VXLAN)", cross),
    ] {
        check_interrupt()?;
        if let Some(((_, a), (_, b))) = pair {
            match lab::traffic::iperf(&a.ns, &b.ns, &b.ip, 3) {
                Ok(bps) => println!("  {label:<36} {:>8.0} Mbit/s", bps / 1e6),
                Err(e) => println!("  {label:<36} failed: {e:#}"),
            }
        }
    }

    steps.next("ovs-vsctl show on node1")?;
    let n1 = &cluster.nodes[0];
    println!("{}", indent(&n1.ovs.vsctl(&["show"])?));

    steps
        .next("which Linux bridge br0 is enslaved to (node1: bridge link, ip -d link show br0)")?;
    println!(
        "{}",
        indent(&lab::process::stdout(&mut n1.ns.cmd(["bridge", "link"]))?)
    );
    let link = lab::process::stdout(&mut n1.ns.cmd(["ip", "-d", "link", "show", "br0"]))?;
    println!(
        "{}",
        indent(link.lines().take(2).collect::<Vec<_>>().join("\n").as_str())
    );

    println!("\ndone in {:.1}s", steps.start.elapsed().as_secs_f64());
    if args.keep {
        let state = cluster.keep();
        println!(
            "lab kept up; remove it with: cargo run --release -p xtask -- down {}",
            state.display()
        );
    }
    if failures > 0 {
        bail!("{failures} pod pair(s) could not reach each other");
    }
    Ok(())
}

fn indent(s: &str) -> String {
    s.lines()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Pings every ordered pod pair, one thread per source pod, and prints the
/// matrix. Returns the number of failing pairs.
fn ping_matrix(cluster: &Cluster) -> usize {
    let pods = cluster.pods();
    let rows: Vec<Vec<Option<f64>>> = std::thread::scope(|s| {
        let handles: Vec<_> = pods
            .iter()
            .map(|(_, src)| {
                let pods = &pods;
                s.spawn(move || {
                    pods.iter()
                        .map(|(_, dst)| {
                            (src.ip != dst.ip)
                                .then(|| ping_rtt(&src.ns, &dst.ip))
                                .flatten()
                        })
                        .collect()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_default())
            .collect()
    });
    let label = |(n, p): &(usize, &lab::cluster::Pod)| format!("n{n}:{}", p.ip);
    let width = 17;
    print!("  {:<width$}", "from \\ to");
    for p in &pods {
        print!("{:>width$}", label(p));
    }
    println!();
    let mut failures = 0;
    for (i, src) in pods.iter().enumerate() {
        print!("  {:<width$}", label(src));
        for (j, _) in pods.iter().enumerate() {
            let cell = if i == j {
                "-".to_string()
            } else {
                match rows[i][j] {
                    Some(ms) => format!("ok {ms:.2}ms"),
                    None => {
                        failures += 1;
                        "FAIL".into()
                    }
                }
            };
            print!("{cell:>width$}");
        }
        println!();
    }
    let pairs = pods.len() * (pods.len().saturating_sub(1));
    println!("  {} of {pairs} pairs reachable", pairs - failures);
    failures
}

/// Average RTT in ms when at least one probe came back.
fn ping_rtt(ns: &Netns, ip: &str) -> Option<f64> {
    let out = ns
        .cmd(["ping", "-n", "-q", "-c", "3", "-i", "0.2", "-W", "2", ip])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    // "rtt min/avg/max/mdev = 0.061/0.074/0.090/0.012 ms"
    let line = text.lines().find(|l| l.starts_with("rtt"))?;
    line.split('=')
        .nth(1)?
        .trim()
        .split('/')
        .nth(1)?
        .parse()
        .ok()
}

pub fn down(state: &std::path::Path) -> Result<()> {
    lab::cluster::down(state)?;
    println!("removed the lab described by {}", state.display());
    Ok(())
}
