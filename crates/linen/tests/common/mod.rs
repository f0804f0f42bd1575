//! A single emulated node for the plugin's integration tests: its own
//! network namespace with its own Open vSwitch, and the real CNI chain
//! (Debian's bridge + host-local, then linen) run inside it.
#![allow(dead_code)]

use lab::{Chain, Netns, Ovs};
use serde_json::{json, Value};
use std::path::PathBuf;

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
        lab::chain::example_conflist(
            &lab::unique("linen-net"),
            version,
            1,
            1400,
            &self.ipam_dir,
            linen,
        )
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

    /// DEL the way runtimes do: in reverse order with the cached result,
    /// then once more with no netns and no prevResult.
    pub fn del_like_a_runtime(&self, chain: &Chain) {
        chain
            .del(
                &self.id,
                &self.ns.path().display().to_string(),
                "eth0",
                Some(&self.result),
            )
            .unwrap_or_else(|e| panic!("DEL: {e}"));
        chain
            .del(&self.id, "", "eth0", None)
            .unwrap_or_else(|e| panic!("second DEL: {e}"));
    }

    pub fn ip(&self) -> String {
        let a = self.result["ips"][0]["address"].as_str().unwrap();
        a.split('/').next().unwrap().to_string()
    }
}

/// What one run of the linen binary printed.
#[derive(Debug)]
pub struct Outcome {
    pub exit: i32,
    pub stdout: String,
}

impl Outcome {
    pub fn json(&self) -> Value {
        serde_json::from_str(self.stdout.trim())
            .unwrap_or_else(|e| panic!("stdout is not one JSON object ({e}): {:?}", self.stdout))
    }
    pub fn code(&self) -> u64 {
        assert_ne!(
            self.exit, 0,
            "expected failure, got success: {}",
            self.stdout
        );
        self.json()["code"]
            .as_u64()
            .expect("error object has a code")
    }
}

/// Runs the linen binary with `env` (CNI_* variables) and `stdin`, inside
/// `ns` when given.
pub fn run_linen(ns: Option<&Netns>, env: &[(&str, &str)], stdin: &str) -> Outcome {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut cmd = match ns {
        Some(ns) => ns.cmd([linen_bin()]),
        None => Command::new(linen_bin()),
    };
    cmd.env_clear()
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let mut child = cmd.spawn().expect("spawn linen");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    Outcome {
        exit: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
    }
}

/// The variables a runtime sets for `command`.
pub fn cni_env<'a>(command: &'a str, netns: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("CNI_COMMAND", command),
        ("CNI_CONTAINERID", "ctr1"),
        ("CNI_NETNS", netns),
        ("CNI_IFNAME", "eth0"),
        ("CNI_PATH", "/opt/cni/bin"),
    ]
}

impl Node {
    /// A Linux bridge made by hand, for running linen without the bridge
    /// plugin before it.
    pub fn make_kbr0(&self) {
        lab::process::run(&mut self.ns.cmd(["ip", "link", "add", "kbr0", "type", "bridge"]))
            .unwrap();
        lab::process::run(
            &mut self
                .ns
                .cmd(["ip", "link", "set", "kbr0", "mtu", "1400", "up"]),
        )
        .unwrap();
    }

    /// The prevResult the bridge plugin would hand linen for kbr0.
    pub fn prev_result(version: &str) -> Value {
        let mut ip = json!({"address": "10.244.1.10/16", "gateway": "10.244.1.1", "interface": 2});
        if version < "1.0.0" {
            ip["version"] = json!("4");
        }
        json!({
            "cniVersion": version,
            "interfaces": [
                {"name": "kbr0", "mac": "0a:58:0a:f4:01:01"},
                {"name": "vethdeadbeef", "mac": "56:b1:e8:32:e4:b7"},
                {"name": "eth0", "mac": "0a:58:0a:f4:01:0a", "sandbox": "/var/run/netns/pod"}
            ],
            "ips": [ip],
            "routes": [{"dst": "0.0.0.0/0", "gw": "10.244.1.1"}],
            "dns": {}
        })
    }

    /// A complete plugin config as linen receives it in a chain.
    pub fn plugin_conf(&self, version: &str, extra: Value) -> Value {
        let mut c = self.linen_conf(extra);
        c["cniVersion"] = json!(version);
        c["name"] = json!("linen-net");
        c["prevResult"] = Node::prev_result(version);
        c
    }

    pub fn linen(&self, command: &str, conf: &Value) -> Outcome {
        run_linen(
            Some(&self.ns),
            &cni_env(command, "/var/run/netns/pod"),
            &conf.to_string(),
        )
    }
}
