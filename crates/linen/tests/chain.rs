//! The plugin in the real chain, the way a runtime runs it.

mod common;
use common::{Node, Pod};
use serde_json::{json, Value};

#[test]
fn add_check_del_at_every_bridge_plugin_version() {
    lab::require_root!();
    for version in ["0.3.0", "0.3.1", "0.4.0", "1.0.0"] {
        let node = Node::start();
        let chain =
            node.chain(node.conflist(version, json!({"vtepIPs": ["172.31.0.2", "172.31.0.3"]})));
        let pod = Pod::add(&chain);

        // The printed result is the bridge plugin's, in the list's version.
        assert_eq!(pod.result["cniVersion"], version);
        let ips = pod.result["ips"].as_array().unwrap();
        assert_eq!(ips.len(), 1);
        assert_eq!(
            ips[0].get("version").is_some(),
            version < "1.0.0",
            "{version}: {ips:?}"
        );
        let names: Vec<&str> = pod.result["interfaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["name"].as_str().unwrap())
            .collect();
        assert_eq!(names[0], "kbr0", "{names:?}");

        // OVSDB: the bridge as configured, one internal port, one VTEP each.
        assert_eq!(node.bridges(), vec!["br0"]);
        assert_eq!(node.get("Bridge", "br0", "datapath_type"), "netdev");
        assert_eq!(node.get("Bridge", "br0", "fail_mode"), "standalone");
        assert_eq!(
            node.get("Bridge", "br0", "external_ids:linen-owner"),
            "linen"
        );
        let mut ports = node.ports("br0");
        ports.sort();
        assert_eq!(ports, vec!["vxif172_31_0_2", "vxif172_31_0_3"]);
        for (port, ip) in [
            ("vxif172_31_0_2", "172.31.0.2"),
            ("vxif172_31_0_3", "172.31.0.3"),
        ] {
            assert_eq!(node.get("Interface", port, "type"), "vxlan");
            assert_eq!(
                node.get("Interface", port, "options"),
                format!("{{dst_port=\"4789\", key=flow, remote_ip=\"{ip}\"}}")
            );
            assert_eq!(node.get("Port", port, "protected"), "true");
            assert_eq!(
                node.get("Port", port, "external_ids:linen-peer"),
                format!("\"{ip}\"")
            );
        }
        assert_eq!(node.get("Interface", "br0", "type"), "internal");
        assert_eq!(node.get("Interface", "br0", "mtu_request"), "1400");

        // Kernel: br0 is up and enslaved to kbr0, and the pod reaches its gateway.
        assert_eq!(node.master_of("br0").as_deref(), Some("kbr0"));
        let flags = node.link("br0").unwrap()["flags"].clone();
        assert!(flags.as_array().unwrap().contains(&json!("UP")), "{flags}");
        assert!(
            pod.ns.ping("10.244.1.1", 2),
            "{version}: pod cannot ping its gateway"
        );

        if version >= "0.4.0" {
            chain
                .check(&pod.id, &pod.ns.path(), "eth0", &pod.result)
                .unwrap_or_else(|e| panic!("{version} CHECK: {e}"));
        }
        // DEL in reverse order with the cached result, then again the way
        // some runtimes do: no netns, no prevResult.
        pod.del_like_a_runtime(&chain);
        // Shared infrastructure stays.
        assert_eq!(node.bridges(), vec!["br0"]);
        assert_eq!(node.ports("br0").len(), 2);
    }
}

#[test]
fn a_second_pod_takes_the_warm_path_and_writes_nothing() {
    lab::require_root!();
    let node = Node::start();
    let chain = node.chain(node.conflist("1.0.0", json!({"vtepIPs": ["172.31.0.2"]})));
    let first = Pod::add(&chain);
    let next_cfg = node.get("Open_vSwitch", ".", "next_cfg");
    let link_before = node.link("br0").unwrap();
    let second = Pod::add(&chain);
    assert_eq!(
        node.get("Open_vSwitch", ".", "next_cfg"),
        next_cfg,
        "warm ADD wrote to OVSDB"
    );
    let link_after = node.link("br0").unwrap();
    assert_eq!(link_before["ifindex"], link_after["ifindex"]);
    assert_eq!(link_before["flags"], link_after["flags"]);
    assert!(
        second.ns.ping(&first.ip(), 2),
        "pods on one node cannot reach each other"
    );
    let log = node.log_text();
    assert!(log.contains("0 change(s)"), "{log}");
}

#[test]
fn the_original_projects_conflist_works_unchanged() {
    lab::require_root!();
    let node = Node::start();
    // runtimeConfig.ovs as the legacy conflists wrote it; only the socket and
    // datapath keys are added for this machine (no kernel datapath here).
    let linen = json!({
        "type": "linen",
        "runtimeConfig": {"ovs": {
            "isMaster": true,
            "ovsBridge": "br0",
            "vtepIPs": ["10.245.2.2", "10.245.2.3"],
            "controller": "127.0.0.1:6653",
            "ovsdbSocket": node.ovs.db_sock(),
            "datapathType": "netdev"
        }}
    });
    let chain = node.chain(node.conflist_with("0.3.1", linen));
    let pod = Pod::add(&chain);
    assert_eq!(pod.result["cniVersion"], "0.3.1");
    let mut ports = node.ports("br0");
    ports.sort();
    assert_eq!(ports, vec!["vxif10_245_2_2", "vxif10_245_2_3"]);
    assert_eq!(
        node.get("Port", "vxif10_245_2_2", "protected"),
        "false",
        "a master forwards between spokes"
    );
    let ctl = node.vsctl(&["get-controller", "br0"]);
    assert_eq!(ctl, "tcp:127.0.0.1:6653");
    // Nothing listens there: standalone fail mode keeps the pod switching.
    assert!(pod.ns.ping("10.244.1.1", 2));
}

#[test]
fn version_works_with_a_runtimes_dummy_environment() {
    let out = std::process::Command::new(common::linen_bin())
        .env_clear()
        .env("CNI_COMMAND", "VERSION")
        .env("CNI_CONTAINERID", "dummy")
        .env("CNI_NETNS", "dummy")
        .env("CNI_IFNAME", "dummy")
        .env("CNI_PATH", "dummy")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin
                .take()
                .unwrap()
                .write_all(br#"{"cniVersion":"1.0.0"}"#)?;
            c.wait_with_output()
        })
        .unwrap();
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["cniVersion"], "1.0.0");
    assert_eq!(
        v["supportedVersions"],
        json!(["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"])
    );
}
