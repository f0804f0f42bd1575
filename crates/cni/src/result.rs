//! Converting a result between spec versions. The result is kept as JSON so
//! that nothing a previous plugin reported is lost on the way through.

use crate::error::{CniError, Code};
use crate::version::Version;
use serde_json::{Map, Value};
use std::net::IpAddr;

/// Fields 1.1.0 added to interfaces and routes; older readers do not know them.
const V1_1_INTERFACE_FIELDS: [&str; 3] = ["mtu", "socketPath", "pciID"];
const V1_1_ROUTE_FIELDS: [&str; 5] = ["mtu", "advmss", "priority", "table", "scope"];

/// The version a `prevResult` was written in: its own `cniVersion` when it
/// has one, otherwise the configuration's (runtimes convert before passing).
pub fn result_version(result: &Value, conf_version: Version) -> Result<Version, CniError> {
    match result.get("cniVersion") {
        None | Some(Value::Null) => Ok(conf_version),
        Some(Value::String(s)) => s.parse().map_err(|e: crate::version::UnsupportedVersion| {
            CniError::new(Code::IncompatibleVersion, format!("prevResult: {e}"))
        }),
        Some(_) => Err(invalid("prevResult.cniVersion must be a string")),
    }
}

/// Converts `result` (written in `from`) to `to`.
pub fn convert(result: &Value, from: Version, to: Version) -> Result<Value, CniError> {
    let Value::Object(src) = result else {
        return Err(invalid("prevResult must be an object"));
    };
    let mut out: Map<String, Value> = src.clone();
    out.insert("cniVersion".into(), Value::String(to.as_str().into()));

    if let Some(ips) = out.get_mut("ips") {
        let Value::Array(ips) = ips else {
            return Err(invalid("prevResult.ips must be a list"));
        };
        for ip in ips.iter_mut() {
            let Value::Object(ip) = ip else {
                return Err(invalid("prevResult.ips entries must be objects"));
            };
            if to.ips_carry_version() {
                let family = ip_family(ip)?;
                ip.insert("version".into(), Value::String(family.into()));
            } else {
                ip.remove("version");
            }
        }
    }
    if from >= Version::V1_1_0 && to < Version::V1_1_0 {
        strip_fields(&mut out, "interfaces", &V1_1_INTERFACE_FIELDS)?;
        strip_fields(&mut out, "routes", &V1_1_ROUTE_FIELDS)?;
    }
    Ok(Value::Object(out))
}

fn ip_family(ip: &Map<String, Value>) -> Result<&'static str, CniError> {
    let addr = ip
        .get("address")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("prevResult.ips entry without an address"))?;
    let host = addr.split('/').next().unwrap_or_default();
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V4(_)) => Ok("4"),
        Ok(IpAddr::V6(_)) => Ok("6"),
        Err(_) => Err(invalid(format!(
            "prevResult.ips address {addr:?} is not CIDR"
        ))),
    }
}

fn strip_fields(out: &mut Map<String, Value>, list: &str, fields: &[&str]) -> Result<(), CniError> {
    match out.get_mut(list) {
        None | Some(Value::Null) => Ok(()),
        Some(Value::Array(items)) => {
            for item in items.iter_mut().filter_map(Value::as_object_mut) {
                for f in fields {
                    item.remove(*f);
                }
            }
            Ok(())
        }
        Some(_) => Err(invalid(format!("prevResult.{list} must be a list"))),
    }
}

fn invalid(msg: impl Into<String>) -> CniError {
    CniError::new(Code::InvalidConfig, msg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// What Debian's bridge plugin prints, shaped for `v`.
    fn bridge_result(v: Version) -> Value {
        let mut ip4 = json!({"address":"10.244.1.5/24","gateway":"10.244.1.1","interface":2});
        let mut ip6 = json!({"address":"fd00::5/64","gateway":"fd00::1","interface":2});
        if v.ips_carry_version() {
            ip4["version"] = json!("4");
            ip6["version"] = json!("6");
        }
        let mut eth0 =
            json!({"name":"eth0","mac":"0a:58:0a:f4:01:05","sandbox":"/var/run/netns/p"});
        let mut route = json!({"dst":"0.0.0.0/0","gw":"10.244.1.1"});
        if v >= Version::V1_1_0 {
            eth0["mtu"] = json!(1400);
            route["mtu"] = json!(1400);
            route["table"] = json!(100);
        }
        json!({
            "cniVersion": v.as_str(),
            "interfaces": [
                {"name":"kbr0","mac":"0a:58:0a:f4:01:01"},
                {"name":"veth1","mac":"56:b1:e8:32:e4:b7"},
                eth0
            ],
            "ips": [ip4, ip6],
            "routes": [route],
            "dns": {"nameservers":["10.96.0.10"]}
        })
    }

    #[test]
    fn every_version_pair_converts_to_the_expected_shape() {
        for from in Version::ALL {
            for to in Version::ALL {
                let got = convert(&bridge_result(from), from, to).unwrap();
                let mut want = bridge_result(to);
                // A 1.1.0 target cannot regain fields an older source never had.
                if to >= Version::V1_1_0 && from < Version::V1_1_0 {
                    want["interfaces"][2].as_object_mut().unwrap().remove("mtu");
                    let r = want["routes"][0].as_object_mut().unwrap();
                    r.remove("mtu");
                    r.remove("table");
                }
                assert_eq!(got, want, "{from} -> {to}");
            }
        }
    }

    #[test]
    fn unknown_fields_survive_conversion() {
        let mut r = bridge_result(Version::V1_0_0);
        r["x-vendor"] = json!({"k": 1});
        let got = convert(&r, Version::V1_0_0, Version::V0_3_1).unwrap();
        assert_eq!(got["x-vendor"], json!({"k": 1}));
    }

    #[test]
    fn malformed_results_are_invalid_config() {
        for bad in [
            json!([]),
            json!({"ips": 3}),
            json!({"ips": [{"gateway": "10.0.0.1"}]}),
            json!({"ips": [{"address": "nonsense"}]}),
        ] {
            let e = convert(&bad, Version::V1_0_0, Version::V0_4_0).unwrap_err();
            assert_eq!(e.code, Code::InvalidConfig, "{bad}");
        }
    }

    #[test]
    fn result_version_prefers_the_result_own_field() {
        let conf = Version::V1_0_0;
        assert_eq!(result_version(&json!({}), conf).unwrap(), conf);
        assert_eq!(
            result_version(&json!({"cniVersion":"0.3.1"}), conf).unwrap(),
            Version::V0_3_1
        );
        assert_eq!(
            result_version(&json!({"cniVersion":"0.2.0"}), conf)
                .unwrap_err()
                .code,
            Code::IncompatibleVersion
        );
    }
}
