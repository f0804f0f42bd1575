//! The etcd backend against a real etcd and real OVS: joins, leaves, dead
//! nodes, an etcd restart, and subnet allocation.

mod common;
use common::Node;
use std::time::Duration;

fn etcd_backend(etcd: &lab::etcd::Etcd, ttl: u32) -> String {
    format!(
        "backend = \"etcd\"\n[etcd]\nendpoints = [\"{}\"]\nlease_ttl = {ttl}\ncluster_cidr = \"10.244.0.0/16\"\n",
        etcd.endpoint()
    )
}

fn node(name: &str, ip: &str, etcd: &lab::etcd::Etcd, ttl: u32) -> Node {
    let mut n = Node::new(name, ip);
    n.configure(&etcd_backend(etcd, ttl));
    n.start();
    n
}

fn registration(etcd: &lab::etcd::Etcd, name: &str) -> Option<serde_json::Value> {
    let out = etcd
        .ctl(&["get", &format!("/linen/nodes/{name}"), "--print-value-only"])
        .unwrap();
    serde_json::from_slice(&out.stdout).ok()
}

#[test]
fn join_and_leave_add_and_remove_tunnels_everywhere() {
    lab::require_root!();
    let etcd = lab::etcd::Etcd::start().unwrap();
    let a = node("a", "172.31.0.1", &etcd, 5);
    a.wait_ports(&[], Duration::from_secs(10));
    let b = node("b", "172.31.0.2", &etcd, 5);
    let t = a.wait_ports(&["vxif172_31_0_2"], Duration::from_secs(10));
    b.wait_ports(&["vxif172_31_0_1"], Duration::from_secs(10));
    eprintln!("join seen by a after {t:?}");
    assert_eq!(
        a.ovs
            .vsctl(&["get", "Port", "vxif172_31_0_2", "protected"])
            .unwrap(),
        "true"
    );
    assert_eq!(
        a.ovs
            .vsctl(&["get", "Port", "vxif172_31_0_2", "external_ids:linen-owner"])
            .unwrap(),
        "linen"
    );

    let c = node("c", "172.31.0.3", &etcd, 5);
    a.wait_ports(
        &["vxif172_31_0_2", "vxif172_31_0_3"],
        Duration::from_secs(10),
    );
    c.wait_ports(
        &["vxif172_31_0_1", "vxif172_31_0_2"],
        Duration::from_secs(10),
    );

    // A node removed from the store (decommissioned): tunnels to it go.
    assert!(etcd
        .ctl(&["del", "/linen/nodes/c"])
        .unwrap()
        .status
        .success());
    a.wait_ports(&["vxif172_31_0_2"], Duration::from_secs(5));
    b.wait_ports(&["vxif172_31_0_1"], Duration::from_secs(5));

    // Readiness and metrics reflect it.
    assert_eq!(a.http("/readyz").0, 200);
    let metrics = a.http("/metrics").1;
    assert!(metrics.contains("flax_tunnels 1"), "{metrics}");
    assert!(metrics.contains("flax_reconciles_total"), "{metrics}");
    drop(c);
}

#[test]
fn a_killed_node_vanishes_after_its_lease_ttl_and_sigterm_keeps_tunnels() {
    lab::require_root!();
    let etcd = lab::etcd::Etcd::start().unwrap();
    let a = node("a", "172.31.0.1", &etcd, 2);
    let mut b = node("b", "172.31.0.2", &etcd, 2);
    a.wait_ports(&["vxif172_31_0_2"], Duration::from_secs(10));
    b.wait_ports(&["vxif172_31_0_1"], Duration::from_secs(10));
    // A clean stop leaves b's own tunnels in place.
    let status = b.signal(libc::SIGTERM).unwrap();
    assert!(
        status.success(),
        "flax exit on SIGTERM: {status:?}\n{}",
        b.log()
    );
    assert_eq!(b.ports().len(), 1, "SIGTERM must not remove tunnels");
    // b is gone (no keep-alives): after its 2 s lease, a drops the tunnel.
    let t = a.wait_ports(&[], Duration::from_secs(10));
    eprintln!("dead node removed after {t:?}");
    assert!(
        t >= Duration::from_millis(500),
        "removed before the lease could expire: {t:?}"
    );
    assert!(registration(&etcd, "b").is_none());
}

#[test]
fn etcd_restart_is_survived() {
    lab::require_root!();
    let mut etcd = lab::etcd::Etcd::start().unwrap();
    let a = node("a", "172.31.0.1", &etcd, 5);
    let b = node("b", "172.31.0.2", &etcd, 5);
    a.wait_ports(&["vxif172_31_0_2"], Duration::from_secs(10));
    etcd.stop();
    std::thread::sleep(Duration::from_secs(1));
    // Tunnels stay while the store is away.
    assert_eq!(a.ports().len(), 1);
    etcd.resume().unwrap();
    // Both re-register, re-watch, and a newcomer is seen.
    let c = node("c", "172.31.0.3", &etcd, 5);
    a.wait_ports(
        &["vxif172_31_0_2", "vxif172_31_0_3"],
        Duration::from_secs(20),
    );
    b.wait_ports(
        &["vxif172_31_0_1", "vxif172_31_0_3"],
        Duration::from_secs(20),
    );
    c.wait_ports(
        &["vxif172_31_0_1", "vxif172_31_0_2"],
        Duration::from_secs(20),
    );
    assert!(registration(&etcd, "a").is_some());
    assert!(a.log().contains("etcd session ended"), "{}", a.log());
}

#[test]
fn nodes_never_share_a_subnet_and_keep_theirs() {
    lab::require_root!();
    let etcd = lab::etcd::Etcd::start().unwrap();
    let cfg: flax::membership::etcd::EtcdConfig = toml::from_str(&format!(
        "endpoints = [\"{}\"]\ncluster_cidr = \"10.244.0.0/22\"\n",
        etcd.endpoint()
    ))
    .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    // Eight nodes race for four /24s: four win distinct ones, four are told
    // the range is full.
    let results: Vec<_> = rt.block_on(async {
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let cfg = cfg.clone();
                tokio::spawn(async move {
                    let mut c = flax::membership::etcd::connect(&cfg).await.unwrap();
                    flax::membership::etcd::allocate_subnet(&mut c, &cfg, &format!("n{i}"))
                        .await
                        .ok()
                })
            })
            .collect();
        let mut out = vec![];
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out
    });
    let got: Vec<_> = results.iter().flatten().collect();
    assert_eq!(got.len(), 4, "{results:?}");
    let distinct: std::collections::BTreeSet<_> = got.iter().collect();
    assert_eq!(
        distinct.len(),
        4,
        "two nodes got the same subnet: {results:?}"
    );
    // Asking again returns the node's own reservation.
    let again = rt.block_on(async {
        let mut c = flax::membership::etcd::connect(&cfg).await.unwrap();
        let winner = results.iter().position(Option::is_some).unwrap();
        (
            flax::membership::etcd::allocate_subnet(&mut c, &cfg, &format!("n{winner}"))
                .await
                .unwrap(),
            results[winner].unwrap(),
        )
    });
    assert_eq!(again.0, again.1);
}

#[test]
fn flax_renders_the_conflist_for_its_allocated_subnet() {
    lab::require_root!();
    let etcd = lab::etcd::Etcd::start().unwrap();
    let mut a = Node::new("a", "172.31.0.1");
    let dir = a.ovs.dir.join("net.d");
    a.configure(&format!(
        "{}[cni]\nconf_dir = \"{}\"\ncluster_cidr = \"10.244.0.0/16\"\nunderlay_mtu = 1500\n",
        etcd_backend(&etcd, 5),
        dir.display()
    ));
    a.start();
    let file = dir.join("10-linen.conflist");
    let start = std::time::Instant::now();
    while !file.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no conflist; log:\n{}",
            a.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let reg = registration(&etcd, "a").unwrap();
    let cidr: ipnet::Ipv4Net = reg["podCIDR"].as_str().unwrap().parse().unwrap();
    let range = &v["plugins"][0]["ipam"]["ranges"][0][0];
    assert_eq!(
        range["gateway"].as_str().unwrap(),
        cidr.hosts().next().unwrap().to_string()
    );
    assert_eq!(v["plugins"][0]["mtu"], 1450);
    assert_eq!(v["plugins"][1]["type"], "linen");
    assert_eq!(
        v["plugins"][1]["ovsdbSocket"].as_str().unwrap(),
        a.ovs.db_sock().display().to_string()
    );
}
