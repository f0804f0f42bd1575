//! A real OpenFlow controller for the lab: Faucet (from PyPI, in a venv),
//! run inside the fabric namespace so every node reaches it over the
//! underlay, as a controller on a management network would be reached.

use crate::cluster::Cluster;
use crate::process::{run, stop_pid};
use crate::{Error, Result};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// The controller's address on the fabric.
pub const CONTROLLER_IP: &str = "172.31.0.254";
pub const CONTROLLER_PORT: u16 = 6653;
/// OpenFlow's number for a bridge's own internal port (LOCAL).
pub const OFPP_LOCAL: u64 = 4_294_967_294;

pub fn target() -> String {
    format!("{CONTROLLER_IP}:{CONTROLLER_PORT}")
}

/// The node's datapath-id, so Faucet's YAML can name it in advance.
pub fn datapath_id(node: usize) -> String {
    format!("{node:016x}")
}

/// Where scripts/setup.sh installs Faucet.
pub fn default_venv() -> PathBuf {
    std::env::var_os("LINEN_FAUCET_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/tools/faucet")
        })
}

/// Whether OVS on `node` reports its bridge's controller connected.
pub fn connected(node: &crate::cluster::Node) -> bool {
    node.ovs
        .vsctl(&["--bare", "--columns=is_connected", "list", "Controller"])
        .unwrap_or_default()
        == "true"
}

/// Whether OVS on `node` has failed open (standalone mode without a
/// controller): its fail-open flow, priority 0xf0f0f0, switches NORMAL.
pub fn failed_open(node: &crate::cluster::Node) -> bool {
    node.ovs
        .appctl("ovs-vswitchd", &["bridge/dump-flows", "br0"])
        .is_ok_and(|f| {
            f.lines()
                .any(|l| l.contains("priority=15790320") && l.contains("NORMAL"))
        })
}

pub struct Faucet {
    child: Child,
    pub dir: PathBuf,
}

/// Faucet's YAML for the lab: one VLAN spanning every node's br0, with its
/// LOCAL port (plugged into kbr0) and its tunnel ports by OpenFlow number.
pub fn config(cluster: &Cluster) -> Result<String> {
    let mut y = String::from("vlans:\n  pods:\n    vid: 100\ndps:\n");
    for n in &cluster.nodes {
        let _ = writeln!(
            y,
            "  node{}:\n    dp_id: 0x{}\n    hardware: \"Open vSwitch\"\n    interfaces:",
            n.index,
            datapath_id(n.index)
        );
        let _ = writeln!(y, "      {OFPP_LOCAL}:\n        native_vlan: pods");
        let ports = n.ovs.vsctl(&["list-ports", "br0"])?;
        for port in ports.lines() {
            let ofport = n.ovs.vsctl(&["get", "Interface", port, "ofport"])?;
            let _ = writeln!(
                y,
                "      {ofport}:\n        description: {port}\n        native_vlan: pods"
            );
        }
    }
    Ok(y)
}

impl Faucet {
    /// Starts Faucet with `yaml` in the lab's fabric namespace.
    pub fn start(cluster: &Cluster, venv: &Path, yaml: &str) -> Result<Faucet> {
        let bin = venv.join("bin");
        if !bin.join("faucet").exists() {
            return Err(Error::Other(format!(
                "Faucet is not installed in {} (scripts/setup.sh installs it)",
                venv.display()
            )));
        }
        let dir = cluster.dir.join("faucet");
        std::fs::create_dir_all(&dir).map_err(|source| Error::Io {
            what: dir.display().to_string(),
            source,
        })?;
        let conf = dir.join("faucet.yaml");
        std::fs::write(&conf, yaml).map_err(|source| Error::Io {
            what: conf.display().to_string(),
            source,
        })?;
        run(Command::new(bin.join("check_faucet_config")).arg(&conf))?;
        // The controller listens on the fabric itself.
        let has_ip =
            crate::process::stdout(&mut cluster.fabric.cmd(["ip", "-4", "addr", "show", "fab0"]))?;
        if !has_ip.contains(CONTROLLER_IP) {
            run(&mut cluster.fabric.cmd([
                "ip",
                "addr",
                "add",
                &format!("{CONTROLLER_IP}/24"),
                "dev",
                "fab0",
            ]))?;
        }
        let path = format!("{}:/usr/sbin:/usr/bin:/sbin:/bin", bin.display());
        let child = cluster
            .fabric
            .cmd([
                bin.join("faucet").display().to_string(),
                format!("--ryu-ofp-listen-host={CONTROLLER_IP}"),
                format!("--ryu-ofp-tcp-listen-port={CONTROLLER_PORT}"),
            ])
            .env("PATH", path)
            .env("FAUCET_CONFIG", &conf)
            .env("FAUCET_LOG", dir.join("faucet.log"))
            .env("FAUCET_EXCEPTION_LOG", dir.join("faucet-exception.log"))
            .env("FAUCET_PROMETHEUS_ADDR", "127.0.0.1")
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::File::create(dir.join("stderr.log")).map_err(|source| Error::Io {
                    what: "faucet stderr".into(),
                    source,
                })?,
            ))
            .spawn()
            .map_err(|source| Error::Io {
                what: "start faucet".into(),
                source,
            })?;
        Ok(Faucet { child, dir })
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("faucet.log")).unwrap_or_default()
            + &std::fs::read_to_string(self.dir.join("stderr.log")).unwrap_or_default()
    }

    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        // `ip netns exec` execs faucet in place, so this pid is faucet's.
        stop_pid(self.child.id());
        let _ = self.child.wait();
    }
}

impl Drop for Faucet {
    fn drop(&mut self) {
        self.halt();
    }
}
