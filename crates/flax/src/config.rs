//! flax's configuration file (TOML), with command-line overrides applied on
//! top by the binary.

use crate::membership::etcd::EtcdConfig;
use crate::membership::kubernetes::KubernetesConfig;
use crate::membership::static_file::StaticConfig;
use ipnet::IpNet;
use serde::Deserialize;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Parse {
        path: PathBuf,
        source: toml::de::Error,
    },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Topology {
    /// Every node tunnels to every other; tunnel ports are protected.
    #[default]
    Mesh,
    /// The legacy `isMaster` star: spokes tunnel only to the hub.
    Hub,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    Kubernetes,
    Etcd,
    Static,
}

/// The OVS side: must say the same as the plugin's conflist, so the two
/// agree on the bridge and every tunnel's options.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct OvsConfig {
    pub socket: String,
    pub bridge: String,
    pub datapath_type: String,
    /// `"flow"` (the legacy default) or a VNI.
    pub vni: toml::Value,
    pub dst_port: u16,
    /// The Linux bridge the OVS bridge's internal port belongs in; flax
    /// re-plugs it there when OVS recreated the device.
    pub linux_bridge: Option<String>,
}

impl Default for OvsConfig {
    fn default() -> Self {
        OvsConfig {
            socket: "/var/run/openvswitch/db.sock".into(),
            bridge: "br0".into(),
            datapath_type: "system".into(),
            vni: toml::Value::String("flow".into()),
            dst_port: 4789,
            linux_bridge: Some("kbr0".into()),
        }
    }
}

impl OvsConfig {
    pub fn key(&self) -> Result<overlay::Key, ConfigError> {
        match &self.vni {
            toml::Value::String(s) if s == "flow" => Ok(overlay::Key::Flow),
            toml::Value::Integer(n) if (0..1 << 24).contains(n) => Ok(overlay::Key::Vni(*n as u32)),
            other => Err(ConfigError::Invalid(format!(
                "ovs.vni must be \"flow\" or 0..16777215, got {other}"
            ))),
        }
    }

    pub fn datapath(&self) -> Result<overlay::DatapathType, ConfigError> {
        overlay::DatapathType::from_column(&self.datapath_type).ok_or_else(|| {
            ConfigError::Invalid(format!(
                "ovs.datapath_type {:?} is not system or netdev",
                self.datapath_type
            ))
        })
    }

    pub fn endpoint(&self) -> Result<ovsdb::Endpoint, ConfigError> {
        ovsdb::Endpoint::parse(&self.socket)
            .map_err(|e| ConfigError::Invalid(format!("ovs.socket: {e}")))
    }
}

/// Rendering this node's conflist once its pod subnet is known.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CniConfig {
    /// Where runtimes read conflists, e.g. /etc/cni/net.d.
    pub conf_dir: PathBuf,
    #[serde(default = "default_file_name")]
    pub file_name: String,
    #[serde(default = "default_network_name")]
    pub network_name: String,
    /// The flat pod network every node's subnet is part of.
    pub cluster_cidr: IpNet,
    /// Pod MTU; default: underlay_mtu - 50 (VXLAN's overhead).
    #[serde(default)]
    pub mtu: Option<u32>,
    #[serde(default = "default_underlay_mtu")]
    pub underlay_mtu: u32,
    /// host-local's dataDir; its default is shared by all networks.
    #[serde(default)]
    pub ipam_data_dir: Option<PathBuf>,
    /// This node's subnet when no backend assigns one (static).
    #[serde(default)]
    pub pod_cidr: Option<IpNet>,
}

impl CniConfig {
    /// The pod MTU: as configured, or the underlay's minus VXLAN's overhead
    /// for this node's underlay address family.
    pub fn pod_mtu(&self, underlay_v6: bool) -> u32 {
        self.mtu.unwrap_or(
            self.underlay_mtu
                .saturating_sub(crate::render::vxlan_overhead(underlay_v6)),
        )
    }
}

fn default_file_name() -> String {
    "10-linen.conflist".into()
}
fn default_network_name() -> String {
    "linen-network".into()
}
fn default_underlay_mtu() -> u32 {
    1500
}
fn default_resync() -> u64 {
    60
}
fn default_metrics() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9464))
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub node_name: String,
    /// This node's underlay address: what peers put in `remote_ip`.
    pub node_ip: IpAddr,
    pub backend: BackendKind,
    #[serde(default)]
    pub topology: Topology,
    /// The hub's node name with `topology = "hub"`.
    #[serde(default)]
    pub hub: Option<String>,
    /// Full reconcile even without events, in seconds.
    #[serde(default = "default_resync")]
    pub resync_seconds: u64,
    #[serde(default = "default_metrics")]
    pub metrics_address: SocketAddr,
    #[serde(default)]
    pub ovs: OvsConfig,
    #[serde(default)]
    pub etcd: Option<EtcdConfig>,
    #[serde(default)]
    pub kubernetes: KubernetesConfig,
    #[serde(default, rename = "static")]
    pub static_peers: Option<StaticConfig>,
    #[serde(default)]
    pub cni: Option<CniConfig>,
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.into(),
            source,
        })?;
        Self::parse(&text).map_err(|e| match e {
            ConfigError::Parse { source, .. } => ConfigError::Parse {
                path: path.into(),
                source,
            },
            other => other,
        })
    }

    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let cfg: Config = toml::from_str(text).map_err(|source| ConfigError::Parse {
            path: PathBuf::new(),
            source,
        })?;
        Ok(cfg)
    }

    /// Checks what serde cannot: cross-field rules and value ranges.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        if self.node_name.is_empty() {
            return bad("node_name is empty".into());
        }
        self.ovs.key()?;
        self.ovs.datapath()?;
        self.ovs.endpoint()?;
        let ifname_ok = |n: &str| {
            !n.is_empty()
                && n.len() <= 15
                && n != "."
                && n != ".."
                && n.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
        };
        if !ifname_ok(&self.ovs.bridge) {
            return bad(format!(
                "ovs.bridge {:?} is not a valid interface name",
                self.ovs.bridge
            ));
        }
        if let Some(lb) = self.ovs.linux_bridge.as_deref().filter(|b| !b.is_empty()) {
            if !ifname_ok(lb) {
                return bad(format!(
                    "ovs.linux_bridge {lb:?} is not a valid interface name"
                ));
            }
        }
        if self.ovs.dst_port == 0 {
            return bad("ovs.dst_port must be 1..65535".into());
        }
        if self.backend == BackendKind::Kubernetes {
            // A misspelt type would match no node, and an empty membership
            // would take every tunnel down.
            const TYPES: [&str; 5] = [
                "InternalIP",
                "ExternalIP",
                "Hostname",
                "InternalDNS",
                "ExternalDNS",
            ];
            if !TYPES.contains(&self.kubernetes.address_type.as_str()) {
                return bad(format!(
                    "kubernetes.address_type {:?} is not one of {TYPES:?}",
                    self.kubernetes.address_type
                ));
            }
        }
        if let Some(e) = &self.etcd {
            if e.endpoints.is_empty() {
                return bad("etcd.endpoints is empty".into());
            }
            if e.lease_ttl < 1 {
                return bad("etcd.lease_ttl must be at least 1 second".into());
            }
            let max = if e.cluster_cidr.addr().is_ipv4() {
                30
            } else {
                126
            };
            if e.subnet_len < e.cluster_cidr.prefix_len() || e.subnet_len > max {
                return bad(format!(
                    "etcd.subnet_len {} must be between {} (the cluster_cidr's) and {max}",
                    e.subnet_len,
                    e.cluster_cidr.prefix_len()
                ));
            }
        }
        if let Some(c) = &self.cni {
            if c.file_name.contains('/') || c.file_name.is_empty() {
                return bad(format!(
                    "cni.file_name {:?} must be a plain file name",
                    c.file_name
                ));
            }
            let mtu = c.pod_mtu(self.node_ip.is_ipv6());
            if !(68..=65535).contains(&mtu) {
                return bad(format!("the pod MTU would be {mtu}; set cni.mtu or cni.underlay_mtu so it is 68..65535"));
            }
            if let (Some(e), true) = (&self.etcd, self.backend == BackendKind::Etcd) {
                if e.cluster_cidr != c.cluster_cidr {
                    return bad(format!(
                        "etcd.cluster_cidr {} and cni.cluster_cidr {} differ",
                        e.cluster_cidr, c.cluster_cidr
                    ));
                }
            }
        }
        if self.topology == Topology::Hub && self.hub.is_none() {
            return bad("topology = \"hub\" needs hub = \"<node name>\"".into());
        }
        match self.backend {
            BackendKind::Etcd if self.etcd.is_none() => {
                return bad("backend = \"etcd\" needs an [etcd] table".into())
            }
            BackendKind::Static if self.static_peers.is_none() => {
                return bad("backend = \"static\" needs a [static] table with peers_file".into())
            }
            _ => {}
        }
        if self.resync_seconds == 0 {
            return bad("resync_seconds must be at least 1".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minimal_etcd_config_gets_the_defaults() {
        let c = Config::parse(
            r#"
            node_name = "n1"
            node_ip = "172.31.0.1"
            backend = "etcd"
            [etcd]
            endpoints = ["http://127.0.0.1:2379"]
            cluster_cidr = "10.244.0.0/16"
            "#,
        )
        .unwrap();
        c.validate().unwrap();
        assert_eq!(c.topology, Topology::Mesh);
        assert_eq!(c.ovs.bridge, "br0");
        assert_eq!(c.ovs.key().unwrap(), overlay::Key::Flow);
        assert_eq!(c.metrics_address, "127.0.0.1:9464".parse().unwrap());
        let e = c.etcd.unwrap();
        assert_eq!(e.prefix, "/linen");
        assert_eq!(e.lease_ttl, 10);
        assert_eq!(e.subnet_len, 24);
    }

    #[test]
    fn rejects_what_cannot_work() {
        let base = "node_name = \"n1\"\nnode_ip = \"172.31.0.1\"\n";
        for (extra, why) in [
            ("backend = \"etcd\"\n", "needs an [etcd]"),
            ("backend = \"static\"\n", "peers_file"),
            (
                "backend = \"static\"\ntopology = \"hub\"\n[static]\npeers_file = \"/p\"\n",
                "hub =",
            ),
            (
                "backend = \"kubernetes\"\n[ovs]\nvni = 99999999\n",
                "ovs.vni",
            ),
            (
                "backend = \"kubernetes\"\n[ovs]\ndatapath_type = \"dpdk\"\n",
                "datapath_type",
            ),
            (
                "backend = \"kubernetes\"\n[ovs]\nsocket = \"db.sock\"\n",
                "ovs.socket",
            ),
        ] {
            let e = Config::parse(&format!("{base}{extra}"))
                .and_then(|c| c.validate())
                .unwrap_err();
            assert!(e.to_string().contains(why), "{extra}: {e}");
        }
        assert!(Config::parse(&format!("{base}backend = \"zookeeper\"\n")).is_err());
        assert!(
            Config::parse(&format!("{base}backend = \"etcd\"\nbogus = 1\n")).is_err(),
            "unknown keys are typos"
        );
    }
}
