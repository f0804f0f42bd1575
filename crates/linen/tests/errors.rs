//! Bad input gets a CNI error object with the right code on stdout, a
//! non-zero exit, and leaves nothing behind.

mod common;
use common::{cni_env, run_linen, Node};
use serde_json::json;

#[test]
fn codes_without_ovs() {
    let conf = json!({"cniVersion": "1.0.0", "name": "n", "type": "linen"}).to_string();
    let add = cni_env("ADD", "/var/run/netns/pod");
    // 1: a version the plugin does not speak.
    let o = run_linen(
        None,
        &add,
        r#"{"cniVersion":"0.2.0","name":"n","type":"linen"}"#,
    );
    assert_eq!(o.code(), 1);
    // 1: CHECK below 0.4.0.
    let o = run_linen(
        None,
        &cni_env("CHECK", "/x"),
        r#"{"cniVersion":"0.3.1","name":"n","type":"linen"}"#,
    );
    assert_eq!(o.code(), 1);
    // 4: missing or unknown CNI_* variables.
    let o = run_linen(
        None,
        &[("CNI_COMMAND", "ADD"), ("CNI_IFNAME", "eth0")],
        &conf,
    );
    assert_eq!(o.code(), 4);
    assert!(o.json()["msg"].as_str().unwrap().contains("CNI_NETNS"));
    assert_eq!(run_linen(None, &[], &conf).code(), 4);
    assert_eq!(run_linen(None, &[("CNI_COMMAND", "FROB")], &conf).code(), 4);
    // 6: stdin that is not JSON.
    let o = run_linen(None, &add, "cniVersion: 1.0.0");
    assert_eq!(o.code(), 6);
    assert_eq!(
        o.stdout.trim().lines().count(),
        1,
        "only the error object on stdout"
    );
    // 7: chained only.
    let o = run_linen(None, &add, &conf);
    assert_eq!(o.code(), 7);
    assert!(
        o.json()["msg"].as_str().unwrap().contains("chained"),
        "{}",
        o.stdout
    );
    // The error carries the caller's version.
    assert_eq!(o.json()["cniVersion"], "1.0.0");
    // 50: STATUS with OVSDB unreachable.
    let o = run_linen(
        None,
        &[("CNI_COMMAND", "STATUS")],
        r#"{"cniVersion":"1.1.0","name":"n","type":"linen","ovsdbSocket":"/nonexistent/db.sock"}"#,
    );
    assert_eq!(o.code(), 50);
    // DEL never blocks the chain's cleanup, even on an unreadable config.
    for stdin in ["garbage", r#"{"cniVersion":"9.9.9"}"#] {
        let o = run_linen(None, &cni_env("DEL", ""), stdin);
        assert_eq!((o.exit, o.stdout.as_str()), (0, ""), "{stdin}");
    }
    // GC succeeds silently.
    let o = run_linen(
        None,
        &[("CNI_COMMAND", "GC")],
        r#"{"cniVersion":"1.1.0","name":"n","type":"linen"}"#,
    );
    assert_eq!((o.exit, o.stdout.as_str()), (0, ""));
}

#[test]
fn invalid_config_is_code_7_and_creates_nothing() {
    lab::require_root!();
    let node = Node::start();
    node.make_kbr0();
    let bad = [
        json!({"ovsBridge": "br-much-too-long-0"}),
        json!({"ovsBridge": "br;0"}),
        json!({"vtepIPs": ["10.0.0.1", "not-an-ip"]}),
        json!({"vtepIPs": ["224.0.0.5"]}),
        json!({"controller": "10.0.0.1"}),
        json!({"controller": "udp:10.0.0.1:6653"}),
        json!({"dstPort": 0}),
        json!({"vni": -1}),
        json!({"datapathType": "dpdk"}),
        json!({"datapathId": "12"}),
    ];
    for extra in bad {
        let o = node.linen("ADD", &node.plugin_conf("1.0.0", extra.clone()));
        assert_eq!(o.code(), 7, "{extra}: {}", o.stdout);
    }
    // A prevResult that names no Linux bridge.
    let mut conf = node.plugin_conf("1.0.0", json!({"vtepIPs": ["172.31.0.2"]}));
    conf["prevResult"]["interfaces"] = json!([{"name": "eth0", "sandbox": "/var/run/netns/pod"}]);
    let o = node.linen("ADD", &conf);
    assert_eq!(o.code(), 7, "{}", o.stdout);
    // A prevResult that is not a result.
    conf["prevResult"] = json!({"ips": [{"address": "garbage"}]});
    assert_eq!(node.linen("ADD", &conf).code(), 7);

    assert!(
        node.bridges().is_empty(),
        "a rejected ADD created {:?}",
        node.bridges()
    );
    assert!(node.link("br0").is_none());
}

#[test]
fn ovsdb_unreachable_on_add_is_code_11_and_status_50() {
    lab::require_root!();
    let node = Node::start();
    node.make_kbr0();
    let conf = node.plugin_conf("1.1.0", json!({"ovsdbSocket": "/nonexistent/db.sock"}));
    let o = node.linen("ADD", &conf);
    assert_eq!(o.code(), 11, "{}", o.stdout);
    assert!(o.json()["msg"]
        .as_str()
        .unwrap()
        .contains("/nonexistent/db.sock"));
    assert_eq!(node.linen("STATUS", &conf).code(), 50);
    // With OVSDB up, STATUS succeeds and prints nothing.
    let o = node.linen("STATUS", &node.plugin_conf("1.1.0", json!({})));
    assert_eq!((o.exit, o.stdout.as_str()), (0, ""));
}

#[test]
fn a_held_bridge_lock_is_code_11_after_the_timeout() {
    lab::require_root!();
    let node = Node::start();
    node.make_kbr0();
    let held = linen::lock::acquire(
        std::path::Path::new(linen::lock::RUN_DIR),
        "br0",
        &node.ovs.endpoint(),
        std::time::Duration::from_secs(1),
    )
    .unwrap();
    let o = node.linen(
        "ADD",
        &node.plugin_conf("1.0.0", json!({"lockTimeoutMs": 300})),
    );
    assert_eq!(o.code(), 11, "{}", o.stdout);
    assert!(node.bridges().is_empty());
    drop(held);
    let o = node.linen(
        "ADD",
        &node.plugin_conf("1.0.0", json!({"lockTimeoutMs": 300})),
    );
    assert_eq!(o.exit, 0, "{}", o.stdout);
}

#[test]
fn add_at_1_1_0_converts_the_previous_result() {
    lab::require_root!();
    let node = Node::start();
    node.make_kbr0();
    // The bridge plugin spoke 1.0.0; the list is 1.1.0.
    let mut conf = node.plugin_conf("1.1.0", json!({}));
    conf["prevResult"] = Node::prev_result("1.0.0");
    let o = node.linen("ADD", &conf);
    assert_eq!(o.exit, 0, "{}", o.stdout);
    let r = o.json();
    assert_eq!(r["cniVersion"], "1.1.0");
    assert_eq!(r["ips"], Node::prev_result("1.0.0")["ips"]);
    // And down to 0.3.1, where IPs carry their family.
    let mut conf = node.plugin_conf("0.3.1", json!({}));
    conf["prevResult"] = Node::prev_result("1.0.0");
    let r = node.linen("ADD", &conf).json();
    assert_eq!(r["cniVersion"], "0.3.1");
    assert_eq!(r["ips"][0]["version"], "4");
}
