//! Builders for the transaction operations of RFC 7047 §5.2.

use serde_json::{json, Map, Value};

/// A `where` clause: `column == value`.
pub fn eq(column: &str, value: Value) -> Value {
    json!([column, "==", value])
}

pub fn select(table: &str, conditions: Vec<Value>, columns: &[&str]) -> Value {
    json!({"op": "select", "table": table, "where": conditions, "columns": columns})
}

pub fn insert(table: &str, row: Map<String, Value>, uuid_name: &str) -> Value {
    json!({"op": "insert", "table": table, "row": row, "uuid-name": uuid_name})
}

pub fn update(table: &str, conditions: Vec<Value>, row: Map<String, Value>) -> Value {
    json!({"op": "update", "table": table, "where": conditions, "row": row})
}

/// `mutations` are `[column, mutator, value]` triples.
pub fn mutate(table: &str, conditions: Vec<Value>, mutations: Vec<Value>) -> Value {
    json!({"op": "mutate", "table": table, "where": conditions, "mutations": mutations})
}

pub fn delete(table: &str, conditions: Vec<Value>) -> Value {
    json!({"op": "delete", "table": table, "where": conditions})
}

/// Fails the transaction at once unless the rows matching `conditions`,
/// projected on `columns`, are exactly `rows`: optimistic concurrency for a
/// read-then-write.
pub fn wait_exact(
    table: &str,
    conditions: Vec<Value>,
    columns: &[&str],
    rows: Vec<Value>,
) -> Value {
    json!({"op": "wait", "timeout": 0, "table": table, "where": conditions,
           "columns": columns, "until": "==", "rows": rows})
}

pub fn comment(text: &str) -> Value {
    json!({"op": "comment", "comment": text})
}

/// A row object from column/value pairs.
pub fn row<const N: usize>(cols: [(&str, Value); N]) -> Map<String, Value> {
    cols.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}
