//! OVSDB's JSON encoding of atoms, sets and maps (RFC 7047 §5.1), both
//! directions.

use serde_json::{json, Value};
use std::collections::BTreeMap;

pub fn uuid(u: &str) -> Value {
    json!(["uuid", u])
}

pub fn named_uuid(name: &str) -> Value {
    json!(["named-uuid", name])
}

pub fn set(items: Vec<Value>) -> Value {
    json!(["set", items])
}

pub fn map<K: Into<String>, V: Into<String>>(pairs: impl IntoIterator<Item = (K, V)>) -> Value {
    let pairs: Vec<Value> = pairs
        .into_iter()
        .map(|(k, v)| json!([k.into(), v.into()]))
        .collect();
    json!(["map", pairs])
}

/// The UUID string of a `["uuid", "..."]` atom.
pub fn as_uuid(v: &Value) -> Option<&str> {
    match v.as_array()?.as_slice() {
        [tag, Value::String(u)] if tag == "uuid" => Some(u),
        _ => None,
    }
}

/// The members of a set column; a single atom is a one-element set.
pub fn as_set(v: &Value) -> Vec<&Value> {
    match v.as_array().map(Vec::as_slice) {
        Some([tag, Value::Array(items)]) if tag == "set" => items.iter().collect(),
        _ => vec![v],
    }
}

/// A set of UUIDs, e.g. `Bridge.ports`.
pub fn as_uuid_set(v: &Value) -> Vec<String> {
    as_set(v)
        .into_iter()
        .filter_map(as_uuid)
        .map(str::to_string)
        .collect()
}

/// A string-to-string map column, e.g. `external_ids` or `options`.
pub fn as_string_map(v: &Value) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if let Some([tag, Value::Array(pairs)]) = v.as_array().map(Vec::as_slice) {
        if tag == "map" {
            for p in pairs {
                if let Some([Value::String(k), val]) = p.as_array().map(Vec::as_slice) {
                    out.insert(k.clone(), atom_string(val));
                }
            }
        }
    }
    out
}

/// An optional column (a set of at most one value): `None` for the empty set.
pub fn as_optional(v: &Value) -> Option<&Value> {
    match v.as_array().map(Vec::as_slice) {
        Some([tag, Value::Array(items)]) if tag == "set" => items.first(),
        _ => Some(v),
    }
}

fn atom_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => as_uuid(other)
            .map(str::to_string)
            .unwrap_or_else(|| other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_sets_maps_and_optionals() {
        assert_eq!(as_uuid_set(&json!(["uuid", "a"])), vec!["a"]);
        assert_eq!(
            as_uuid_set(&json!(["set", [["uuid", "a"], ["uuid", "b"]]])),
            vec!["a", "b"]
        );
        assert!(as_uuid_set(&json!(["set", []])).is_empty());
        let m = as_string_map(&json!([
            "map",
            [["remote_ip", "10.0.0.2"], ["key", "flow"]]
        ]));
        assert_eq!(m["remote_ip"], "10.0.0.2");
        assert_eq!(m["key"], "flow");
        assert_eq!(as_optional(&json!(["set", []])), None);
        assert_eq!(as_optional(&json!(5)), Some(&json!(5)));
        assert_eq!(as_optional(&json!(["set", [7]])), Some(&json!(7)));
    }

    #[test]
    fn encodes_maps_and_sets() {
        assert_eq!(map([("a", "1")]), json!(["map", [["a", "1"]]]));
        assert_eq!(
            set(vec![named_uuid("p")]),
            json!(["set", [["named-uuid", "p"]]])
        );
    }
}
