//! flax repairs what happens to OVS behind its back, within a second, and
//! leaves alone what it does not own. Static backend: no store needed.

mod common;
use common::Node;
use std::time::Duration;

const PEERS: &str = "[[peer]]\nname = \"a\"\nip = \"172.31.0.1\"\n[[peer]]\nname = \"b\"\nip = \"172.31.0.2\"\n[[peer]]\nname = \"c\"\nip = \"172.31.0.3\"\n";
const WANT: [&str; 2] = ["vxif172_31_0_2", "vxif172_31_0_3"];

fn static_node() -> Node {
    let mut a = Node::new("a", "172.31.0.1");
    let peers = a.ovs.dir.join("peers.toml");
    std::fs::write(&peers, PEERS).unwrap();
    a.configure(&format!(
        "backend = \"static\"\n[static]\npeers_file = \"{}\"\npoll_ms = 50\n",
        peers.display()
    ));
    a.start();
    a.wait_ports(&WANT, Duration::from_secs(10));
    a
}

#[test]
fn a_port_deleted_by_hand_is_back_within_a_second() {
    lab::require_root!();
    let a = static_node();
    a.ovs.vsctl(&["del-port", "br0", "vxif172_31_0_3"]).unwrap();
    let t = a.wait_ports(&WANT, Duration::from_secs(1));
    eprintln!("repaired in {t:?}");
}

#[test]
fn ovs_vswitchd_restart_is_repaired() {
    lab::require_root!();
    let mut a = static_node();
    a.ovs.stop_vswitchd();
    // While vswitchd is down someone removes a tunnel from the database.
    a.ovs
        .vsctl(&["--no-wait", "del-port", "br0", "vxif172_31_0_2"])
        .unwrap();
    a.ovs.start_vswitchd().unwrap();
    a.wait_ports(&WANT, Duration::from_secs(1));
    // And the tunnels are live again in ovs-vswitchd (ofport assigned).
    let start = std::time::Instant::now();
    loop {
        let ofport = a
            .ovs
            .vsctl(&["get", "Interface", "vxif172_31_0_2", "ofport"])
            .unwrap();
        if ofport.parse::<i64>().is_ok_and(|p| p > 0) {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(1), "ofport {ofport}");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(a.http("/readyz").0, 200);
}

#[test]
fn ovsdb_server_restart_is_survived_and_repairs_resume() {
    lab::require_root!();
    let mut a = static_node();
    a.ovs.stop_ovsdb();
    std::thread::sleep(Duration::from_millis(300));
    a.ovs.start_ovsdb().unwrap();
    // The monitor reconnected: a deletion right after is repaired.
    std::thread::sleep(Duration::from_millis(500));
    a.ovs.vsctl(&["del-port", "br0", "vxif172_31_0_2"]).unwrap();
    a.wait_ports(&WANT, Duration::from_secs(1));
}

#[test]
fn ports_flax_does_not_own_are_left_alone() {
    lab::require_root!();
    let a = static_node();
    a.ovs
        .vsctl(&[
            "add-port",
            "br0",
            "mytun",
            "--",
            "set",
            "Interface",
            "mytun",
            "type=vxlan",
            "options:remote_ip=172.31.0.99",
        ])
        .unwrap();
    a.ovs
        .vsctl(&[
            "add-port",
            "br0",
            "vxif172_31_0_77",
            "--",
            "set",
            "Interface",
            "vxif172_31_0_77",
            "type=vxlan",
            "options:remote_ip=172.31.0.77",
        ])
        .unwrap();
    // Poke a reconcile by deleting one of ours, then check the foreign ones.
    a.ovs.vsctl(&["del-port", "br0", "vxif172_31_0_3"]).unwrap();
    a.wait_ports(
        &[
            "mytun",
            "vxif172_31_0_2",
            "vxif172_31_0_3",
            "vxif172_31_0_77",
        ],
        Duration::from_secs(2),
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(a.ports().contains("mytun") && a.ports().contains("vxif172_31_0_77"));
}

#[test]
fn the_peers_file_is_reloaded_when_it_changes() {
    lab::require_root!();
    let a = static_node();
    let peers = a.ovs.dir.join("peers.toml");
    std::fs::write(&peers, "[[peer]]\nname = \"a\"\nip = \"172.31.0.1\"\n[[peer]]\nname = \"d\"\nip = \"172.31.0.4\"\n").unwrap();
    a.wait_ports(&["vxif172_31_0_4"], Duration::from_secs(2));
}

#[test]
fn hub_topology_tunnels_spokes_to_the_hub_only() {
    lab::require_root!();
    let mut hub = Node::new("a", "172.31.0.1");
    let mut spoke = Node::new("b", "172.31.0.2");
    for n in [&mut hub, &mut spoke] {
        let peers = n.ovs.dir.join("peers.toml");
        std::fs::write(&peers, PEERS).unwrap();
        n.configure(&format!(
            "backend = \"static\"\ntopology = \"hub\"\nhub = \"a\"\n[static]\npeers_file = \"{}\"\n",
            peers.display()
        ));
        n.start();
    }
    hub.wait_ports(&WANT, Duration::from_secs(10));
    spoke.wait_ports(&["vxif172_31_0_1"], Duration::from_secs(10));
    assert_eq!(
        hub.ovs
            .vsctl(&["get", "Port", "vxif172_31_0_2", "protected"])
            .unwrap(),
        "false"
    );
    assert_eq!(
        spoke
            .ovs
            .vsctl(&["get", "Port", "vxif172_31_0_1", "protected"])
            .unwrap(),
        "true"
    );
}

#[test]
fn unreachable_ovsdb_is_not_ready_and_recovers() {
    lab::require_root!();
    let mut a = static_node();
    assert_eq!(
        a.wait_http("/readyz", 200, Duration::from_secs(5)),
        "ready\n"
    );
    a.ovs.stop_ovsdb();
    // A resync or membership change finds OVSDB gone: flax stays up, not ready.
    let peers = a.ovs.dir.join("peers.toml");
    std::fs::write(
        &peers,
        format!("{PEERS}[[peer]]\nname = \"e\"\nip = \"172.31.0.5\"\n"),
    )
    .unwrap();
    a.wait_http("/readyz", 503, Duration::from_secs(5));
    assert_eq!(a.http("/healthz").0, 200);
    a.ovs.start_ovsdb().unwrap();
    a.wait_ports(
        &["vxif172_31_0_2", "vxif172_31_0_3", "vxif172_31_0_5"],
        Duration::from_secs(10),
    );
    a.wait_http("/readyz", 200, Duration::from_secs(10));
}

/// `ip -j link show br0` in the node: its master, if any.
fn master_of_br0(a: &Node) -> Option<String> {
    let out =
        a.ns.cmd(["ip", "-j", "link", "show", "br0"])
            .output()
            .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    v[0]["master"].as_str().map(str::to_string)
}

#[test]
fn a_recreated_internal_port_is_plugged_back_into_the_linux_bridge() {
    lab::require_root!();
    let mut a = Node::new("a", "172.31.0.1");
    lab::process::run(&mut a.ns.cmd(["ip", "link", "add", "kbr0", "type", "bridge"])).unwrap();
    lab::process::run(&mut a.ns.cmd(["ip", "link", "set", "kbr0", "up"])).unwrap();
    let peers = a.ovs.dir.join("peers.toml");
    std::fs::write(&peers, PEERS).unwrap();
    a.configure(&format!(
        "backend = \"static\"\n[static]\npeers_file = \"{}\"\n",
        peers.display()
    ));
    std::fs::write(
        &a.config,
        std::fs::read_to_string(&a.config)
            .unwrap()
            .replace("linux_bridge = \"\"", "linux_bridge = \"kbr0\""),
    )
    .unwrap();
    a.start_inside();
    a.wait_ports(&WANT, Duration::from_secs(10));
    assert!(
        lab::cluster::eventually(Duration::from_secs(5), || master_of_br0(&a).as_deref()
            == Some("kbr0")),
        "{}",
        a.log()
    );

    // ovs-vswitchd comes back with a brand-new internal device, outside kbr0.
    a.ovs.stop_vswitchd();
    lab::process::run(&mut a.ns.cmd(["ip", "link", "del", "br0"])).unwrap();
    a.ovs.start_vswitchd().unwrap();
    let start = std::time::Instant::now();
    assert!(
        lab::cluster::eventually(Duration::from_secs(1), || master_of_br0(&a).as_deref()
            == Some("kbr0")),
        "br0 not back in kbr0: master {:?}\n{}",
        master_of_br0(&a),
        a.log()
    );
    eprintln!("re-plugged after {:?}", start.elapsed());
    assert!(a.log().contains("replugged=true"), "{}", a.log());
}

#[test]
fn a_foreign_port_with_a_tunnels_name_blocks_only_that_tunnel() {
    lab::require_root!();
    let mut a = Node::new("a", "172.31.0.1");
    // Someone's own port already uses the name flax would give peer c.
    a.ovs
        .vsctl(&[
            "--may-exist",
            "add-br",
            "br0",
            "--",
            "set",
            "Bridge",
            "br0",
            "datapath_type=netdev",
        ])
        .unwrap();
    a.ovs
        .vsctl(&[
            "add-port",
            "br0",
            "vxif172_31_0_3",
            "--",
            "set",
            "Interface",
            "vxif172_31_0_3",
            "type=vxlan",
            "options:remote_ip=172.31.0.99",
        ])
        .unwrap();
    let peers = a.ovs.dir.join("peers.toml");
    std::fs::write(&peers, PEERS).unwrap();
    a.configure(&format!(
        "backend = \"static\"\n[static]\npeers_file = \"{}\"\n",
        peers.display()
    ));
    a.start();
    a.wait_ports(
        &["vxif172_31_0_2", "vxif172_31_0_3"],
        Duration::from_secs(10),
    );
    std::thread::sleep(Duration::from_millis(300));
    // Still the operator's port, untouched.
    assert_eq!(
        a.ovs
            .vsctl(&["get", "Interface", "vxif172_31_0_3", "options:remote_ip"])
            .unwrap(),
        "\"172.31.0.99\""
    );
    assert!(a.log().contains("skipping the tunnel"), "{}", a.log());
}
