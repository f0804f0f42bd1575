//! Several Linen nodes on one machine: a `fabric` namespace holding the
//! underlay switch, and per node a namespace with its own Open vSwitch, its
//! underlay address on `br-phy` (the userspace datapath routes tunnels only
//! from an OVS bridge), and the real CNI chain.

use crate::chain::{Chain, DEBIAN_CNI_DIR};
use crate::process::run;
use crate::{Error, Netns, Ovs, Result};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How the nodes tunnel to each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topology {
    /// Every node tunnels to every other; tunnel ports are protected.
    Mesh,
    /// The original star: node 1 is the master (`isMaster`), the others
    /// tunnel only to it.
    Hub,
}

#[derive(Debug, Clone)]
pub struct Options {
    pub nodes: usize,
    pub topology: Topology,
    /// Pod-side MTU (veth, kbr0, br0); underlay stays at 1500.
    pub pod_mtu: u32,
    /// Directory holding the `linen` binary.
    pub linen_dir: PathBuf,
    /// Extra keys merged into every node's linen plugin object.
    pub linen_extra: Value,
    /// Point every node's br0 at the lab's OpenFlow controller (see
    /// [`crate::faucet`]), with datapath-id = node number.
    pub controller: bool,
    /// Run flax on every node, with etcd on the fabric, instead of writing
    /// `vtepIPs` into each node's conflist: flax renders the conflists and
    /// keeps the tunnels in step as nodes come and go.
    pub flax: bool,
}

impl Options {
    pub fn new(linen_dir: PathBuf) -> Options {
        Options {
            nodes: 3,
            topology: Topology::Mesh,
            pod_mtu: 1400,
            linen_dir,
            linen_extra: json!({}),
            controller: false,
            flax: false,
        }
    }
}

pub struct Pod {
    pub ns: Netns,
    pub id: String,
    pub ip: String,
    pub result: Value,
}

pub struct Node {
    pub index: usize,
    pub underlay_ip: String,
    pub pods: Vec<Pod>,
    pub chain: Chain,
    // Drop order: pods, then daemons, then the namespace.
    pub flax: Option<Flax>,
    pub ovs: Ovs,
    pub ns: Netns,
}

/// A flax daemon of a lab node, stopped by pid when dropped.
pub struct Flax {
    pub child: std::process::Child,
    pub log: PathBuf,
}

impl Drop for Flax {
    fn drop(&mut self) {
        crate::process::stop_pid(self.child.id());
        let _ = self.child.wait();
    }
}

/// Where etcd listens in a flax lab: on the fabric, reached over the
/// underlay like a real cluster's store.
pub const ETCD_IP: &str = "172.31.0.254";
pub const ETCD_PORT: u16 = 2379;
/// Short, so a node that leaves is seen to go within seconds.
pub const LEASE_TTL: u32 = 3;

impl Node {
    /// The pod gateway, from the node's conflist (flax chooses it there).
    pub fn gateway(&self) -> String {
        let ipam = &self.chain.conflist["plugins"][0]["ipam"];
        ipam["gateway"]
            .as_str()
            .or_else(|| ipam["ranges"][0][0]["gateway"].as_str())
            .unwrap_or_default()
            .to_string()
    }

    /// The names of br0's ports.
    pub fn tunnels(&self) -> Vec<String> {
        self.ovs
            .vsctl(&["list-ports", "br0"])
            .map(|s| s.lines().map(str::to_string).collect())
            .unwrap_or_default()
    }

    /// Attaches a new pod through the node's CNI chain.
    pub fn add_pod(&mut self) -> Result<&Pod> {
        let ns = Netns::create("lpod")?;
        let id = crate::unique("pod");
        let result = self
            .chain
            .add(&id, &ns.path(), "eth0")
            .map_err(|e| Error::Other(format!("node {}: {e}", self.index)))?;
        let ip = result["ips"][0]["address"]
            .as_str()
            .and_then(|a| a.split('/').next())
            .ok_or_else(|| Error::Other(format!("no address in {result}")))?
            .to_string();
        self.pods.push(Pod { ns, id, ip, result });
        Ok(self.pods.last().expect("just pushed"))
    }
}

pub struct Cluster {
    pub nodes: Vec<Node>,
    pub etcd: Option<crate::etcd::Etcd>,
    pub fabric: Netns,
    pub dir: PathBuf,
}

/// The underlay address of node `i` (1-based). Every lab has its own
/// fabric namespace, so two labs may use the same range without meeting.
pub fn underlay_ip(i: usize) -> String {
    format!("172.31.0.{i}")
}

impl Cluster {
    pub fn up(opts: &Options) -> Result<Cluster> {
        let fabric = Netns::create("lfab")?;
        let dir = std::env::temp_dir().join(format!("linen-lab-{}", fabric.name));
        std::fs::create_dir_all(&dir).map_err(|source| Error::Io {
            what: dir.display().to_string(),
            source,
        })?;
        run(&mut fabric.cmd(["ip", "link", "add", "fab0", "type", "bridge"]))?;
        run(&mut fabric.cmd(["ip", "link", "set", "fab0", "up"]))?;
        // The fabric's own address, for services the nodes reach over the
        // underlay (etcd, an OpenFlow controller).
        run(&mut fabric.cmd(["ip", "addr", "add", &format!("{ETCD_IP}/24"), "dev", "fab0"]))?;
        let mut cluster = Cluster {
            nodes: Vec::new(),
            etcd: None,
            fabric,
            dir,
        };
        if opts.flax {
            cluster.etcd = Some(crate::etcd::Etcd::start_at(
                ETCD_IP,
                &cluster.fabric.name,
                ETCD_PORT,
                ETCD_PORT + 1,
            )?);
        }
        for i in 1..=opts.nodes {
            let node = cluster.start_node(i, opts)?;
            cluster.nodes.push(node);
        }
        cluster.write_state();
        Ok(cluster)
    }

    fn start_node(&self, i: usize, opts: &Options) -> Result<Node> {
        let ns = Netns::create(&format!("ln{i}n"))?;
        let ovs = Ovs::start(&ns)?;
        // Underlay: a veth from the fabric switch to the node's eth0, the
        // node's address on br-phy.
        let port = format!("f{i}");
        run(&mut self.fabric.cmd([
            "ip", "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns", &ns.name,
        ]))?;
        run(&mut self
            .fabric
            .cmd(["ip", "link", "set", &port, "master", "fab0", "up"]))?;
        run(&mut ns.cmd(["ip", "link", "set", "eth0", "up"]))?;
        // The fabric's own TCP (e.g. a controller there) leaves through the
        // veth with its checksum left to offload; the userspace datapath
        // reads it raw from AF_PACKET and would hand the node a bad
        // checksum. Checksum in software on the fabric side.
        run(&mut self.fabric.cmd(["ethtool", "-K", &port, "tx", "off"]))?;
        ovs.vsctl(&[
            "add-br",
            "br-phy",
            "--",
            "set",
            "Bridge",
            "br-phy",
            "datapath_type=netdev",
            "fail_mode=standalone",
            "--",
            "add-port",
            "br-phy",
            "eth0",
        ])?;
        let ip = underlay_ip(i);
        run(&mut ns.cmd(["ip", "addr", "add", &format!("{ip}/24"), "dev", "br-phy"]))?;
        run(&mut ns.cmd(["ip", "link", "set", "br-phy", "up"]))?;

        let (conflist, flax) = if opts.flax {
            let (conflist, flax) = start_flax(i, &ns, &ovs, opts)?;
            (conflist, Some(flax))
        } else {
            (static_conflist(i, &ovs, opts)?, None)
        };
        let chain = Chain::new(
            conflist,
            &ns.name,
            vec![opts.linen_dir.clone(), PathBuf::from(DEBIAN_CNI_DIR)],
        );
        Ok(Node {
            index: i,
            underlay_ip: ip,
            pods: Vec::new(),
            chain,
            flax,
            ovs,
            ns,
        })
    }

    /// Brings up one more node (numbered after the highest so far) and
    /// returns its index.
    pub fn add_node(&mut self, opts: &Options) -> Result<usize> {
        let i = self.nodes.iter().map(|n| n.index).max().unwrap_or(0) + 1;
        let node = self.start_node(i, opts)?;
        self.nodes.push(node);
        self.write_state();
        Ok(i)
    }

    /// Takes node `index` away entirely: pods, flax, OVS, namespace, and its
    /// fabric port. With flax, its registration expires with its lease.
    pub fn remove_node(&mut self, index: usize) {
        self.nodes.retain(|n| n.index != index);
        let _ = run(&mut self.fabric.cmd(["ip", "link", "del", &format!("f{index}")]));
        self.write_state();
    }

    /// Every pod in the lab with the node it lives on.
    pub fn pods(&self) -> Vec<(usize, &Pod)> {
        self.nodes
            .iter()
            .flat_map(|n| n.pods.iter().map(move |p| (n.index, p)))
            .collect()
    }

    /// What `down` needs to remove this lab after a `--keep`: namespaces and
    /// daemon pids, nothing found by name matching.
    pub fn state(&self) -> Value {
        json!({
            "fabric": self.fabric.name,
            "etcd_pid": self.etcd.as_ref().and_then(|e| e.pid()),
            "etcd_dir": self.etcd.as_ref().map(|e| e.dir.clone()),
            "dir": self.dir,
            "nodes": self.nodes.iter().map(|n| json!({
                "netns": n.ns.name,
                "ovs_dir": n.ovs.dir,
                "pids": n.flax.iter().map(|f| f.child.id()).chain(n.ovs.pids()).collect::<Vec<_>>(),
                "pods": n.pods.iter().map(|p| p.ns.name.clone()).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        })
    }

    pub fn write_state(&self) {
        let _ = std::fs::write(self.dir.join("state.json"), self.state().to_string());
    }

    pub fn state_path(&self) -> PathBuf {
        self.dir.join("state.json")
    }

    /// Leaves everything running when dropped; `down` removes it later.
    pub fn keep(self) -> PathBuf {
        self.write_state();
        let p = self.state_path();
        std::mem::forget(self);
        p
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Pods first, then each node's daemons and namespace, then the fabric.
        for n in &mut self.nodes {
            n.pods.clear();
        }
        self.nodes.clear();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Removes a lab left up with `--keep`, from its state file.
pub fn down(state_file: &Path) -> Result<()> {
    let text = std::fs::read_to_string(state_file).map_err(|source| Error::Io {
        what: state_file.display().to_string(),
        source,
    })?;
    let state: Value = serde_json::from_str(&text).map_err(|e| Error::Other(e.to_string()))?;
    let del_ns = |name: &str| {
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", name])
            .output();
    };
    for n in state["nodes"].as_array().into_iter().flatten() {
        for pid in n["pids"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_u64)
        {
            crate::process::stop_pid(pid as u32);
        }
        for p in n["pods"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            del_ns(p);
        }
        if let Some(ns) = n["netns"].as_str() {
            del_ns(ns);
        }
        if let Some(d) = n["ovs_dir"].as_str() {
            let _ = std::fs::remove_dir_all(d);
        }
    }
    if let Some(pid) = state["etcd_pid"].as_u64() {
        crate::process::stop_pid(pid as u32);
    }
    if let Some(d) = state["etcd_dir"].as_str() {
        let _ = std::fs::remove_dir_all(d);
    }
    if let Some(f) = state["fabric"].as_str() {
        del_ns(f);
    }
    if let Some(d) = state["dir"].as_str() {
        let _ = std::fs::remove_dir_all(d);
    }
    Ok(())
}

/// Waits until `f` holds, checking every 50 ms.
pub fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if f() {
            return true;
        }
        if start.elapsed() > timeout {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The original project's workflow: each node's conflist lists the other
/// nodes in `vtepIPs`.
fn static_conflist(i: usize, ovs: &Ovs, opts: &Options) -> Result<Value> {
    let vteps: Vec<String> = match opts.topology {
        Topology::Mesh => (1..=opts.nodes)
            .filter(|&j| j != i)
            .map(underlay_ip)
            .collect(),
        Topology::Hub if i == 1 => (2..=opts.nodes).map(underlay_ip).collect(),
        Topology::Hub => vec![underlay_ip(1)],
    };
    let mut linen = json!({
        "type": "linen",
        "ovsBridge": "br0",
        "vtepIPs": vteps,
        "isMaster": opts.topology == Topology::Hub && i == 1,
        "ovsdbSocket": ovs.db_sock(),
        "datapathType": "netdev",
        "logFile": ovs.dir.join("linen.log"),
    });
    if opts.controller {
        linen["controller"] = json!(crate::faucet::target());
        linen["datapathId"] = json!(crate::faucet::datapath_id(i));
    }
    if let Some(extra) = opts.linen_extra.as_object() {
        linen.as_object_mut().expect("object").extend(extra.clone());
    }
    let conflist = crate::chain::example_conflist(
        "linen-network",
        "1.0.0",
        i,
        opts.pod_mtu,
        &ovs.dir.join("ipam"),
        linen,
    );
    std::fs::write(
        ovs.dir.join("linen.conflist"),
        serde_json::to_vec_pretty(&conflist).expect("json"),
    )
    .map_err(|source| Error::Io {
        what: "write conflist".into(),
        source,
    })?;
    Ok(conflist)
}

/// Starts flax inside the node (etcd backend, the store on the fabric) and
/// waits for the conflist it renders for the subnet etcd gave this node.
fn start_flax(i: usize, ns: &Netns, ovs: &Ovs, opts: &Options) -> Result<(Value, Flax)> {
    let net_d = ovs.dir.join("net.d");
    let config = ovs.dir.join("flax.toml");
    let text = format!(
        r#"node_name = "node{i}"
node_ip = "{ip}"
backend = "etcd"
resync_seconds = 30
metrics_address = "127.0.0.1:9464"

[etcd]
endpoints = ["http://{ETCD_IP}:{ETCD_PORT}"]
lease_ttl = {LEASE_TTL}
cluster_cidr = "10.244.0.0/16"

[ovs]
socket = "{sock}"
datapath_type = "netdev"
linux_bridge = "kbr0"

[cni]
conf_dir = "{net_d}"
cluster_cidr = "10.244.0.0/16"
mtu = {mtu}
ipam_data_dir = "{ipam}"
"#,
        ip = underlay_ip(i),
        sock = ovs.db_sock().display(),
        net_d = net_d.display(),
        mtu = opts.pod_mtu,
        ipam = ovs.dir.join("ipam").display(),
    );
    std::fs::write(&config, text).map_err(|source| Error::Io {
        what: config.display().to_string(),
        source,
    })?;
    let log = ovs.dir.join("flax.log");
    let child = ns
        .cmd([
            opts.linen_dir.join("flax").display().to_string(),
            "--config".into(),
            config.display().to_string(),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).map_err(|source| Error::Io {
            what: log.display().to_string(),
            source,
        })?)
        .spawn()
        .map_err(|source| Error::Io {
            what: "start flax".into(),
            source,
        })?;
    let flax = Flax { child, log };
    let file = net_d.join("10-linen.conflist");
    let rendered = eventually(Duration::from_secs(30), || file.exists());
    if !rendered {
        return Err(Error::Other(format!(
            "node{i}: flax rendered no conflist; its log:\n{}",
            std::fs::read_to_string(&flax.log).unwrap_or_default()
        )));
    }
    let text = std::fs::read_to_string(&file).map_err(|source| Error::Io {
        what: file.display().to_string(),
        source,
    })?;
    let conflist: Value = serde_json::from_str(&text)
        .map_err(|e| Error::Other(format!("{}: {e}", file.display())))?;
    Ok((conflist, flax))
}
