use crate::spec::{OWNER_KEY, OWNER_VALUE};
use crate::Error;
use ovsdb::ops::{eq, select};
use ovsdb::value::{as_optional, as_string_map, as_uuid, as_uuid_set};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};

#[derive(Debug, Clone, PartialEq)]
pub struct BridgeRow {
    pub uuid: String,
    pub name: String,
    pub datapath_type: String,
    pub fail_mode: Option<String>,
    pub ports: Vec<String>,
    pub controllers: Vec<String>,
    pub external_ids: BTreeMap<String, String>,
    pub other_config: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PortRow {
    pub uuid: String,
    pub name: String,
    pub interfaces: Vec<String>,
    pub protected: bool,
    pub external_ids: BTreeMap<String, String>,
}

impl PortRow {
    pub fn owned(&self) -> bool {
        self.external_ids.get(OWNER_KEY).map(String::as_str) == Some(OWNER_VALUE)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct InterfaceRow {
    pub uuid: String,
    pub name: String,
    pub kind: String,
    pub options: BTreeMap<String, String>,
    pub ofport: Option<i64>,
    pub error: Option<String>,
    pub mtu_request: Option<i64>,
}

/// Everything about one bridge that Linen cares about, read in a single
/// OVSDB round trip.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub root_uuid: String,
    pub next_cfg: i64,
    pub cur_cfg: i64,
    pub bridge: Option<BridgeRow>,
    /// Every port in the database by name (names are unique database-wide).
    pub ports: HashMap<String, PortRow>,
    pub interfaces: HashMap<String, InterfaceRow>,
    /// Controller targets by row UUID.
    pub controllers: HashMap<String, String>,
}

impl Snapshot {
    pub fn read(client: &mut ovsdb::Client, bridge: &str) -> Result<Snapshot, Error> {
        let r = client.transact(crate::DB, Self::read_ops(bridge))?;
        Self::from_results(&r)
    }

    pub(crate) fn read_ops(bridge: &str) -> Vec<Value> {
        vec![
            select("Open_vSwitch", vec![], &["_uuid", "next_cfg", "cur_cfg"]),
            select(
                "Bridge",
                vec![eq("name", json!(bridge))],
                &[
                    "_uuid",
                    "name",
                    "datapath_type",
                    "fail_mode",
                    "ports",
                    "controller",
                    "external_ids",
                    "other_config",
                ],
            ),
            select(
                "Port",
                vec![],
                &["_uuid", "name", "interfaces", "protected", "external_ids"],
            ),
            select(
                "Interface",
                vec![],
                &[
                    "_uuid",
                    "name",
                    "type",
                    "options",
                    "ofport",
                    "error",
                    "mtu_request",
                ],
            ),
            select("Controller", vec![], &["_uuid", "target"]),
        ]
    }

    pub(crate) fn from_results(r: &[Value]) -> Result<Snapshot, Error> {
        let rows = |i: usize| -> Result<&Vec<Value>, Error> {
            r.get(i)
                .and_then(|x| x.get("rows"))
                .and_then(Value::as_array)
                .ok_or_else(|| Error::Unexpected(format!("select {i} returned no rows list")))
        };
        let root = rows(0)?.first().ok_or_else(|| {
            Error::Unexpected("the Open_vSwitch table is empty (run ovs-vsctl init)".into())
        })?;
        let int =
            |row: &Value, col: &str| row.get(col).and_then(as_optional).and_then(Value::as_i64);
        let string = |row: &Value, col: &str| {
            row.get(col)
                .and_then(as_optional)
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        let uuid = |row: &Value| {
            row.get("_uuid")
                .and_then(as_uuid)
                .unwrap_or_default()
                .to_string()
        };
        let map = |row: &Value, col: &str| row.get(col).map(as_string_map).unwrap_or_default();
        let uuids = |row: &Value, col: &str| row.get(col).map(as_uuid_set).unwrap_or_default();

        let bridge = rows(1)?.first().map(|b| BridgeRow {
            uuid: uuid(b),
            name: string(b, "name").unwrap_or_default(),
            datapath_type: string(b, "datapath_type").unwrap_or_default(),
            fail_mode: string(b, "fail_mode"),
            ports: uuids(b, "ports"),
            controllers: uuids(b, "controller"),
            external_ids: map(b, "external_ids"),
            other_config: map(b, "other_config"),
        });
        let ports = rows(2)?
            .iter()
            .map(|p| {
                let row = PortRow {
                    uuid: uuid(p),
                    name: string(p, "name").unwrap_or_default(),
                    interfaces: uuids(p, "interfaces"),
                    protected: p
                        .get("protected")
                        .and_then(as_optional)
                        .and_then(Value::as_bool)
                        == Some(true),
                    external_ids: map(p, "external_ids"),
                };
                (row.name.clone(), row)
            })
            .collect();
        let interfaces = rows(3)?
            .iter()
            .map(|i| {
                let row = InterfaceRow {
                    uuid: uuid(i),
                    name: string(i, "name").unwrap_or_default(),
                    kind: string(i, "type").unwrap_or_default(),
                    options: map(i, "options"),
                    ofport: int(i, "ofport"),
                    error: string(i, "error"),
                    mtu_request: int(i, "mtu_request"),
                };
                (row.uuid.clone(), row)
            })
            .collect();
        let controllers = rows(4)?
            .iter()
            .map(|c| (uuid(c), string(c, "target").unwrap_or_default()))
            .collect();
        Ok(Snapshot {
            root_uuid: uuid(root),
            next_cfg: int(root, "next_cfg").unwrap_or(0),
            cur_cfg: int(root, "cur_cfg").unwrap_or(0),
            bridge,
            ports,
            interfaces,
            controllers,
        })
    }

    /// A port of our bridge by name, with its (first) interface.
    pub fn bridge_port(&self, name: &str) -> Option<(&PortRow, Option<&InterfaceRow>)> {
        let bridge = self.bridge.as_ref()?;
        let port = self.ports.get(name)?;
        if !bridge.ports.contains(&port.uuid) {
            return None;
        }
        let iface = port.interfaces.first().and_then(|u| self.interfaces.get(u));
        Some((port, iface))
    }

    /// The controller targets configured on our bridge, sorted.
    pub fn controller_targets(&self) -> Vec<String> {
        let mut t: Vec<String> = self
            .bridge
            .iter()
            .flat_map(|b| b.controllers.iter())
            .filter_map(|u| self.controllers.get(u).cloned())
            .collect();
        t.sort();
        t
    }

    /// Ports on our bridge that Linen created as tunnels, by name.
    pub fn owned_tunnels(&self) -> Vec<&PortRow> {
        let Some(bridge) = &self.bridge else {
            return vec![];
        };
        let mut v: Vec<&PortRow> = self
            .ports
            .values()
            .filter(|p| bridge.ports.contains(&p.uuid))
            .filter(|p| {
                p.owned()
                    && p.external_ids.get(crate::ROLE_KEY).map(String::as_str) == Some("tunnel")
            })
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }
}
