use crate::error::{CniError, Code};
use crate::version::Version;
use serde_json::{Map, Value};

/// The fields every plugin configuration carries, with the whole object kept
/// so the plugin can read its own keys from it.
#[derive(Debug, Clone, PartialEq)]
pub struct NetConf {
    /// Exactly as the runtime wrote it, for stamping replies.
    pub cni_version_raw: String,
    pub cni_version: Version,
    pub name: String,
    pub plugin_type: String,
    pub prev_result: Option<Value>,
    pub runtime_config: Map<String, Value>,
    pub raw: Map<String, Value>,
}

/// The version a reply should carry, readable even from a config that fails
/// validation, so errors are stamped with what the runtime spoke.
pub fn sniff_version(stdin: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(stdin).ok()?;
    v.get("cniVersion")?.as_str().map(str::to_string)
}

impl NetConf {
    /// Reads a network configuration: undecodable bytes are code 6, a
    /// version this crate cannot speak is code 1, missing or mistyped
    /// standard fields are code 7.
    pub fn parse(stdin: &[u8]) -> Result<NetConf, CniError> {
        let value: Value = serde_json::from_slice(stdin).map_err(|e| {
            CniError::new(Code::Decode, "cannot decode the network configuration")
                .with_details(e.to_string())
        })?;
        let Value::Object(raw) = value else {
            return Err(CniError::new(
                Code::Decode,
                "the network configuration is not a JSON object",
            ));
        };
        let cni_version_raw = match raw.get("cniVersion") {
            Some(Value::String(s)) => s.clone(),
            Some(_) => return Err(invalid("cniVersion must be a string")),
            None => return Err(invalid("cniVersion is missing")),
        };
        let cni_version: Version =
            cni_version_raw
                .parse()
                .map_err(|e: crate::version::UnsupportedVersion| {
                    CniError::new(Code::IncompatibleVersion, e.to_string())
                })?;
        let name = opt_string(&raw, "name")?.unwrap_or_default();
        let plugin_type = opt_string(&raw, "type")?.unwrap_or_default();
        let prev_result = match raw.get("prevResult") {
            None | Some(Value::Null) => None,
            Some(v @ Value::Object(_)) => Some(v.clone()),
            Some(_) => return Err(invalid("prevResult must be an object")),
        };
        let runtime_config = match raw.get("runtimeConfig") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(m)) => m.clone(),
            Some(_) => return Err(invalid("runtimeConfig must be an object")),
        };
        Ok(NetConf {
            cni_version_raw,
            cni_version,
            name,
            plugin_type,
            prev_result,
            runtime_config,
            raw,
        })
    }
}

fn opt_string(m: &Map<String, Value>, key: &str) -> Result<Option<String>, CniError> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(invalid(format!("{key} must be a string"))),
    }
}

fn invalid(msg: impl Into<String>) -> CniError {
    CniError::new(Code::InvalidConfig, msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_standard_fields_and_keeps_the_rest() {
        let c = NetConf::parse(
            br#"{"cniVersion":"1.0.0","name":"n","type":"linen","ovsBridge":"br1",
                "prevResult":{"cniVersion":"1.0.0"},"runtimeConfig":{"ovs":{}}}"#,
        )
        .unwrap();
        assert_eq!(c.cni_version, Version::V1_0_0);
        assert_eq!(c.name, "n");
        assert_eq!(c.plugin_type, "linen");
        assert!(c.prev_result.is_some());
        assert!(c.runtime_config.contains_key("ovs"));
        assert_eq!(c.raw["ovsBridge"], "br1");
    }

    #[test]
    fn codes_for_bad_input() {
        let cases: [(&[u8], Code); 6] = [
            (b"{not json", Code::Decode),
            (b"[1,2]", Code::Decode),
            (br#"{"name":"n"}"#, Code::InvalidConfig),
            (br#"{"cniVersion":1}"#, Code::InvalidConfig),
            (br#"{"cniVersion":"0.2.0"}"#, Code::IncompatibleVersion),
            (
                br#"{"cniVersion":"1.0.0","prevResult":[]}"#,
                Code::InvalidConfig,
            ),
        ];
        for (input, code) in cases {
            assert_eq!(
                NetConf::parse(input).unwrap_err().code,
                code,
                "{}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn sniffs_version_from_invalid_configs() {
        assert_eq!(
            sniff_version(br#"{"cniVersion":"0.4.0","prevResult":3}"#).as_deref(),
            Some("0.4.0")
        );
        assert_eq!(sniff_version(b"garbage"), None);
    }
}
