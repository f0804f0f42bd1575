use crate::error::{CniError, Code};
use std::collections::HashMap;

/// The operation a runtime asks for in `CNI_COMMAND`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Add,
    Del,
    Check,
    Version,
    Status,
    Gc,
}

impl Command {
    fn parse(s: &str) -> Option<Command> {
        Some(match s {
            "ADD" => Command::Add,
            "DEL" => Command::Del,
            "CHECK" => Command::Check,
            "VERSION" => Command::Version,
            "STATUS" => Command::Status,
            "GC" => Command::Gc,
            _ => return None,
        })
    }

    /// The variables the spec makes mandatory for each operation.
    fn required(self) -> &'static [&'static str] {
        match self {
            Command::Add | Command::Check => &["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"],
            Command::Del => &["CNI_CONTAINERID", "CNI_IFNAME"],
            Command::Version | Command::Status | Command::Gc => &[],
        }
    }
}

/// The `CNI_*` environment contract, validated for the command at hand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Env {
    pub command: Command,
    pub container_id: String,
    pub netns: String,
    pub ifname: String,
    /// `CNI_ARGS` as key/value pairs (`IgnoreUnknown=1;K8S_POD_NAME=...`).
    pub args: Vec<(String, String)>,
    pub path: Vec<String>,
}

impl Env {
    pub fn from_process() -> Result<Env, CniError> {
        Env::from_map(&std::env::vars().collect())
    }

    pub fn from_map(vars: &HashMap<String, String>) -> Result<Env, CniError> {
        let get = |k: &str| vars.get(k).cloned().unwrap_or_default();
        let raw = get("CNI_COMMAND");
        if raw.is_empty() {
            return Err(CniError::new(Code::InvalidEnv, "CNI_COMMAND is not set"));
        }
        let command = Command::parse(&raw).ok_or_else(|| {
            CniError::new(Code::InvalidEnv, format!("unknown CNI_COMMAND {raw:?}"))
        })?;
        let missing: Vec<&str> = command
            .required()
            .iter()
            .copied()
            .filter(|k| get(k).is_empty())
            .collect();
        if !missing.is_empty() {
            return Err(CniError::new(
                Code::InvalidEnv,
                format!(
                    "required environment variables missing: {}",
                    missing.join(", ")
                ),
            ));
        }
        let container_id = get("CNI_CONTAINERID");
        // The spec restricts container IDs to these characters; anything
        // else means the runtime is broken or the caller is not a runtime.
        if !container_id.is_empty()
            && !container_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
        {
            return Err(CniError::new(
                Code::InvalidEnv,
                format!("CNI_CONTAINERID {container_id:?} has invalid characters"),
            ));
        }
        let ifname = get("CNI_IFNAME");
        if ifname.len() > 15 || ifname.contains('/') || ifname.chars().any(char::is_whitespace) {
            return Err(CniError::new(
                Code::InvalidEnv,
                format!("CNI_IFNAME {ifname:?} is not a valid interface name"),
            ));
        }
        let args = parse_args(&get("CNI_ARGS"))
            .map_err(|e| CniError::new(Code::InvalidEnv, format!("CNI_ARGS is malformed: {e}")))?;
        Ok(Env {
            command,
            container_id,
            netns: get("CNI_NETNS"),
            ifname,
            args,
            path: get("CNI_PATH")
                .split(':')
                .filter(|p| !p.is_empty())
                .map(str::to_string)
                .collect(),
        })
    }
}

fn parse_args(raw: &str) -> Result<Vec<(String, String)>, String> {
    raw.split(';')
        .filter(|kv| !kv.is_empty())
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => Err(format!("{kv:?} is not KEY=VALUE")),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(kv: &[(&str, &str)]) -> HashMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn add_needs_container_netns_and_ifname() {
        let e =
            Env::from_map(&vars(&[("CNI_COMMAND", "ADD"), ("CNI_IFNAME", "eth0")])).unwrap_err();
        assert_eq!(e.code, Code::InvalidEnv);
        assert!(e.msg.contains("CNI_CONTAINERID"), "{}", e.msg);
        assert!(e.msg.contains("CNI_NETNS"), "{}", e.msg);
    }

    #[test]
    fn del_accepts_an_empty_netns() {
        let e = Env::from_map(&vars(&[
            ("CNI_COMMAND", "DEL"),
            ("CNI_CONTAINERID", "abc"),
            ("CNI_IFNAME", "eth0"),
            ("CNI_NETNS", ""),
        ]))
        .unwrap();
        assert_eq!(e.command, Command::Del);
        assert!(e.netns.is_empty());
    }

    #[test]
    fn version_needs_nothing_but_the_command() {
        let e = Env::from_map(&vars(&[("CNI_COMMAND", "VERSION")])).unwrap();
        assert_eq!(e.command, Command::Version);
    }

    #[test]
    fn unknown_or_missing_command_is_code_4() {
        for m in [vars(&[]), vars(&[("CNI_COMMAND", "FROB")])] {
            assert_eq!(Env::from_map(&m).unwrap_err().code, Code::InvalidEnv);
        }
    }

    #[test]
    fn bad_container_id_ifname_and_args_are_code_4() {
        let base = [
            ("CNI_COMMAND", "ADD"),
            ("CNI_NETNS", "/var/run/netns/x"),
            ("CNI_CONTAINERID", "abc"),
            ("CNI_IFNAME", "eth0"),
        ];
        for (k, v) in [
            ("CNI_CONTAINERID", "a b"),
            ("CNI_IFNAME", "averyveryverylongname"),
            ("CNI_ARGS", "novalue"),
        ] {
            let mut m = vars(&base);
            m.insert(k.into(), v.into());
            assert_eq!(
                Env::from_map(&m).unwrap_err().code,
                Code::InvalidEnv,
                "{k}={v}"
            );
        }
    }

    #[test]
    fn cni_args_are_split_into_pairs() {
        let mut m = vars(&[("CNI_COMMAND", "VERSION")]);
        m.insert(
            "CNI_ARGS".into(),
            "IgnoreUnknown=1;K8S_POD_NAME=web-0".into(),
        );
        let e = Env::from_map(&m).unwrap();
        assert_eq!(
            e.args,
            vec![
                ("IgnoreUnknown".into(), "1".into()),
                ("K8S_POD_NAME".into(), "web-0".into())
            ]
        );
    }
}
