use crate::diff::Change;
use crate::snapshot::Snapshot;
use crate::spec::{BridgeSpec, TunnelSpec, OWNER_KEY, OWNER_VALUE, PEER_KEY, ROLE_KEY};
use crate::Error;
use ovsdb::ops::{eq, insert, mutate, row, select, update, wait_exact};
use ovsdb::value::{as_optional, map, named_uuid, set, uuid};
use serde_json::{json, Map, Value};
use std::time::{Duration, Instant};

pub const DB: &str = "Open_vSwitch";

/// What a transaction did: the configuration number ovs-vswitchd must reach
/// before the change is live, and the tunnel ports it created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub next_cfg: i64,
    pub created_tunnels: Vec<String>,
}

fn by_uuid(u: &str) -> Vec<Value> {
    vec![eq("_uuid", uuid(u))]
}

fn tags(role: &str, peer: Option<String>) -> Value {
    let mut pairs = vec![
        (OWNER_KEY.to_string(), OWNER_VALUE.to_string()),
        (ROLE_KEY.to_string(), role.to_string()),
    ];
    if let Some(p) = peer {
        pairs.push((PEER_KEY.to_string(), p));
    }
    map(pairs)
}

/// Appends the inserts for one port with one interface and returns the
/// port's named UUID.
fn insert_port(
    ops: &mut Vec<Value>,
    tag: &str,
    name: &str,
    role: &str,
    iface: Map<String, Value>,
    port_extra: Map<String, Value>,
    peer: Option<String>,
) -> Value {
    let iface_ref = format!("i_{tag}");
    let port_ref = format!("p_{tag}");
    let mut iface = iface;
    iface.insert("name".into(), json!(name));
    iface.insert("external_ids".into(), tags(role, peer.clone()));
    ops.push(wait_exact(
        "Port",
        vec![eq("name", json!(name))],
        &["name"],
        vec![],
    ));
    ops.push(insert("Interface", iface, &iface_ref));
    let mut port = port_extra;
    port.insert("name".into(), json!(name));
    port.insert("interfaces".into(), named_uuid(&iface_ref));
    port.insert("external_ids".into(), tags(role, peer));
    ops.push(insert("Port", port, &port_ref));
    named_uuid(&port_ref)
}

fn insert_tunnel(ops: &mut Vec<Value>, i: usize, t: &TunnelSpec) -> Value {
    insert_port(
        ops,
        &format!("t{i}"),
        &t.port_name(),
        "tunnel",
        row([("type", json!("vxlan")), ("options", map(t.options()))]),
        row([("protected", json!(t.protected))]),
        Some(t.remote.to_string()),
    )
}

fn insert_internal(ops: &mut Vec<Value>, spec: &BridgeSpec) -> Value {
    let mut iface = row([("type", json!("internal"))]);
    if let Some(mtu) = spec.internal_mtu {
        iface.insert("mtu_request".into(), json!(mtu));
    }
    insert_port(
        ops,
        "internal",
        &spec.name,
        "internal",
        iface,
        Map::new(),
        None,
    )
}

/// The transaction for `changes`; empty when there is nothing to do.
pub fn ops(snap: &Snapshot, spec: &BridgeSpec, changes: &[Change]) -> Vec<Value> {
    if changes.is_empty() {
        return vec![];
    }
    let mut ops = Vec::new();
    let mut new_ports = Vec::new();
    let mut removed = Vec::new();
    let controller_row = |ops: &mut Vec<Value>, target: &str| {
        ops.push(insert(
            "Controller",
            row([("target", json!(target))]),
            "ctl",
        ));
        named_uuid("ctl")
    };

    let Some(bridge) = &snap.bridge else {
        ops.push(wait_exact(
            "Bridge",
            vec![eq("name", json!(spec.name))],
            &["name"],
            vec![],
        ));
        new_ports.push(insert_internal(&mut ops, spec));
        for (i, c) in changes.iter().enumerate() {
            if let Change::CreateTunnel(t) = c {
                new_ports.push(insert_tunnel(&mut ops, i, t));
            }
        }
        let mut br = row([
            ("name", json!(spec.name)),
            ("datapath_type", json!(spec.datapath_type.as_str())),
            ("fail_mode", json!("standalone")),
            ("ports", set(new_ports)),
            ("external_ids", tags("bridge", None)),
        ]);
        if let Some(target) = &spec.controller {
            br.insert("controller".into(), controller_row(&mut ops, target));
        }
        if let Some(dpid) = &spec.datapath_id {
            br.insert("other_config".into(), map([("datapath-id", dpid.as_str())]));
        }
        ops.push(insert("Bridge", br, "br"));
        ops.push(mutate(
            "Open_vSwitch",
            by_uuid(&snap.root_uuid),
            vec![json!(["bridges", "insert", set(vec![named_uuid("br")])])],
        ));
        bump_cfg(&mut ops, snap);
        return ops;
    };

    // Everything below hangs off this bridge row: if it went away since the
    // read, fail as "changed under us" instead of writing ports that OVSDB
    // would quietly garbage-collect.
    ops.push(wait_exact(
        "Bridge",
        by_uuid(&bridge.uuid),
        &["_uuid"],
        vec![json!({"_uuid": uuid(&bridge.uuid)})],
    ));
    for (i, c) in changes.iter().enumerate() {
        match c {
            Change::CreateBridge => unreachable!("the bridge exists"),
            Change::SetFailMode { .. } => ops.push(update(
                "Bridge",
                by_uuid(&bridge.uuid),
                row([("fail_mode", json!("standalone"))]),
            )),
            Change::SetControllers { .. } => {
                let target = spec.controller.as_deref().unwrap_or_default();
                let ctl = controller_row(&mut ops, target);
                ops.push(update(
                    "Bridge",
                    by_uuid(&bridge.uuid),
                    row([("controller", ctl)]),
                ));
            }
            Change::SetDatapathId { .. } => {
                let dpid = spec.datapath_id.clone().unwrap_or_default();
                ops.push(mutate(
                    "Bridge",
                    by_uuid(&bridge.uuid),
                    vec![
                        json!(["other_config", "delete", set(vec![json!("datapath-id")])]),
                        json!(["other_config", "insert", map([("datapath-id", dpid)])]),
                    ],
                ));
            }
            Change::CreateInternalPort => new_ports.push(insert_internal(&mut ops, spec)),
            Change::SetInternalMtu { iface_uuid, .. } => {
                ops.push(update(
                    "Interface",
                    by_uuid(iface_uuid),
                    row([("mtu_request", json!(spec.internal_mtu))]),
                ));
            }
            Change::CreateTunnel(t) => new_ports.push(insert_tunnel(&mut ops, i, t)),
            Change::UpdateTunnel {
                spec: t,
                port_uuid,
                iface_uuid,
                ..
            } => {
                ops.push(update(
                    "Interface",
                    by_uuid(iface_uuid),
                    row([("type", json!("vxlan")), ("options", map(t.options()))]),
                ));
                ops.push(update(
                    "Port",
                    by_uuid(port_uuid),
                    row([("protected", json!(t.protected))]),
                ));
            }
            Change::RemoveTunnel { port_uuid, .. } => removed.push(uuid(port_uuid)),
        }
    }
    let mut mutations = Vec::new();
    if !new_ports.is_empty() {
        mutations.push(json!(["ports", "insert", set(new_ports)]));
    }
    if !removed.is_empty() {
        mutations.push(json!(["ports", "delete", set(removed)]));
    }
    if !mutations.is_empty() {
        ops.push(mutate("Bridge", by_uuid(&bridge.uuid), mutations));
    }
    bump_cfg(&mut ops, snap);
    ops
}

/// Asks ovs-vswitchd to tell us when it has applied this transaction.
fn bump_cfg(ops: &mut Vec<Value>, snap: &Snapshot) {
    ops.push(mutate(
        "Open_vSwitch",
        by_uuid(&snap.root_uuid),
        vec![json!(["next_cfg", "+=", 1])],
    ));
    ops.push(select(
        "Open_vSwitch",
        by_uuid(&snap.root_uuid),
        &["next_cfg"],
    ));
}

/// Applies `changes` in one transaction. A `wait_timeout` error means OVS
/// changed under us between read and write: re-read and try again.
pub fn apply(
    client: &mut ovsdb::Client,
    snap: &Snapshot,
    spec: &BridgeSpec,
    changes: &[Change],
) -> Result<Applied, Error> {
    let ops = ops(snap, spec, changes);
    if ops.is_empty() {
        return Ok(Applied {
            next_cfg: snap.next_cfg,
            created_tunnels: vec![],
        });
    }
    let results = client.transact(DB, ops)?;
    let next_cfg = results
        .last()
        .and_then(|r| r["rows"].get(0))
        .and_then(|r| r.get("next_cfg"))
        .and_then(Value::as_i64)
        .ok_or_else(|| Error::Unexpected("transaction did not return next_cfg".into()))?;
    let created_tunnels = changes
        .iter()
        .filter_map(|c| match c {
            Change::CreateTunnel(t) => Some(t.port_name()),
            _ => None,
        })
        .collect();
    Ok(Applied {
        next_cfg,
        created_tunnels,
    })
}

/// Blocks until ovs-vswitchd has applied configuration `target`, using the
/// server-side `wait` operation rather than polling.
pub fn wait_applied(
    client: &mut ovsdb::Client,
    target: i64,
    timeout: Duration,
) -> Result<(), Error> {
    let start = Instant::now();
    let mut seen = target - 1;
    loop {
        let left = timeout.saturating_sub(start.elapsed());
        let ops = vec![
            json!({"op": "wait", "table": "Open_vSwitch", "where": [], "columns": ["cur_cfg"],
                   "until": "!=", "rows": [{"cur_cfg": seen}], "timeout": left.as_millis() as u64}),
            select("Open_vSwitch", vec![], &["cur_cfg"]),
        ];
        // The server holds the reply until the wait ends: allow for it.
        let normal = client.timeout();
        client.set_timeout(left + Duration::from_secs(2))?;
        let reply = client.transact(DB, ops);
        if let Some(t) = normal {
            client.set_timeout(t)?;
        }
        match reply {
            Ok(r) => {
                seen = r[1]["rows"]
                    .get(0)
                    .and_then(|row| row.get("cur_cfg"))
                    .and_then(as_optional)
                    .and_then(Value::as_i64)
                    .unwrap_or(0);
                if seen >= target {
                    return Ok(());
                }
                if left.is_zero() {
                    return Err(Error::NotApplied {
                        wanted: target,
                        current: seen,
                        waited_ms: start.elapsed().as_millis(),
                    });
                }
            }
            Err(e) if e.is_wait_timeout() => {
                return Err(Error::NotApplied {
                    wanted: target,
                    current: seen,
                    waited_ms: start.elapsed().as_millis(),
                })
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Fails with OVS's own words if it could not bring up any of `names`
/// (e.g. a duplicate tunnel: `ofport` -1 and `error` set).
pub fn check_interfaces(client: &mut ovsdb::Client, names: &[String]) -> Result<(), Error> {
    if names.is_empty() {
        return Ok(());
    }
    let ops = names
        .iter()
        .map(|n| {
            select(
                "Interface",
                vec![eq("name", json!(n))],
                &["name", "ofport", "error"],
            )
        })
        .collect();
    let results = client.transact(DB, ops)?;
    for (name, r) in names.iter().zip(results) {
        let Some(row) = r["rows"].get(0) else {
            return Err(Error::Refused {
                port: name.clone(),
                reason: "interface row disappeared".into(),
            });
        };
        let error = row
            .get("error")
            .and_then(as_optional)
            .and_then(Value::as_str);
        let ofport = row
            .get("ofport")
            .and_then(as_optional)
            .and_then(Value::as_i64);
        if error.is_some() || ofport == Some(-1) {
            return Err(Error::Refused {
                port: name.clone(),
                reason: error.unwrap_or("ofport is -1").to_string(),
            });
        }
    }
    Ok(())
}

/// Removes tunnel ports this process just created, so a refused ADD leaves
/// nothing half-made behind.
pub fn remove_ports(
    client: &mut ovsdb::Client,
    bridge: &str,
    names: &[String],
) -> Result<(), Error> {
    let snap = Snapshot::read(client, bridge)?;
    let Some(br) = &snap.bridge else {
        return Ok(());
    };
    let uuids: Vec<Value> = names
        .iter()
        .filter_map(|n| snap.ports.get(n))
        .filter(|p| p.owned())
        .map(|p| uuid(&p.uuid))
        .collect();
    if uuids.is_empty() {
        return Ok(());
    }
    client.transact(
        DB,
        vec![mutate(
            "Bridge",
            by_uuid(&br.uuid),
            vec![json!(["ports", "delete", set(uuids)])],
        )],
    )?;
    Ok(())
}
