//! A single emulated node for the plugin's integration tests: its own
//! network namespace with its own Open vSwitch, and the real CNI chain
//! (Debian's bridge + host-local, then linen) run inside it.
#![allow(dead_code)]

use lab::{Chain, Netns, Ovs};
use serde_json::{json, Value};
use std::path::PathBuf;

/// Skips a test that needs root (namespaces, OVS) with a clear message.
#[macro_export]
macro_rules! require_root {
    () => {
        if !lab::is_root() {
            eprintln!("skipped: needs root (network namespaces, Open vSwitch)");
            return;
        }
    };
}

pub struct Node {
    // Field order is drop order: daemons stop before their namespace goes.
    pub ovs: Ovs,
    pub ns: Netns,
    pub ipam_dir: PathBuf,
    pub log: PathBuf,
}

pub fn linen_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_linen"))
}

impl Node {
    pub fn start() -> Node {
        let ns = Netns::create("lnt").expect("create node namespace");
        let ovs = Ovs::start(&ns).expect("start OVS");
        let ipam_dir = ovs.dir.join("ipam");
        let log = ovs.dir.join("linen.log");
        Node {
            ovs,
            ns,
            ipam_dir,
            log,
        }
    }

    /// linen's plugin object: the test's OVS, the userspace datapath.
    pub fn linen_conf(&self, extra: Value) -> Value {
        let mut conf = json!({
            "type": "linen",
            "ovsBridge": "br0",
            "ovsdbSocket": self.ovs.db_sock(),
            "datapathType": "netdev",
            "logFile": self.log,
        });
        conf.as_object_mut()
            .unwrap()
            .extend(extra.as_object().cloned().unwrap_or_default());
        conf
    }

    /// The original project's example conflist for node 1, with linen's
    /// plugin object given.
    pub fn conflist_with(&self, version: &str, linen: Value) -> Value {
        json!({
            "cniVersion": version,
            "name": lab::unique("linen-net"),
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": "kbr0",
                    "isGateway": true,
                    "isDefaultGateway": true,
                    "ipMasq": false,
                    "mtu": 1400,
                    "hairpinMode": false,
                    "ipam": {
                        "type": "host-local",
                        "subnet": "10.244.0.0/16",
                        "rangeStart": "10.244.1.10",
                        "rangeEnd": "10.244.1.250",
                        "gateway": "10.244.1.1",
                        "dataDir": self.ipam_dir,
                    }
                },
                linen
            ]
        })
    }

    pub fn conflist(&self, version: &str, extra: Value) -> Value {
        self.conflist_with(version, self.linen_conf(extra))
    }

    pub fn chain(&self, conflist: Value) -> Chain {
        Chain::new(
            conflist,
            &self.ns.name,
            vec![
                linen_bin().parent().unwrap().to_path_buf(),
                PathBuf::from(lab::chain::DEBIAN_CNI_DIR),
            ],
        )
    }

    pub fn vsctl(&self, args: &[&str]) -> String {
        self.ovs
            .vsctl(args)
            .unwrap_or_else(|e| panic!("ovs-vsctl {args:?}: {e}"))
    }

    /// A column of a row, as ovs-vsctl prints it.
    pub fn get(&self, table: &str, record: &str, column: &str) -> String {
        self.vsctl(&["get", table, record, column])
    }

    pub fn bridges(&self) -> Vec<String> {
        self.vsctl(&["list-br"])
            .lines()
            .map(str::to_string)
            .collect()
    }

    pub fn ports(&self, bridge: &str) -> Vec<String> {
        self.vsctl(&["list-ports", bridge])
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// `ip -j -d link show DEV` inside the node, parsed.
    pub fn link(&self, dev: &str) -> Option<Value> {
        let out = self
            .ns
            .cmd(["ip", "-j", "-d", "link", "show", dev])
            .output()
            .ok()?;
        if !out.status.success() {
            return None;
        }
        let v: Value = serde_json::from_slice(&out.stdout).ok()?;
        v.as_array()?.first().cloned()
    }

    pub fn master_of(&self, dev: &str) -> Option<String> {
        self.link(dev)?.get("master")?.as_str().map(str::to_string)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// A pod: a namespace attached through the chain.
pub struct Pod {
    pub ns: Netns,
    pub id: String,
    pub result: Value,
}

impl Pod {
    pub fn add(chain: &Chain) -> Pod {
        let ns = Netns::create("lnp").expect("create pod namespace");
        let id = lab::unique("ctr");
        let result = chain
            .add(&id, &ns.path(), "eth0")
            .unwrap_or_else(|e| panic!("chain ADD failed: {e}"));
        Pod { ns, id, result }
    }

    pub fn ip(&self) -> String {
        let a = self.result["ips"][0]["address"].as_str().unwrap();
        a.split('/').next().unwrap().to_string()
    }
}
