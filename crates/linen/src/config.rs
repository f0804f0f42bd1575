//! Linen's own configuration keys, read from the plugin's object in a
//! conflist: at the top level, or under the legacy `runtimeConfig.ovs` that
//! the original project's conflists use (the top level wins).

use cni::{CniError, Code, NetConf};
use overlay::{DatapathType, Key};
use serde_json::{Map, Value};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

pub const DEFAULT_BRIDGE: &str = "br0";
pub const DEFAULT_OVSDB_SOCKET: &str = "/var/run/openvswitch/db.sock";
pub const DEFAULT_DST_PORT: u16 = 4789;
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(20);
/// Linux IFNAMSIZ minus the terminating NUL.
pub const IFNAME_MAX: usize = 15;

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub bridge: String,
    pub vtep_ips: Vec<IpAddr>,
    /// Normalised to an OVS target: `tcp:IP:PORT` or `ssl:IP:PORT`.
    pub controller: Option<String>,
    pub is_master: bool,
    pub ovsdb: ovsdb::Endpoint,
    pub datapath_type: DatapathType,
    pub key: Key,
    pub dst_port: u16,
    pub datapath_id: Option<String>,
    pub mtu: Option<u32>,
    pub log_file: Option<PathBuf>,
    pub lock_timeout: Duration,
}

/// Looks a key up at the top level, then under `runtimeConfig.ovs`.
struct Keys<'a> {
    top: &'a Map<String, Value>,
    legacy: Option<&'a Map<String, Value>>,
}

impl<'a> Keys<'a> {
    fn new(conf: &'a NetConf) -> Keys<'a> {
        // Runtimes may rewrite capability keys' letter case; accept any.
        let legacy = conf
            .runtime_config
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("ovs"))
            .and_then(|(_, v)| v.as_object());
        Keys {
            top: &conf.raw,
            legacy,
        }
    }

    fn get(&self, key: &str) -> Option<&'a Value> {
        self.get_any(&[key])
    }

    /// The first of several spellings of one key: any spelling at the top
    /// level beats every spelling under the legacy object.
    fn get_any(&self, names: &[&str]) -> Option<&'a Value> {
        let non_null = |v: &&Value| !v.is_null();
        let top = names.iter().find_map(|k| self.top.get(*k).filter(non_null));
        top.or_else(|| {
            let legacy = self.legacy?;
            names.iter().find_map(|key| {
                legacy
                    .get(*key)
                    .or_else(|| {
                        legacy
                            .iter()
                            .find(|(k, _)| k.eq_ignore_ascii_case(key))
                            .map(|(_, v)| v)
                    })
                    .filter(non_null)
            })
        })
    }
}

fn invalid(msg: impl Into<String>) -> CniError {
    CniError::new(Code::InvalidConfig, msg)
}

fn string<'a>(keys: &Keys<'a>, key: &str) -> Result<Option<&'a str>, CniError> {
    match keys.get(key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(other) => Err(invalid(format!("{key} must be a string, got {other}"))),
    }
}

fn integer(keys: &Keys, key: &str, min: u64, max: u64) -> Result<Option<u64>, CniError> {
    match keys.get(key) {
        None => Ok(None),
        Some(v) => match v.as_u64() {
            Some(n) if (min..=max).contains(&n) => Ok(Some(n)),
            _ => Err(invalid(format!(
                "{key} must be an integer from {min} to {max}, got {v}"
            ))),
        },
    }
}

impl Config {
    pub fn from_netconf(conf: &NetConf) -> Result<Config, CniError> {
        let keys = Keys::new(conf);
        let bridge = string(&keys, "ovsBridge")?
            .unwrap_or(DEFAULT_BRIDGE)
            .to_string();
        validate_ifname("ovsBridge", &bridge)?;

        let is_master = match keys.get("isMaster") {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                return Err(invalid(format!(
                    "isMaster must be true or false, got {other}"
                )))
            }
        };

        // `vtepIP` is how the earliest releases spelled it.
        let vtep_ips = match keys.get_any(&["vtepIPs", "vtepIP"]) {
            None => vec![],
            Some(Value::Array(items)) => {
                let mut ips: Vec<IpAddr> = Vec::with_capacity(items.len());
                for item in items {
                    let ip = parse_vtep(item)?;
                    if !ips.contains(&ip) {
                        ips.push(ip);
                    }
                }
                ips
            }
            Some(other) => {
                return Err(invalid(format!(
                    "vtepIPs must be a list of IP addresses, got {other}"
                )))
            }
        };

        let controller = match string(&keys, "controller")? {
            None | Some("") => None,
            Some(c) => Some(parse_controller(c)?),
        };

        let socket = string(&keys, "ovsdbSocket")?.unwrap_or(DEFAULT_OVSDB_SOCKET);
        let ovsdb =
            ovsdb::Endpoint::parse(socket).map_err(|e| invalid(format!("ovsdbSocket: {e}")))?;

        let datapath_type = match string(&keys, "datapathType")? {
            None | Some("system") | Some("") => DatapathType::System,
            Some("netdev") => DatapathType::Netdev,
            Some(other) => {
                return Err(invalid(format!(
                    "datapathType must be \"system\" or \"netdev\", got {other:?}"
                )))
            }
        };

        let key = match keys.get("vni") {
            None => Key::Flow,
            Some(Value::String(s)) if s == "flow" => Key::Flow,
            Some(_) => Key::Vni(integer(&keys, "vni", 0, (1 << 24) - 1)?.expect("present") as u32),
        };
        let dst_port = integer(&keys, "dstPort", 1, 65535)?.map_or(DEFAULT_DST_PORT, |p| p as u16);

        let datapath_id = match string(&keys, "datapathId")? {
            None => None,
            Some(d) => {
                let d = d.strip_prefix("0x").unwrap_or(d);
                if d.len() != 16 || !d.chars().all(|c| c.is_ascii_hexdigit()) {
                    return Err(invalid(format!(
                        "datapathId must be 16 hex digits, got {d:?}"
                    )));
                }
                Some(d.to_ascii_lowercase())
            }
        };
        let mtu = integer(&keys, "mtu", 68, 65535)?.map(|m| m as u32);
        let log_file = string(&keys, "logFile")?.map(PathBuf::from);
        if let Some(p) = &log_file {
            if !p.is_absolute() {
                return Err(invalid(format!(
                    "logFile must be an absolute path, got {}",
                    p.display()
                )));
            }
        }
        let lock_timeout = integer(&keys, "lockTimeoutMs", 1, 600_000)?
            .map_or(DEFAULT_LOCK_TIMEOUT, Duration::from_millis);

        Ok(Config {
            bridge,
            vtep_ips,
            controller,
            is_master,
            ovsdb,
            datapath_type,
            key,
            dst_port,
            datapath_id,
            mtu,
            log_file,
            lock_timeout,
        })
    }

    /// The tunnels this node's configuration asks for. A hub forwards between
    /// its spokes; everyone else must not, or a mesh loops.
    pub fn tunnels(&self) -> Vec<overlay::TunnelSpec> {
        self.vtep_ips
            .iter()
            .map(|ip| overlay::TunnelSpec {
                remote: *ip,
                key: self.key,
                dst_port: self.dst_port,
                protected: !self.is_master,
            })
            .collect()
    }

    /// The OVS port names of [`Config::tunnels`].
    pub fn tunnel_ports(&self) -> Vec<String> {
        self.tunnels()
            .iter()
            .map(overlay::TunnelSpec::port_name)
            .collect()
    }

    pub fn bridge_spec(&self, internal_mtu: Option<u32>) -> overlay::BridgeSpec {
        overlay::BridgeSpec {
            name: self.bridge.clone(),
            datapath_type: self.datapath_type,
            controller: self.controller.clone(),
            datapath_id: self.datapath_id.clone(),
            internal_mtu: self.mtu.or(internal_mtu),
        }
    }
}

/// Interface names go to the kernel: at most 15 bytes of safe characters.
pub fn validate_ifname(what: &str, name: &str) -> Result<(), CniError> {
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if name.is_empty() || name.len() > IFNAME_MAX || !ok_chars || name == "." || name == ".." {
        return Err(invalid(format!(
            "{what} {name:?} is not a valid interface name (1-{IFNAME_MAX} characters of A-Z a-z 0-9 _ . -)"
        )));
    }
    Ok(())
}

fn parse_vtep(item: &Value) -> Result<IpAddr, CniError> {
    let s = item
        .as_str()
        .ok_or_else(|| invalid(format!("vtepIPs entries must be strings, got {item}")))?;
    let ip: IpAddr = s
        .parse()
        .map_err(|_| invalid(format!("vtepIPs entry {s:?} is not an IP address")))?;
    let unusable = ip.is_unspecified()
        || ip.is_multicast()
        || matches!(ip, IpAddr::V4(v4) if v4.is_broadcast());
    if unusable {
        return Err(invalid(format!(
            "vtepIPs entry {s} cannot be a tunnel endpoint"
        )));
    }
    Ok(ip)
}

/// Accepts the legacy `IP:PORT` and OVS targets `tcp:IP:PORT`,
/// `ssl:IP:PORT`; IPv6 addresses in brackets.
pub fn parse_controller(s: &str) -> Result<String, CniError> {
    let (proto, rest) = match s.split_once(':') {
        Some((p @ ("tcp" | "ssl"), rest)) => (p, rest),
        _ => ("tcp", s),
    };
    let addr: SocketAddr = rest.parse().map_err(|_| {
        invalid(format!(
            "controller {s:?} must be IP:PORT, tcp:IP:PORT or ssl:IP:PORT (IPv6 in brackets)"
        ))
    })?;
    if addr.port() == 0 || addr.ip().is_unspecified() {
        return Err(invalid(format!(
            "controller {s:?} needs a real address and a non-zero port"
        )));
    }
    Ok(format!("{proto}:{addr}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cfg(v: Value) -> Result<Config, CniError> {
        let mut base = json!({"cniVersion": "1.0.0", "name": "n", "type": "linen"});
        base.as_object_mut()
            .unwrap()
            .extend(v.as_object().unwrap().clone());
        Config::from_netconf(&NetConf::parse(base.to_string().as_bytes()).unwrap())
    }

    #[test]
    fn defaults() {
        let c = cfg(json!({})).unwrap();
        assert_eq!(c.bridge, "br0");
        assert!(c.vtep_ips.is_empty());
        assert_eq!(c.controller, None);
        assert!(!c.is_master);
        assert_eq!(c.ovsdb, ovsdb::Endpoint::Unix(DEFAULT_OVSDB_SOCKET.into()));
        assert_eq!(c.datapath_type, DatapathType::System);
        assert_eq!(c.key, Key::Flow);
        assert_eq!(c.dst_port, 4789);
        assert_eq!(c.lock_timeout, DEFAULT_LOCK_TIMEOUT);
    }

    #[test]
    fn new_form_reads_every_key() {
        let c = cfg(json!({
            "ovsBridge": "br1", "vtepIPs": ["10.245.2.2", "fd00::3", "10.245.2.2"],
            "controller": "192.168.2.100:6653", "isMaster": true,
            "ovsdbSocket": "/run/x/db.sock", "datapathType": "netdev", "vni": 42,
            "dstPort": 4790, "datapathId": "00000000000000AB", "mtu": 1400,
            "logFile": "/var/log/linen.log", "lockTimeoutMs": 500
        }))
        .unwrap();
        assert_eq!(c.bridge, "br1");
        assert_eq!(
            c.vtep_ips,
            vec![
                "10.245.2.2".parse::<IpAddr>().unwrap(),
                "fd00::3".parse().unwrap()
            ]
        );
        assert_eq!(c.controller.as_deref(), Some("tcp:192.168.2.100:6653"));
        assert!(c.is_master);
        assert_eq!(c.ovsdb, ovsdb::Endpoint::Unix("/run/x/db.sock".into()));
        assert_eq!(c.datapath_type, DatapathType::Netdev);
        assert_eq!(c.key, Key::Vni(42));
        assert_eq!(c.dst_port, 4790);
        assert_eq!(c.datapath_id.as_deref(), Some("00000000000000ab"));
        assert_eq!(c.mtu, Some(1400));
        assert_eq!(c.lock_timeout, Duration::from_millis(500));
        let t = c.tunnels();
        assert_eq!(t.len(), 2);
        assert!(
            t.iter().all(|t| !t.protected),
            "a master forwards between spokes"
        );
    }

    #[test]
    fn legacy_runtime_config_ovs_form_is_read_and_top_level_wins() {
        let c = cfg(json!({
            "ovsBridge": "brtop",
            "runtimeConfig": {"ovs": {
                "isMaster": false, "ovsBridge": "brlegacy",
                "vtepIPs": ["10.245.2.2", "10.245.2.3"], "controller": "tcp:10.0.0.1:6633"
            }}
        }))
        .unwrap();
        assert_eq!(c.bridge, "brtop");
        assert_eq!(c.vtep_ips.len(), 2);
        assert_eq!(c.controller.as_deref(), Some("tcp:10.0.0.1:6633"));
        assert!(c.tunnels().iter().all(|t| t.protected));
        let c =
            cfg(json!({"runtimeConfig": {"OVS": {"OvsBridge": "brx", "vtepIP": ["10.0.0.9"]}}}))
                .unwrap();
        assert_eq!(c.bridge, "brx");
        assert_eq!(c.vtep_ips, vec!["10.0.0.9".parse::<IpAddr>().unwrap()]);
    }

    #[test]
    fn the_legacy_spelling_at_top_level_beats_the_legacy_object() {
        let c = cfg(json!({
            "vtepIP": ["10.0.0.1"],
            "runtimeConfig": {"ovs": {"vtepIPs": ["10.0.0.2"]}}
        }))
        .unwrap();
        assert_eq!(c.vtep_ips, vec!["10.0.0.1".parse::<IpAddr>().unwrap()]);
    }

    #[test]
    fn controller_forms() {
        assert_eq!(
            parse_controller("10.0.0.1:6653").unwrap(),
            "tcp:10.0.0.1:6653"
        );
        assert_eq!(
            parse_controller("ssl:10.0.0.1:6653").unwrap(),
            "ssl:10.0.0.1:6653"
        );
        assert_eq!(
            parse_controller("[fd00::1]:6653").unwrap(),
            "tcp:[fd00::1]:6653"
        );
        assert_eq!(
            parse_controller("tcp:[fd00::1]:6653").unwrap(),
            "tcp:[fd00::1]:6653"
        );
        for bad in [
            "10.0.0.1",
            "udp:10.0.0.1:1",
            "host:6653",
            "10.0.0.1:0",
            "0.0.0.0:6653",
            "tcp:10.0.0.1",
        ] {
            assert!(parse_controller(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_bad_value_is_code_7() {
        for bad in [
            json!({"ovsBridge": "a-bridge-name-too-long"}),
            json!({"ovsBridge": "br 0"}),
            json!({"ovsBridge": "br/0"}),
            json!({"ovsBridge": ""}),
            json!({"ovsBridge": 3}),
            json!({"vtepIPs": "10.0.0.1"}),
            json!({"vtepIPs": ["10.0.0.300"]}),
            json!({"vtepIPs": [7]}),
            json!({"vtepIPs": ["0.0.0.0"]}),
            json!({"vtepIPs": ["224.0.0.1"]}),
            json!({"controller": "nonsense"}),
            json!({"isMaster": "yes"}),
            json!({"ovsdbSocket": "relative.sock"}),
            json!({"ovsdbSocket": "unix:relative.sock"}),
            json!({"ovsdbSocket": "tcp:localhost:6640"}),
            json!({"datapathType": "dpdk"}),
            json!({"vni": 16777216}),
            json!({"vni": "auto"}),
            json!({"dstPort": 0}),
            json!({"dstPort": 70000}),
            json!({"datapathId": "xyz"}),
            json!({"mtu": 10}),
            json!({"logFile": "linen.log"}),
        ] {
            let e = cfg(bad.clone()).unwrap_err();
            assert_eq!(e.code, Code::InvalidConfig, "{bad}: {e}");
        }
    }
}
