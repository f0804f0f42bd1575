//! Runs a conflist's plugins the way libcni does: ADD in order with each
//! result passed on as `prevResult`, CHECK and DEL with the cached final
//! result, DEL in reverse order.

use serde_json::{json, Value};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

#[derive(Debug, Clone)]
pub struct Chain {
    pub conflist: Value,
    /// The namespace plugins run in (the node), like a runtime on a host.
    pub node: String,
    pub plugin_dirs: Vec<PathBuf>,
}

/// A plugin that exited non-zero, with what it printed.
#[derive(Debug, Clone)]
pub struct PluginError {
    pub plugin: String,
    pub command: String,
    pub exit: i32,
    pub stdout: String,
    pub stderr: String,
}

impl PluginError {
    /// The CNI error object, when the plugin printed one.
    pub fn object(&self) -> Option<Value> {
        serde_json::from_str(&self.stdout).ok()
    }
    pub fn code(&self) -> Option<u64> {
        self.object()?.get("code")?.as_u64()
    }
    pub fn msg(&self) -> String {
        self.object()
            .and_then(|o| o.get("msg").and_then(Value::as_str).map(str::to_string))
            .unwrap_or_default()
    }
}

impl std::fmt::Display for PluginError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} exited {}: {} {}",
            self.plugin,
            self.command,
            self.exit,
            self.stdout.trim(),
            self.stderr.trim()
        )
    }
}

impl std::error::Error for PluginError {}

/// The original project's example conflist for node `node`: `bridge` on
/// `kbr0` with `host-local` handing out 10.244.`node`.10–250 of the flat
/// 10.244.0.0/16 (gateway .1), then `linen` as given.
pub fn example_conflist(
    name: &str,
    version: &str,
    node: usize,
    pod_mtu: u32,
    ipam_dir: &Path,
    linen: Value,
) -> Value {
    json!({
        "cniVersion": version,
        "name": name,
        "plugins": [
            {
                "type": "bridge",
                "bridge": "kbr0",
                "isGateway": true,
                "isDefaultGateway": true,
                "ipMasq": false,
                "mtu": pod_mtu,
                "hairpinMode": false,
                "ipam": {
                    "type": "host-local",
                    "subnet": "10.244.0.0/16",
                    "rangeStart": format!("10.244.{node}.10"),
                    "rangeEnd": format!("10.244.{node}.250"),
                    "gateway": format!("10.244.{node}.1"),
                    "dataDir": ipam_dir,
                }
            },
            linen
        ]
    })
}

/// Where Debian installs the reference plugins.
pub const DEBIAN_CNI_DIR: &str = "/usr/lib/cni";

/// A single invocation's environment and input.
pub struct Call<'a> {
    pub command: &'a str,
    pub container_id: &'a str,
    pub netns: &'a str,
    pub ifname: &'a str,
}

impl Chain {
    pub fn new(conflist: Value, node: &str, plugin_dirs: Vec<PathBuf>) -> Chain {
        Chain {
            conflist,
            node: node.to_string(),
            plugin_dirs,
        }
    }

    fn plugins(&self) -> Vec<Value> {
        self.conflist["plugins"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// The config one plugin sees: its own object plus the list's name and
    /// version, and the previous result.
    pub fn plugin_conf(&self, plugin: &Value, prev: Option<&Value>) -> Value {
        let mut conf = plugin.clone();
        conf["name"] = self.conflist["name"].clone();
        conf["cniVersion"] = self.conflist["cniVersion"].clone();
        if let Some(p) = prev {
            conf["prevResult"] = p.clone();
        }
        conf
    }

    pub fn add(
        &self,
        container_id: &str,
        netns: &Path,
        ifname: &str,
    ) -> Result<Value, PluginError> {
        let netns = netns.display().to_string();
        let mut prev: Option<Value> = None;
        for p in self.plugins() {
            let conf = self.plugin_conf(&p, prev.as_ref());
            let call = Call {
                command: "ADD",
                container_id,
                netns: &netns,
                ifname,
            };
            let out = self.exec(&p, &call, &conf)?;
            prev = Some(serde_json::from_str(&out).map_err(|e| PluginError {
                plugin: p["type"].to_string(),
                command: "ADD".into(),
                exit: 0,
                stdout: out.clone(),
                stderr: format!("result is not JSON: {e}"),
            })?);
        }
        Ok(prev.unwrap_or_else(|| json!({})))
    }

    pub fn check(
        &self,
        container_id: &str,
        netns: &Path,
        ifname: &str,
        cached: &Value,
    ) -> Result<(), PluginError> {
        let netns = netns.display().to_string();
        for p in self.plugins() {
            let conf = self.plugin_conf(&p, Some(cached));
            self.exec(
                &p,
                &Call {
                    command: "CHECK",
                    container_id,
                    netns: &netns,
                    ifname,
                },
                &conf,
            )?;
        }
        Ok(())
    }

    /// DEL in reverse order; `netns` may be empty and `cached` absent, as
    /// runtimes do on their second DEL of a pod.
    pub fn del(
        &self,
        container_id: &str,
        netns: &str,
        ifname: &str,
        cached: Option<&Value>,
    ) -> Result<(), PluginError> {
        for p in self.plugins().iter().rev() {
            let conf = self.plugin_conf(p, cached);
            self.exec(
                p,
                &Call {
                    command: "DEL",
                    container_id,
                    netns,
                    ifname,
                },
                &conf,
            )?;
        }
        Ok(())
    }

    pub fn find_plugin(&self, plugin_type: &str) -> Option<PathBuf> {
        self.plugin_dirs
            .iter()
            .map(|d| d.join(plugin_type))
            .find(|p| p.exists())
    }

    pub fn cni_path(&self) -> String {
        self.plugin_dirs
            .iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(":")
    }

    /// Runs one plugin in the node namespace and returns its stdout.
    pub fn exec(&self, plugin: &Value, call: &Call, conf: &Value) -> Result<String, PluginError> {
        let ty = plugin["type"].as_str().unwrap_or_default().to_string();
        let fail = |exit: i32, stdout: String, stderr: String| PluginError {
            plugin: ty.clone(),
            command: call.command.into(),
            exit,
            stdout,
            stderr,
        };
        let bin = self.find_plugin(&ty).ok_or_else(|| {
            fail(
                -1,
                String::new(),
                format!("plugin {ty} not found in {}", self.cni_path()),
            )
        })?;
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.node])
            .arg(&bin)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("CNI_COMMAND", call.command)
            .env("CNI_CONTAINERID", call.container_id)
            .env("CNI_NETNS", call.netns)
            .env("CNI_IFNAME", call.ifname)
            .env("CNI_ARGS", "IgnoreUnknown=1")
            .env("CNI_PATH", self.cni_path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .map_err(|e| fail(-1, String::new(), e.to_string()))?;
        let input = serde_json::to_vec(conf).expect("config serialises");
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin.write_all(&input);
        }
        let out = child
            .wait_with_output()
            .map_err(|e| fail(-1, String::new(), e.to_string()))?;
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        if !out.status.success() {
            return Err(fail(out.status.code().unwrap_or(-1), stdout, stderr));
        }
        Ok(stdout)
    }
}
