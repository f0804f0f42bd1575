use crate::snapshot::{PortRow, Snapshot};
use crate::spec::{BridgeSpec, DatapathType, TunnelSpec};
use std::collections::BTreeMap;
use std::fmt;

/// One difference between what OVS has and what the node needs. Each change
/// is both an operation to apply (ADD, flax) and a finding to report (CHECK).
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    CreateBridge,
    SetFailMode {
        from: Option<String>,
    },
    SetControllers {
        from: Vec<String>,
    },
    SetDatapathId {
        from: Option<String>,
    },
    CreateInternalPort,
    SetInternalMtu {
        iface_uuid: String,
        from: Option<i64>,
    },
    CreateTunnel(TunnelSpec),
    UpdateTunnel {
        spec: TunnelSpec,
        port_uuid: String,
        iface_uuid: String,
        /// The interface's `type` (`""` when the port has no interface).
        from_type: String,
        from_options: BTreeMap<String, String>,
        from_protected: bool,
    },
    RemoveTunnel {
        name: String,
        port_uuid: String,
    },
}

/// OVS holds something Linen must not change: reported, never overwritten.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Conflict {
    #[error("bridge {bridge} exists with datapath_type {actual:?} but the configuration asks for {wanted:?}; changing it would recreate the bridge")]
    DatapathType {
        bridge: String,
        actual: String,
        wanted: String,
    },
    #[error("port {port} exists on another bridge")]
    PortElsewhere { port: String },
    #[error("port {port} was not created by Linen and does not match the configuration ({detail}); leaving it alone")]
    ForeignPort { port: String, detail: String },
    #[error("Open vSwitch refused {port}: {reason}")]
    Refused { port: String, reason: String },
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::CreateBridge => f.write_str("bridge is missing"),
            Change::SetFailMode { from } => write!(f, "fail_mode is {from:?}, want \"standalone\""),
            Change::SetControllers { from } => write!(f, "controller targets are {from:?}"),
            Change::SetDatapathId { from } => write!(f, "other_config:datapath-id is {from:?}"),
            Change::CreateInternalPort => f.write_str("internal port is missing"),
            Change::SetInternalMtu { from, .. } => {
                write!(f, "internal interface mtu_request is {from:?}")
            }
            Change::CreateTunnel(t) => {
                write!(f, "VTEP port {} to {} is missing", t.port_name(), t.remote)
            }
            Change::UpdateTunnel {
                spec,
                from_type,
                from_options,
                from_protected,
                ..
            } => {
                let mut what = Vec::new();
                if from_type != "vxlan" {
                    what.push(format!("type {from_type:?}, want \"vxlan\""));
                }
                if !spec.options_match(from_options) {
                    what.push(format!(
                        "options {from_options:?}, want {:?}",
                        spec.options()
                    ));
                }
                if *from_protected != spec.protected {
                    what.push(format!(
                        "protected={from_protected}, want {}",
                        spec.protected
                    ));
                }
                write!(
                    f,
                    "VTEP port {} has {}",
                    spec.port_name(),
                    what.join(" and ")
                )
            }
            Change::RemoveTunnel { name, .. } => write!(f, "VTEP port {name} is not wanted"),
        }
    }
}

/// Compares a snapshot with the desired bridge and tunnels. With `prune`,
/// tunnels Linen owns that are not desired are removed (flax); the plugin
/// never prunes, because flax may own tunnels it does not know about.
pub fn diff(
    snap: &Snapshot,
    spec: &BridgeSpec,
    tunnels: &[TunnelSpec],
    prune: bool,
) -> Result<Vec<Change>, Conflict> {
    let mut changes = Vec::new();
    let Some(bridge) = &snap.bridge else {
        // Nothing can exist on a missing bridge, but its names might be
        // taken elsewhere: an insert would then violate the name index.
        for name in
            std::iter::once(spec.name.clone()).chain(tunnels.iter().map(TunnelSpec::port_name))
        {
            if snap.ports.contains_key(&name) {
                return Err(Conflict::PortElsewhere { port: name });
            }
        }
        changes.push(Change::CreateBridge);
        changes.extend(tunnels.iter().cloned().map(Change::CreateTunnel));
        return Ok(changes);
    };

    let actual_dp = DatapathType::from_column(&bridge.datapath_type);
    if actual_dp != Some(spec.datapath_type) {
        return Err(Conflict::DatapathType {
            bridge: spec.name.clone(),
            actual: bridge.datapath_type.clone(),
            wanted: spec.datapath_type.as_str().into(),
        });
    }
    if bridge.fail_mode.as_deref() != Some("standalone") {
        changes.push(Change::SetFailMode {
            from: bridge.fail_mode.clone(),
        });
    }
    if let Some(target) = &spec.controller {
        let have = snap.controller_targets();
        if have != [target.clone()] {
            changes.push(Change::SetControllers { from: have });
        }
    }
    if let Some(dpid) = &spec.datapath_id {
        let have = bridge.other_config.get("datapath-id");
        if have != Some(dpid) {
            changes.push(Change::SetDatapathId {
                from: have.cloned(),
            });
        }
    }

    match snap.bridge_port(&spec.name) {
        None if snap.ports.contains_key(&spec.name) => {
            return Err(Conflict::PortElsewhere {
                port: spec.name.clone(),
            })
        }
        None => changes.push(Change::CreateInternalPort),
        Some((_, iface)) => {
            if let (Some(mtu), Some(iface)) = (spec.internal_mtu, iface) {
                if iface.mtu_request != Some(i64::from(mtu)) {
                    changes.push(Change::SetInternalMtu {
                        iface_uuid: iface.uuid.clone(),
                        from: iface.mtu_request,
                    });
                }
            }
        }
    }

    for t in tunnels {
        let name = t.port_name();
        match snap.bridge_port(&name) {
            None if snap.ports.contains_key(&name) => {
                return Err(Conflict::PortElsewhere { port: name })
            }
            None => changes.push(Change::CreateTunnel(t.clone())),
            Some((port, iface)) => {
                let options = iface.map(|i| i.options.clone()).unwrap_or_default();
                let is_vxlan = iface.is_some_and(|i| i.kind == "vxlan");
                if is_vxlan && t.options_match(&options) && port.protected == t.protected {
                    continue;
                }
                if !port.owned() {
                    // A port the operator (or the legacy plugin) made: fine
                    // if it says the same thing, never to be rewritten.
                    if is_vxlan && t.options_match(&options) {
                        continue;
                    }
                    return Err(Conflict::ForeignPort {
                        port: name,
                        detail: format!(
                            "type {:?}, options {options:?}",
                            iface.map(|i| i.kind.as_str()).unwrap_or("")
                        ),
                    });
                }
                changes.push(Change::UpdateTunnel {
                    spec: t.clone(),
                    port_uuid: port.uuid.clone(),
                    iface_uuid: iface.map(|i| i.uuid.clone()).unwrap_or_default(),
                    from_type: iface.map(|i| i.kind.clone()).unwrap_or_default(),
                    from_options: options,
                    from_protected: port.protected,
                });
            }
        }
    }

    if prune {
        let wanted: Vec<String> = tunnels.iter().map(TunnelSpec::port_name).collect();
        changes.extend(
            snap.owned_tunnels()
                .into_iter()
                .filter(|p| !wanted.contains(&p.name))
                .map(|p: &PortRow| Change::RemoveTunnel {
                    name: p.name.clone(),
                    port_uuid: p.uuid.clone(),
                }),
        );
    }
    Ok(changes)
}
