//! Concurrency, OVS going away, OVS refusing a port, and CHECK finding drift.

mod common;
use common::{Node, Pod};
use serde_json::json;

#[test]
fn fifty_concurrent_adds_on_a_fresh_node_make_one_of_everything() {
    lab::require_root!();
    let node = Node::start();
    let vteps = json!(["172.31.0.2", "172.31.0.3", "172.31.0.4"]);
    let chain = node.chain(node.conflist("1.0.0", json!({"vtepIPs": vteps})));
    let pods: Vec<Pod> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..50).map(|_| s.spawn(|| Pod::add(&chain))).collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("an ADD failed"))
            .collect()
    });
    assert_eq!(node.bridges(), vec!["br0"]);
    let mut ports = node.ports("br0");
    ports.sort();
    assert_eq!(
        ports,
        vec!["vxif172_31_0_2", "vxif172_31_0_3", "vxif172_31_0_4"]
    );
    let rows = node.vsctl(&["--bare", "--columns=name", "list", "Port"]);
    let mut names: Vec<&str> = rows.split_whitespace().collect();
    names.sort();
    assert_eq!(
        names,
        vec!["br0", "vxif172_31_0_2", "vxif172_31_0_3", "vxif172_31_0_4"],
        "one row per port"
    );
    assert_eq!(node.master_of("br0").as_deref(), Some("kbr0"));
    // Every pod got an address; a sample reaches the gateway and each other.
    assert!(pods[0].ns.ping("10.244.1.1", 1));
    assert!(pods[49].ns.ping(&pods[0].ip(), 1));
    let log = node.log_text();
    assert_eq!(log.matches("exit=0").count(), 50, "{log}");
}

#[test]
fn del_works_with_ovs_stopped_and_add_says_try_again() {
    lab::require_root!();
    let mut node = Node::start();
    let chain = node.chain(node.conflist("1.0.0", json!({"vtepIPs": ["172.31.0.2"]})));
    let pod = Pod::add(&chain);
    node.ovs.stop_vswitchd();
    node.ovs.stop_ovsdb();
    pod.del_like_a_runtime(&chain);
    let second = lab::Netns::create("lnp").unwrap();
    let e = chain.add("ctr-x", &second.path(), "eth0").unwrap_err();
    assert_eq!(e.plugin, "linen");
    assert_eq!(e.code(), Some(11), "{e}");
}

#[test]
fn ovs_vswitchd_down_on_a_cold_add_is_try_again_not_a_hang() {
    lab::require_root!();
    let mut node = Node::start();
    node.ovs.stop_vswitchd();
    node.make_kbr0();
    let o = node.linen("ADD", &node.plugin_conf("1.0.0", json!({})));
    assert_eq!(o.code(), 11, "{}", o.stdout);
    assert!(
        o.json()["msg"].as_str().unwrap().contains("ovs-vswitchd"),
        "{}",
        o.stdout
    );
}

#[test]
fn a_duplicate_tunnel_refused_by_ovs_is_an_error_and_is_rolled_back() {
    lab::require_root!();
    let node = Node::start();
    let chain = node.chain(node.conflist("1.0.0", json!({})));
    let _pod = Pod::add(&chain);
    // Someone else already tunnels to 172.31.0.9 with the same key and port.
    node.vsctl(&[
        "add-port",
        "br0",
        "mytun",
        "--",
        "set",
        "Interface",
        "mytun",
        "type=vxlan",
        "options:remote_ip=172.31.0.9",
        "options:key=flow",
        "options:dst_port=4789",
    ]);
    let chain = node.chain(node.conflist("1.0.0", json!({"vtepIPs": ["172.31.0.9"]})));
    let ns = lab::Netns::create("lnp").unwrap();
    let e = chain.add("ctr-dup", &ns.path(), "eth0").unwrap_err();
    assert_eq!(e.code(), Some(100), "{e}");
    let msg = e.msg();
    assert!(
        msg.contains("vxif172_31_0_9") && msg.contains("File exists"),
        "{msg}"
    );
    // The refused port is gone again, the foreign one untouched.
    let mut ports = node.ports("br0");
    ports.sort();
    assert_eq!(ports, vec!["mytun"]);
}

#[test]
fn check_reports_each_kind_of_drift_and_add_repairs_it() {
    lab::require_root!();
    let node = Node::start();
    let chain =
        node.chain(node.conflist("1.0.0", json!({"vtepIPs": ["172.31.0.2", "172.31.0.3"]})));
    let pod = Pod::add(&chain);
    let check = || chain.check(&pod.id, &pod.ns.path(), "eth0", &pod.result);
    check().expect("clean node passes CHECK");

    let expect_drift = |what: &str| {
        let e = check().expect_err(what);
        assert_eq!(e.plugin, "linen", "{e}");
        assert_eq!(e.code(), Some(101), "{e}");
        let msg = e.msg();
        assert!(
            msg.contains(what),
            "CHECK said {msg:?}, expected it to mention {what:?}"
        );
    };
    let repair = || {
        let ns = lab::Netns::create("lnp").unwrap();
        chain
            .add(&lab::unique("fix"), &ns.path(), "eth0")
            .expect("ADD repairs");
        check().expect("repaired node passes CHECK");
    };

    node.vsctl(&["del-port", "br0", "vxif172_31_0_3"]);
    expect_drift("VTEP port vxif172_31_0_3 to 172.31.0.3 is missing");
    repair();

    node.vsctl(&[
        "set",
        "Interface",
        "vxif172_31_0_2",
        "options:remote_ip=172.31.0.99",
    ]);
    expect_drift("VTEP port vxif172_31_0_2 has options");
    repair();

    node.vsctl(&["set", "Port", "vxif172_31_0_2", "protected=false"]);
    expect_drift("protected=false, want true");
    repair();

    lab::process::run(&mut node.ns.cmd(["ip", "link", "set", "br0", "nomaster"])).unwrap();
    expect_drift("internal port br0 is not enslaved to kbr0 (master: no bridge)");
    repair();

    node.vsctl(&["del-br", "br0"]);
    expect_drift("bridge is missing");
    repair();
    assert!(pod.ns.ping("10.244.1.1", 1));
}
