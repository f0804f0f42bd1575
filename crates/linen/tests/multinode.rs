//! Several emulated nodes on one fabric, pods attached through the real
//! chain on each: the overlay has to carry them to each other.

mod common;
use lab::cluster::{eventually, Cluster, Options, Topology};
use std::collections::BTreeSet;
use std::time::Duration;

fn opts(nodes: usize, topology: Topology) -> Options {
    let mut o = Options::new(common::linen_bin().parent().unwrap().to_path_buf());
    o.nodes = nodes;
    o.topology = topology;
    o
}

fn up(o: &Options, pods_per_node: usize) -> Cluster {
    let mut c = Cluster::up(o).expect("lab up");
    for n in &mut c.nodes {
        for _ in 0..pods_per_node {
            n.add_pod().expect("pod ADD");
        }
    }
    c
}

/// Every ordered pod pair; returns the failures.
fn failing_pairs(c: &Cluster) -> Vec<(String, String)> {
    let pods = c.pods();
    let mut bad = vec![];
    for (_, a) in &pods {
        for (_, b) in &pods {
            if a.ip != b.ip && !a.ns.ping(&b.ip, 2) {
                bad.push((a.ip.clone(), b.ip.clone()));
            }
        }
    }
    bad
}

#[test]
fn mesh_of_three_nodes_all_pairs_ping() {
    lab::require_root!();
    let c = up(&opts(3, Topology::Mesh), 2);
    assert_eq!(failing_pairs(&c), vec![]);
    for n in &c.nodes {
        assert_eq!(
            n.ovs.vsctl(&["list-ports", "br0"]).unwrap().lines().count(),
            2,
            "node{} tunnels",
            n.index
        );
    }
}

#[test]
fn hub_topology_all_pairs_ping() {
    lab::require_root!();
    let c = up(&opts(3, Topology::Hub), 1);
    assert_eq!(failing_pairs(&c), vec![]);
    let hub = &c.nodes[0];
    assert_eq!(
        hub.ovs
            .vsctl(&["get", "Port", "vxif172_31_0_2", "protected"])
            .unwrap(),
        "false"
    );
    let spoke = &c.nodes[1];
    assert_eq!(
        spoke.ovs.vsctl(&["list-ports", "br0"]).unwrap(),
        "vxif172_31_0_1"
    );
    assert_eq!(
        spoke
            .ovs
            .vsctl(&["get", "Port", "vxif172_31_0_1", "protected"])
            .unwrap(),
        "true"
    );
}

/// rx packets of the fabric switch's bridge device.
fn fabric_packets(c: &Cluster) -> u64 {
    let out = lab::process::stdout(&mut c.fabric.cmd(["ip", "-s", "-j", "link", "show", "fab0"]))
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v[0]["stats64"]["rx"]["packets"].as_u64().unwrap()
}

#[test]
fn one_broadcast_in_a_mesh_does_not_storm() {
    lab::require_root!();
    let c = up(&opts(3, Topology::Mesh), 1);
    // Settle: let the first ARPs and pings finish.
    assert!(c.pods()[0].1.ns.ping(&c.pods()[1].1.ip, 1));
    std::thread::sleep(Duration::from_millis(500));
    let before = fabric_packets(&c);
    // An ARP for an address nobody has is flooded to every node.
    let pod = &c.nodes[0].pods[0];
    let _ = pod
        .ns
        .cmd(["ping", "-c", "1", "-W", "1", "10.244.9.99"])
        .output();
    std::thread::sleep(Duration::from_secs(3));
    let seen = fabric_packets(&c) - before;
    assert!(
        seen < 100,
        "{seen} packets crossed the fabric in ~4 s after one broadcast: a loop"
    );
    assert!(seen > 0, "the broadcast never left the node");
}

#[test]
fn pod_mtu_1400_carries_full_size_packets_with_df_across_nodes() {
    lab::require_root!();
    let c = up(&opts(2, Topology::Mesh), 1);
    let (a, b) = (&c.nodes[0].pods[0], &c.nodes[1].pods[0]);
    // 1372 bytes of payload + 8 ICMP + 20 IP = 1400, the pod MTU.
    let ok =
        a.ns.cmd([
            "ping", "-M", "do", "-s", "1372", "-c", "3", "-i", "0.2", "-W", "2", &b.ip,
        ])
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );
    // One byte more does not fit the pod's MTU at all.
    let too_big =
        a.ns.cmd([
            "ping", "-M", "do", "-s", "1373", "-c", "1", "-W", "1", &b.ip,
        ])
        .output()
        .unwrap();
    assert!(!too_big.status.success());
}

fn netns_names() -> BTreeSet<String> {
    let out =
        lab::process::stdout(std::process::Command::new("ip").args(["netns", "list"])).unwrap();
    out.lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

#[test]
fn teardown_leaves_no_namespace_process_or_file() {
    lab::require_root!();
    let c = up(&opts(2, Topology::Mesh), 1);
    let mut ours: Vec<String> = vec![c.fabric.name.clone()];
    let mut pids = vec![];
    let mut dirs = vec![c.dir.clone()];
    for n in &c.nodes {
        ours.push(n.ns.name.clone());
        ours.extend(n.pods.iter().map(|p| p.ns.name.clone()));
        pids.extend(n.ovs.pids());
        dirs.push(n.ovs.dir.clone());
    }
    assert_eq!(pids.len(), 4);
    drop(c);
    let left = netns_names();
    for ns in &ours {
        assert!(!left.contains(ns), "namespace {ns} left behind");
    }
    for pid in pids {
        assert!(!lab::process::alive(pid), "daemon {pid} still running");
    }
    for d in dirs {
        assert!(!d.exists(), "{} left behind", d.display());
    }
}

#[test]
fn a_kept_lab_is_removed_by_down() {
    lab::require_root!();
    let c = up(&opts(2, Topology::Mesh), 1);
    let names: Vec<String> = std::iter::once(c.fabric.name.clone())
        .chain(c.nodes.iter().map(|n| n.ns.name.clone()))
        .collect();
    let pids: Vec<u32> = c.nodes.iter().flat_map(|n| n.ovs.pids()).collect();
    let state = c.keep();
    assert!(
        netns_names().contains(&names[0]),
        "kept lab is gone already"
    );
    lab::cluster::down(&state).unwrap();
    let left = netns_names();
    assert!(names.iter().all(|n| !left.contains(n)), "{left:?}");
    assert!(pids.iter().all(|p| !lab::process::alive(*p)));
    assert!(!state.exists());
}

#[test]
fn two_labs_side_by_side_do_not_collide() {
    lab::require_root!();
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| up(&opts(2, Topology::Mesh), 1));
        let b = s.spawn(|| up(&opts(2, Topology::Mesh), 1));
        (a.join().unwrap(), b.join().unwrap())
    });
    assert_eq!(failing_pairs(&a), vec![]);
    assert_eq!(failing_pairs(&b), vec![]);
    let names = |c: &Cluster| -> BTreeSet<String> {
        std::iter::once(c.fabric.name.clone())
            .chain(c.nodes.iter().map(|n| n.ns.name.clone()))
            .collect()
    };
    assert!(names(&a).is_disjoint(&names(&b)));
    // Tearing one down leaves the other working.
    drop(a);
    assert!(eventually(Duration::from_secs(2), || failing_pairs(&b).is_empty()));
}

#[test]
fn pods_talk_through_a_real_controller_and_without_it() {
    lab::require_root!();
    // The original project ran the star with an SDN controller.
    let mut o = opts(3, Topology::Hub);
    o.controller = true;
    let c = up(&o, 1);
    for n in &c.nodes {
        assert_eq!(
            n.ovs.vsctl(&["get-controller", "br0"]).unwrap(),
            "tcp:172.31.0.254:6653"
        );
        assert_eq!(
            n.ovs
                .vsctl(&["get", "Bridge", "br0", "other_config:datapath-id"])
                .unwrap(),
            format!("\"{}\"", lab::faucet::datapath_id(n.index))
        );
    }
    let yaml = lab::faucet::config(&c).unwrap();
    let faucet =
        lab::faucet::Faucet::start(&c, &lab::faucet::default_venv(), &yaml).expect("start Faucet");
    assert!(
        eventually(Duration::from_secs(30), || c
            .nodes
            .iter()
            .all(lab::faucet::connected)),
        "OVS never reported the controller connected; faucet log:\n{}",
        faucet.log()
    );
    // Pods talk through the flows Faucet installs (the first probe may be
    // lost while it learns).
    assert!(
        eventually(Duration::from_secs(20), || failing_pairs(&c).is_empty()),
        "{:?}\n{}",
        failing_pairs(&c),
        faucet.log()
    );
    let flows = c.nodes[0]
        .ovs
        .appctl("ovs-vswitchd", &["bridge/dump-flows", "br0"])
        .unwrap();
    assert!(
        flows.lines().count() > 5,
        "Faucet installed no flows:\n{flows}"
    );

    // Controller gone: fail_mode=standalone falls back to normal switching.
    faucet.stop();
    assert!(eventually(Duration::from_secs(30), || !c
        .nodes
        .iter()
        .any(lab::faucet::connected)));
    // OVS fails open after three missed inactivity probes: its own NORMAL
    // flow at priority 0xf0f0f0 takes over from the controller's flows.
    assert!(eventually(Duration::from_secs(30), || c
        .nodes
        .iter()
        .all(lab::faucet::failed_open)));
    assert!(
        eventually(Duration::from_secs(10), || failing_pairs(&c).is_empty()),
        "{:?}",
        failing_pairs(&c)
    );
}
