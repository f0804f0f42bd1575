//! Data-plane throughput: pod to pod through Linen's OVS VXLAN tunnels,
//! against the same node, and against a plain kernel VXLAN device between the
//! very same node namespaces (the like-for-like baseline for the overlay).

use anyhow::{Context, Result};
use lab::cluster::{Cluster, Options};
use lab::process::run;
use lab::traffic::iperf;
use lab::Netns;
use std::path::PathBuf;

/// A kernel-only path between two nodes of the lab: a second underlay link
/// through the same fabric switch, a kernel `vxlan` device on each node, a
/// Linux bridge, and a pod namespace on each side with the same MTU as
/// Linen's pods.
struct KernelVxlan {
    pods: Vec<Netns>,
}

impl KernelVxlan {
    fn build(c: &Cluster) -> Result<KernelVxlan> {
        let mut pods = Vec::new();
        for (k, n) in c.nodes.iter().take(2).enumerate() {
            let i = k + 1;
            let peer = 3 - i;
            let fab = format!("k{i}");
            let ul = format!("172.31.1.{i}");
            run(&mut c.fabric.cmd([
                "ip", "link", "add", &fab, "type", "veth", "peer", "name", "ul0", "netns",
                &n.ns.name,
            ]))?;
            run(&mut c
                .fabric
                .cmd(["ip", "link", "set", &fab, "master", "fab0", "up"]))?;
            let ns = |argv: &[&str]| run(&mut n.ns.cmd(argv));
            ns(&["ip", "addr", "add", &format!("{ul}/24"), "dev", "ul0"])?;
            ns(&["ip", "link", "set", "ul0", "up"])?;
            ns(&[
                "ip",
                "link",
                "add",
                "vxk",
                "type",
                "vxlan",
                "id",
                "42",
                "local",
                &ul,
                "remote",
                &format!("172.31.1.{peer}"),
                "dstport",
                "4790",
                "dev",
                "ul0",
            ])?;
            ns(&["ip", "link", "add", "kbrk", "type", "bridge"])?;
            ns(&["ip", "link", "set", "vxk", "master", "kbrk", "up"])?;
            ns(&["ip", "link", "set", "kbrk", "mtu", "1400", "up"])?;
            let pod = Netns::create("lkp")?;
            ns(&[
                "ip", "link", "add", "vk0", "mtu", "1400", "type", "veth", "peer", "name", "eth0",
                "mtu", "1400", "netns", &pod.name,
            ])?;
            ns(&["ip", "link", "set", "vk0", "master", "kbrk", "up"])?;
            run(&mut pod.cmd([
                "ip",
                "addr",
                "add",
                &format!("10.99.0.{i}/24"),
                "dev",
                "eth0",
            ]))?;
            run(&mut pod.cmd(["ip", "link", "set", "eth0", "up"]))?;
            pods.push(pod);
        }
        Ok(KernelVxlan { pods })
    }
}

pub fn run_bench(linen_dir: PathBuf, seconds: u32, repeats: usize) -> Result<()> {
    let mut opts = Options::new(linen_dir);
    opts.nodes = 2;
    let mut c = Cluster::up(&opts).context("lab up")?;
    c.nodes[0].add_pod()?;
    c.nodes[0].add_pod()?;
    c.nodes[1].add_pod()?;
    let kernel = KernelVxlan::build(&c).context("kernel VXLAN baseline")?;
    let (a, a2, b) = (
        &c.nodes[0].pods[0],
        &c.nodes[0].pods[1],
        &c.nodes[1].pods[0],
    );
    anyhow::ensure!(a.ns.ping(&b.ip, 2), "Linen pods cannot reach each other");
    anyhow::ensure!(
        kernel.pods[0].ping("10.99.0.2", 2),
        "kernel VXLAN pods cannot reach each other"
    );

    println!("bench-dataplane: one iperf3 TCP stream, {seconds} s, best and median of {repeats} runs, pod MTU 1400 everywhere");
    let measure = |client: &Netns, server: &Netns, ip: &str| -> Result<(f64, f64)> {
        let mut v = Vec::new();
        for _ in 0..repeats {
            v.push(iperf(client, server, ip, seconds)? / 1e6);
        }
        v.sort_by(f64::total_cmp);
        Ok((v[v.len() - 1], v[v.len() / 2]))
    };
    let same = measure(&a.ns, &a2.ns, &a2.ip)?;
    let linen = measure(&a.ns, &b.ns, &b.ip)?;
    let kern = measure(&kernel.pods[0], &kernel.pods[1], "10.99.0.2")?;
    println!();
    println!("| path | best Mbit/s | median Mbit/s | median vs kernel VXLAN |");
    println!("|---|---|---|---|");
    for (name, (best, med)) in [
        ("same node: pod -> kbr0 -> pod", same),
        ("cross node: Linen (OVS userspace VXLAN)", linen),
        ("cross node: plain kernel VXLAN, same node namespaces", kern),
    ] {
        println!("| {name} | {best:.0} | {med:.0} | {:.2}x |", med / kern.1);
    }
    drop(kernel);
    drop(c);
    Ok(())
}
