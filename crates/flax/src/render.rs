//! This node's conflist, rendered from its pod subnet so nobody writes
//! per-node files by hand: `bridge` + `host-local` + `linen`.

use crate::config::{CniConfig, OvsConfig};
use ipnet::IpNet;
use serde_json::{json, Value};
use std::io::Write;
use std::path::PathBuf;

/// VXLAN adds 50 bytes over an IPv4 underlay, 70 over IPv6.
pub fn vxlan_overhead(underlay_v6: bool) -> u32 {
    if underlay_v6 {
        70
    } else {
        50
    }
}

/// The conflist for a node whose pods get addresses from `subnet`. The
/// host-local range is the node's subnet but the `subnet` it declares is the
/// whole flat pod network: pods on other nodes are on-link across the L2
/// overlay, not behind the gateway.
pub fn conflist(cni: &CniConfig, ovs: &OvsConfig, subnet: IpNet, mtu: u32) -> Value {
    let mut hosts = subnet.hosts();
    // IPv6 has no broadcast and `hosts()` starts at the subnet-router
    // anycast address; the gateway is the next one, as with IPv4.
    if subnet.addr().is_ipv6() {
        hosts.next();
    }
    let gateway = hosts.next();
    let first = hosts.next();
    let last = subnet.hosts().last();
    let mut ipam = json!({
        "type": "host-local",
        "ranges": [[{
            "subnet": cni.cluster_cidr.to_string(),
            "rangeStart": first.map(|a| a.to_string()),
            "rangeEnd": last.map(|a| a.to_string()),
            "gateway": gateway.map(|a| a.to_string()),
        }]],
    });
    if let Some(d) = &cni.ipam_data_dir {
        ipam["dataDir"] = json!(d);
    }
    let mut linen = json!({
        "type": "linen",
        "ovsBridge": ovs.bridge,
        "ovsdbSocket": ovs.socket,
        "datapathType": ovs.datapath_type,
        "dstPort": ovs.dst_port,
        "mtu": mtu,
    });
    linen["vni"] = match &ovs.vni {
        toml::Value::Integer(n) => json!(n),
        _ => json!("flow"),
    };
    json!({
        "cniVersion": "1.0.0",
        "name": cni.network_name,
        "plugins": [
            {
                "type": "bridge",
                // An empty linux_bridge only turns re-plugging off.
                "bridge": ovs.linux_bridge.as_deref().filter(|b| !b.is_empty()).unwrap_or("kbr0"),
                "isGateway": true,
                "isDefaultGateway": true,
                "ipMasq": false,
                "mtu": mtu,
                "ipam": ipam,
            },
            linen
        ]
    })
}

/// Writes the conflist atomically (temp file + rename in the same
/// directory), and only when it changed, so a runtime never reads half a
/// file and an unchanged file keeps its timestamp.
pub fn write(
    cni: &CniConfig,
    ovs: &OvsConfig,
    subnet: IpNet,
    mtu: u32,
) -> std::io::Result<Option<PathBuf>> {
    let path = cni.conf_dir.join(&cni.file_name);
    let mut text = serde_json::to_string_pretty(&conflist(cni, ovs, subnet, mtu)).expect("json");
    text.push('\n');
    if std::fs::read_to_string(&path).ok().as_deref() == Some(text.as_str()) {
        return Ok(None);
    }
    std::fs::create_dir_all(&cni.conf_dir)?;
    let tmp = cni.conf_dir.join(format!(".{}.tmp", cni.file_name));
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, &path)?;
    Ok(Some(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cni(dir: PathBuf) -> CniConfig {
        CniConfig {
            conf_dir: dir,
            file_name: "10-linen.conflist".into(),
            network_name: "linen-network".into(),
            cluster_cidr: "10.244.0.0/16".parse().unwrap(),
            mtu: None,
            underlay_mtu: 1450,
            ipam_data_dir: None,
            pod_cidr: None,
        }
    }

    #[test]
    fn renders_the_chain_for_the_subnet() {
        let cfg = cni(PathBuf::from("/x"));
        let c = conflist(
            &cfg,
            &OvsConfig::default(),
            "10.244.3.0/24".parse().unwrap(),
            cfg.pod_mtu(false),
        );
        let bridge = &c["plugins"][0];
        assert_eq!(bridge["type"], "bridge");
        assert_eq!(bridge["mtu"], 1400, "underlay 1450 - 50");
        let range = &bridge["ipam"]["ranges"][0][0];
        assert_eq!(range["subnet"], "10.244.0.0/16");
        assert_eq!(range["gateway"], "10.244.3.1");
        assert_eq!(range["rangeStart"], "10.244.3.2");
        assert_eq!(range["rangeEnd"], "10.244.3.254");
        let linen = &c["plugins"][1];
        assert_eq!(linen["type"], "linen");
        assert_eq!(linen["vni"], "flow");
        assert_eq!(linen["mtu"], 1400);
        assert!(linen.get("vtepIPs").is_none(), "flax owns the tunnels");
    }

    #[test]
    fn ipv6_subnets_and_underlays() {
        let mut cfg = cni(PathBuf::from("/x"));
        cfg.cluster_cidr = "fd00:10::/56".parse().unwrap();
        assert_eq!(cfg.pod_mtu(true), 1380, "underlay 1450 - 70 over IPv6");
        let c = conflist(
            &cfg,
            &OvsConfig::default(),
            "fd00:10:0:3::/64".parse().unwrap(),
            1380,
        );
        let range = &c["plugins"][0]["ipam"]["ranges"][0][0];
        assert_eq!(
            range["gateway"], "fd00:10:0:3::1",
            "not the subnet-router anycast address"
        );
        assert_eq!(range["rangeStart"], "fd00:10:0:3::2");
    }

    #[test]
    fn writes_atomically_and_only_on_change() {
        let dir = std::env::temp_dir().join(format!("flax-render-{}", std::process::id()));
        let c = cni(dir.clone());
        let net = "10.244.3.0/24".parse().unwrap();
        assert!(write(&c, &OvsConfig::default(), net, 1400)
            .unwrap()
            .is_some());
        assert!(
            write(&c, &OvsConfig::default(), net, 1400)
                .unwrap()
                .is_none(),
            "unchanged: not rewritten"
        );
        let names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, vec!["10-linen.conflist"], "no temp file left");
        let v: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("10-linen.conflist")).unwrap())
                .unwrap();
        assert_eq!(
            v["plugins"][0]["ipam"]["ranges"][0][0]["gateway"],
            "10.244.3.1"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
