use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

/// `external_ids` key marking a row as created by Linen. Ports and tunnels
/// without it are never rewritten or removed; a bridge Linen did not create
/// still gets the settings the configuration asks of it (fail mode,
/// controller, datapath-id, the internal port's MTU), because the operator
/// named it as Linen's bridge.
pub const OWNER_KEY: &str = "linen-owner";
pub const OWNER_VALUE: &str = "linen";
/// `external_ids` key saying what the row is: `bridge`, `internal`, `tunnel`.
pub const ROLE_KEY: &str = "linen-role";
/// `external_ids` key on tunnel ports naming the peer's underlay address.
pub const PEER_KEY: &str = "linen-peer";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatapathType {
    System,
    Netdev,
}

impl DatapathType {
    pub fn as_str(self) -> &'static str {
        match self {
            DatapathType::System => "system",
            DatapathType::Netdev => "netdev",
        }
    }

    /// OVS treats an empty `datapath_type` as `system`.
    pub fn from_column(s: &str) -> Option<DatapathType> {
        match s {
            "" | "system" => Some(DatapathType::System),
            "netdev" => Some(DatapathType::Netdev),
            _ => None,
        }
    }
}

/// What the node's OVS bridge must look like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeSpec {
    pub name: String,
    pub datapath_type: DatapathType,
    /// An OVS controller target (`tcp:IP:PORT`, `ssl:IP:PORT`).
    pub controller: Option<String>,
    /// `other_config:datapath-id`, 16 hex digits, so a controller can name
    /// the switch in advance.
    pub datapath_id: Option<String>,
    /// `mtu_request` of the bridge's internal interface.
    pub internal_mtu: Option<u32>,
}

/// The VXLAN key: the legacy `flow` (set per packet, 0 by default) or a VNI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    Flow,
    Vni(u32),
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Key::Flow => f.write_str("flow"),
            Key::Vni(v) => write!(f, "{v}"),
        }
    }
}

/// One VXLAN port to one remote node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TunnelSpec {
    pub remote: IpAddr,
    pub key: Key,
    pub dst_port: u16,
    /// Tunnel ports of a mesh must not forward to each other, or a broadcast
    /// loops forever; only a hub forwards between its spokes.
    pub protected: bool,
}

pub const DEFAULT_DST_PORT: u16 = 4789;

impl TunnelSpec {
    /// The original project's naming: `vxif` and the address with its
    /// separators turned into underscores (`vxif10_245_2_2`).
    pub fn port_name(&self) -> String {
        port_name(self.remote)
    }

    pub fn options(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("remote_ip".to_string(), self.remote.to_string()),
            ("key".to_string(), self.key.to_string()),
            ("dst_port".to_string(), self.dst_port.to_string()),
        ])
    }

    /// Whether an existing interface's options say the same thing; an absent
    /// `dst_port` means OVS's default, as for ports the legacy plugin made.
    pub fn options_match(&self, actual: &BTreeMap<String, String>) -> bool {
        let mut actual = actual.clone();
        actual
            .entry("dst_port".into())
            .or_insert_with(|| DEFAULT_DST_PORT.to_string());
        actual.entry("key".into()).or_insert_with(|| "0".into());
        let want = self.options();
        want.iter().all(|(k, v)| actual.get(k) == Some(v))
            && actual.keys().all(|k| want.contains_key(k))
    }
}

pub fn port_name(remote: IpAddr) -> String {
    let s: String = remote
        .to_string()
        .chars()
        .map(|c| if c == '.' || c == ':' { '_' } else { c })
        .collect();
    format!("vxif{s}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ip: &str) -> TunnelSpec {
        TunnelSpec {
            remote: ip.parse().unwrap(),
            key: Key::Flow,
            dst_port: DEFAULT_DST_PORT,
            protected: true,
        }
    }

    #[test]
    fn names_follow_the_legacy_form() {
        assert_eq!(t("10.245.2.2").port_name(), "vxif10_245_2_2");
        assert_eq!(t("fd00::2").port_name(), "vxiffd00__2");
    }

    #[test]
    fn legacy_ports_without_dst_port_match() {
        let legacy = BTreeMap::from([
            ("remote_ip".to_string(), "10.245.2.2".to_string()),
            ("key".to_string(), "flow".to_string()),
        ]);
        assert!(t("10.245.2.2").options_match(&legacy));
        assert!(!t("10.245.2.3").options_match(&legacy));
        let mut extra = legacy.clone();
        extra.insert("csum".into(), "true".into());
        assert!(!t("10.245.2.2").options_match(&extra));
        let mut vni = t("10.245.2.2");
        vni.key = Key::Vni(42);
        assert!(!vni.options_match(&legacy));
    }
}
