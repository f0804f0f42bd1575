//! The entry point every CNI plugin shares: read the environment and stdin,
//! dispatch on `CNI_COMMAND`, print exactly one result or error object.

use crate::conf::{sniff_version, NetConf};
use crate::env::{Command, Env};
use crate::error::{CniError, Code};
use crate::version::Version;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::Write;

/// What a plugin implements; the dispatcher handles everything generic.
pub trait Plugin {
    /// Returns the result to print (already in the configuration's version).
    fn add(&self, env: &Env, conf: &NetConf) -> Result<Value, CniError>;
    fn del(&self, env: &Env, conf: &NetConf) -> Result<(), CniError>;
    fn check(&self, env: &Env, conf: &NetConf) -> Result<(), CniError>;
    fn status(&self, conf: &NetConf) -> Result<(), CniError>;
    fn gc(&self, conf: &NetConf) -> Result<(), CniError>;
}

/// Runs one plugin invocation and returns the process exit code. Nothing but
/// the result or the error object is written to `stdout`.
pub fn run(
    plugin: &impl Plugin,
    vars: &HashMap<String, String>,
    stdin: &[u8],
    stdout: &mut impl Write,
) -> i32 {
    let reply_version = sniff_version(stdin)
        .filter(|v| v.parse::<Version>().is_ok())
        .unwrap_or_else(|| Version::LATEST.as_str().to_string());
    let outcome = Env::from_map(vars).and_then(|env| dispatch(plugin, &env, stdin));
    let (code, body) = match outcome {
        Ok(Some(v)) => (0, Some(v)),
        Ok(None) => (0, None),
        Err(e) => (1, Some(e.to_json(&reply_version))),
    };
    if let Some(body) = body {
        // A runtime that closed our stdout cannot be told anything more.
        let _ = serde_json::to_writer(&mut *stdout, &body);
        let _ = stdout.write_all(b"\n");
        let _ = stdout.flush();
    }
    code
}

fn dispatch(plugin: &impl Plugin, env: &Env, stdin: &[u8]) -> Result<Option<Value>, CniError> {
    if env.command == Command::Version {
        return Ok(Some(version_reply(stdin)));
    }
    let conf = match NetConf::parse(stdin) {
        Ok(c) => c,
        // Runtimes stop a chain's DEL at the first failing plugin: one that
        // cannot read its config must not keep the others from cleaning up.
        Err(_) if env.command == Command::Del => return Ok(None),
        Err(e) => return Err(e),
    };
    match env.command {
        Command::Add => plugin.add(env, &conf).map(Some),
        Command::Del => plugin.del(env, &conf).map(|()| None),
        Command::Check => {
            if !conf.cni_version.supports_check() {
                return Err(CniError::new(
                    Code::IncompatibleVersion,
                    format!("config version {} does not allow CHECK", conf.cni_version),
                ));
            }
            plugin.check(env, &conf).map(|()| None)
        }
        Command::Status => plugin.status(&conf).map(|()| None),
        Command::Gc => plugin.gc(&conf).map(|()| None),
        Command::Version => unreachable!("handled above"),
    }
}

/// Runtimes call VERSION with dummy variables and stdin holding only the
/// config's version (or nothing); it must never fail on that.
fn version_reply(stdin: &[u8]) -> Value {
    let asked = sniff_version(stdin)
        .filter(|v| v.parse::<Version>().is_ok())
        .unwrap_or_else(|| Version::LATEST.as_str().to_string());
    json!({
        "cniVersion": asked,
        "supportedVersions": Version::ALL.iter().map(|v| v.as_str()).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    #[derive(Default)]
    struct Recorder {
        calls: RefCell<Vec<&'static str>>,
    }

    impl Plugin for Recorder {
        fn add(&self, _: &Env, conf: &NetConf) -> Result<Value, CniError> {
            self.calls.borrow_mut().push("add");
            Ok(json!({"cniVersion": conf.cni_version_raw}))
        }
        fn del(&self, _: &Env, _: &NetConf) -> Result<(), CniError> {
            self.calls.borrow_mut().push("del");
            Ok(())
        }
        fn check(&self, _: &Env, _: &NetConf) -> Result<(), CniError> {
            self.calls.borrow_mut().push("check");
            Ok(())
        }
        fn status(&self, _: &NetConf) -> Result<(), CniError> {
            self.calls.borrow_mut().push("status");
            Err(CniError::new(Code::NotAvailable, "down"))
        }
        fn gc(&self, _: &NetConf) -> Result<(), CniError> {
            self.calls.borrow_mut().push("gc");
            Ok(())
        }
    }

    fn call(cmd: &str, stdin: &str) -> (i32, String, Vec<&'static str>) {
        let p = Recorder::default();
        let vars: HashMap<String, String> = [
            ("CNI_COMMAND", cmd),
            ("CNI_CONTAINERID", "c1"),
            ("CNI_NETNS", "/var/run/netns/p"),
            ("CNI_IFNAME", "eth0"),
            ("CNI_PATH", "/opt/cni/bin"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let mut out = Vec::new();
        let code = run(&p, &vars, stdin.as_bytes(), &mut out);
        let calls = p.calls.borrow().clone();
        (code, String::from_utf8(out).unwrap(), calls)
    }

    #[test]
    fn version_lists_every_supported_version_even_with_dummy_input() {
        for stdin in ["", r#"{"cniVersion":"0.4.0"}"#, "junk"] {
            let (code, out, calls) = call("VERSION", stdin);
            assert_eq!(code, 0);
            assert!(calls.is_empty());
            let v: Value = serde_json::from_str(&out).unwrap();
            assert_eq!(
                v["supportedVersions"],
                json!(["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"])
            );
        }
        let (_, out, _) = call("VERSION", r#"{"cniVersion":"0.4.0"}"#);
        assert_eq!(
            serde_json::from_str::<Value>(&out).unwrap()["cniVersion"],
            "0.4.0"
        );
    }

    #[test]
    fn check_is_refused_below_0_4_0_without_calling_the_plugin() {
        let (code, out, calls) = call("CHECK", r#"{"cniVersion":"0.3.1","name":"n"}"#);
        assert_ne!(code, 0);
        assert!(calls.is_empty());
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["code"], 1);
        assert_eq!(v["cniVersion"], "0.3.1");
    }

    #[test]
    fn del_check_and_gc_print_nothing_on_success() {
        for cmd in ["DEL", "CHECK", "GC"] {
            let (code, out, calls) = call(cmd, r#"{"cniVersion":"1.0.0","name":"n"}"#);
            assert_eq!(code, 0, "{cmd}");
            assert!(out.is_empty(), "{cmd}: {out}");
            assert_eq!(calls.len(), 1);
        }
    }

    #[test]
    fn plugin_errors_become_error_objects_in_the_callers_version() {
        let (code, out, _) = call("STATUS", r#"{"cniVersion":"1.1.0","name":"n"}"#);
        assert_ne!(code, 0);
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v, json!({"cniVersion":"1.1.0","code":50,"msg":"down"}));
    }

    #[test]
    fn del_with_an_unreadable_config_succeeds_so_the_chain_cleanup_goes_on() {
        for stdin in [
            "{{{",
            r#"{"cniVersion":"0.2.0"}"#,
            r#"{"name":"no version"}"#,
        ] {
            let (code, out, _) = call("DEL", stdin);
            assert_eq!((code, out.as_str()), (0, ""), "{stdin}");
        }
    }

    #[test]
    fn undecodable_stdin_is_code_6_and_stdout_holds_one_object() {
        let (code, out, calls) = call("ADD", "{{{");
        assert_ne!(code, 0);
        assert!(calls.is_empty());
        assert_eq!(out.lines().count(), 1);
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["code"], 6);
    }
}
