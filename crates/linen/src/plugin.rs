//! The CNI verbs. ADD makes the node's overlay wiring right and passes the
//! previous result on; everything it touches is shared node infrastructure,
//! so DEL removes nothing.

use crate::config::{validate_ifname, Config};
use crate::lock;
use crate::log::Log;
use cni::{result, CniError, Code, Env, NetConf, Plugin};
use overlay::{BridgeSpec, Change, Snapshot};
use rtlink::{Link, Netlink};
use serde_json::Value;
use std::cell::RefCell;
use std::path::PathBuf;
use std::time::Duration;

const OVSDB_TIMEOUT: Duration = Duration::from_secs(5);
/// How long ovs-vswitchd may take to apply a change and create the
/// bridge's internal device.
const APPLY_TIMEOUT: Duration = Duration::from_secs(10);
/// Optimistic transactions retried when OVS changed between read and write.
const APPLY_ATTEMPTS: usize = 3;

pub struct Linen {
    pub log: RefCell<Log>,
    pub run_dir: PathBuf,
}

impl Default for Linen {
    fn default() -> Self {
        Linen {
            log: RefCell::default(),
            run_dir: PathBuf::from(lock::RUN_DIR),
        }
    }
}

fn err(code: Code, msg: impl Into<String>) -> CniError {
    CniError::new(code, msg)
}

fn kernel(e: rtlink::Error) -> CniError {
    err(Code::Kernel, "netlink operation failed").with_details(e.to_string())
}

fn unreachable_ovsdb(cfg: &Config, e: ovsdb::Error, code: Code) -> CniError {
    err(code, format!("OVSDB at {} is not reachable", cfg.ovsdb)).with_details(e.to_string())
}

fn overlay_err(e: overlay::Error) -> CniError {
    match e {
        overlay::Error::Conflict(c) => err(Code::OvsRefused, c.to_string()),
        overlay::Error::Refused { .. } => err(Code::OvsRefused, e.to_string()),
        overlay::Error::NotApplied { .. } => err(Code::TryAgainLater, e.to_string()),
        // A lost connection may come back; a request OVSDB rejected (an
        // unknown column on an old OVS, a constraint) will be rejected again.
        overlay::Error::Ovsdb(ref o) if !o.is_disconnect() && !o.is_wait_timeout() => {
            err(Code::OvsRefused, "OVSDB rejected the request").with_details(e.to_string())
        }
        overlay::Error::Ovsdb(_) | overlay::Error::Unexpected(_) => {
            err(Code::TryAgainLater, "OVSDB request failed").with_details(e.to_string())
        }
    }
}

/// The Linux bridge the previous plugin attached the pod to: among the
/// interfaces without a `sandbox`, the one the kernel says is a bridge (the
/// host end of the pod's veth has no sandbox either).
fn linux_bridge(nl: &mut Netlink, prev: &Value) -> Result<Link, CniError> {
    let candidates: Vec<&str> = prev
        .get("interfaces")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|i| {
            i.get("sandbox")
                .and_then(Value::as_str)
                .unwrap_or("")
                .is_empty()
        })
        .filter_map(|i| i.get("name").and_then(Value::as_str))
        .collect();
    for name in &candidates {
        validate_ifname("prevResult interface", name)?;
        if let Some(link) = nl.link_by_name(name).map_err(kernel)? {
            if link.kind.as_deref() == Some("bridge") {
                return Ok(link);
            }
        }
    }
    Err(err(
        Code::InvalidConfig,
        "prevResult names no Linux bridge on this host; linen must follow the bridge plugin",
    )
    .with_details(format!(
        "host-side interfaces in prevResult: {candidates:?}"
    )))
}

fn prev_result(conf: &NetConf) -> Result<&Value, CniError> {
    conf.prev_result.as_ref().ok_or_else(|| {
        err(
            Code::InvalidConfig,
            "linen must be called as a chained plugin (no prevResult)",
        )
    })
}

/// Problems OVS itself reported on interfaces we want, read from the
/// snapshot we already have.
fn refused_interfaces(
    snap: &Snapshot,
    names: impl IntoIterator<Item = String>,
) -> Option<CniError> {
    names.into_iter().find_map(|name| {
        let (_, iface) = snap.bridge_port(&name)?;
        let iface = iface?;
        (iface.error.is_some() || iface.ofport == Some(-1)).then(|| {
            err(
                Code::OvsRefused,
                format!(
                    "Open vSwitch refused {name}: {}",
                    iface.error.as_deref().unwrap_or("ofport is -1")
                ),
            )
        })
    })
}

impl Linen {
    fn step(&self, msg: impl AsRef<str>) {
        self.log.borrow_mut().step(msg);
    }

    fn config(&self, conf: &NetConf) -> Result<Config, CniError> {
        let cfg = Config::from_netconf(conf)?;
        self.log.borrow_mut().path = cfg.log_file.clone();
        Ok(cfg)
    }

    /// Reads, diffs and applies under the bridge lock, retrying when someone
    /// else changed OVS in between. Returns the tunnel ports it created.
    fn converge(
        &self,
        client: &mut ovsdb::Client,
        cfg: &Config,
        spec: &BridgeSpec,
    ) -> Result<Vec<String>, CniError> {
        let _lock = lock::acquire(
            &self.run_dir,
            &cfg.bridge,
            &cfg.ovsdb.to_string(),
            cfg.lock_timeout,
        )
        .map_err(|e| err(Code::TryAgainLater, e.to_string()))?;
        self.step("bridge lock taken");
        let tunnels = cfg.tunnels();
        for attempt in 1..=APPLY_ATTEMPTS {
            let snap = Snapshot::read(client, &cfg.bridge).map_err(overlay_err)?;
            let changes =
                overlay::diff(&snap, spec, &tunnels, false).map_err(|c| overlay_err(c.into()))?;
            if changes.is_empty() {
                return Ok(vec![]);
            }
            self.step(format!("applying: {}", describe(&changes)));
            match overlay::apply(client, &snap, spec, &changes) {
                Ok(applied) => {
                    overlay::wait_applied(client, applied.next_cfg, APPLY_TIMEOUT)
                        .map_err(overlay_err)?;
                    self.step(format!("ovs-vswitchd applied cfg {}", applied.next_cfg));
                    return Ok(applied.created_tunnels);
                }
                Err(overlay::Error::Ovsdb(e))
                    if e.is_wait_timeout() && attempt < APPLY_ATTEMPTS =>
                {
                    self.step("OVS changed under us; re-reading");
                }
                Err(e) => return Err(overlay_err(e)),
            }
        }
        Err(err(
            Code::TryAgainLater,
            "OVS kept changing while linen tried to apply its configuration",
        ))
    }

    /// Makes sure OVS took every port we want; on refusal, takes back the
    /// tunnels this invocation created so the node is not left half-wired.
    fn verify_ports(
        &self,
        client: &mut ovsdb::Client,
        cfg: &Config,
        created: &[String],
    ) -> Result<(), CniError> {
        let mut names: Vec<String> = cfg.tunnel_ports();
        names.push(cfg.bridge.clone());
        if let Err(e) = overlay::check_interfaces(client, &names) {
            if !created.is_empty() {
                let undo = overlay::remove_ports(client, &cfg.bridge, created);
                self.step(format!(
                    "removed the tunnels just created ({created:?}): {undo:?}"
                ));
            }
            return Err(overlay_err(e));
        }
        Ok(())
    }

    /// Brings the bridge's internal device up and enslaves it to the Linux
    /// bridge; changes nothing when it already is.
    fn plug(&self, nl: &mut Netlink, cfg: &Config, kbr: &Link) -> Result<(), CniError> {
        let dev = nl
            .wait_for_link(&cfg.bridge, APPLY_TIMEOUT)
            .map_err(kernel)?;
        if dev.master != Some(kbr.index) {
            nl.set_master(dev.index, kbr.index).map_err(kernel)?;
            self.step(format!("enslaved {} to {}", cfg.bridge, kbr.name));
        }
        if !dev.up {
            nl.set_up(dev.index).map_err(kernel)?;
            self.step(format!("set {} up", cfg.bridge));
        }
        Ok(())
    }
}

fn describe(changes: &[Change]) -> String {
    changes
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl Plugin for Linen {
    fn add(&self, _env: &Env, conf: &NetConf) -> Result<Value, CniError> {
        // Everything is validated before anything is touched.
        let cfg = self.config(conf)?;
        let prev = prev_result(conf)?;
        let from = result::result_version(prev, conf.cni_version)?;
        let output = result::convert(prev, from, conf.cni_version)?;
        let mut nl = Netlink::open().map_err(kernel)?;
        let kbr = linux_bridge(&mut nl, prev)?;
        self.step(format!(
            "linux bridge {} (index {}, mtu {:?})",
            kbr.name, kbr.index, kbr.mtu
        ));
        let spec = cfg.bridge_spec(kbr.mtu);

        let mut client = ovsdb::Client::connect(&cfg.ovsdb, OVSDB_TIMEOUT)
            .map_err(|e| unreachable_ovsdb(&cfg, e, Code::TryAgainLater))?;
        let snap = Snapshot::read(&mut client, &cfg.bridge).map_err(overlay_err)?;
        let changes = overlay::diff(&snap, &spec, &cfg.tunnels(), false)
            .map_err(|c| overlay_err(c.into()))?;
        self.step(format!("ovsdb read: {} change(s)", changes.len()));
        if changes.is_empty() {
            // Warm path: nothing to write; still refuse to report success
            // over a port OVS could not bring up.
            if let Some(e) = refused_interfaces(&snap, cfg.tunnel_ports()) {
                return Err(e);
            }
        } else {
            let created = self.converge(&mut client, &cfg, &spec)?;
            self.verify_ports(&mut client, &cfg, &created)?;
        }
        self.plug(&mut nl, &cfg, &kbr)?;
        self.step("done");
        Ok(output)
    }

    fn del(&self, _env: &Env, conf: &NetConf) -> Result<(), CniError> {
        // The bridge and tunnels serve every pod on the node: nothing of this
        // attachment is Linen's to remove. A config we cannot read must not
        // block the runtime's cleanup, so DEL never fails on it.
        match self.config(conf) {
            Ok(cfg) => self.step(format!("DEL: nothing to remove on {}", cfg.bridge)),
            Err(e) => self.step(format!("DEL: ignoring unreadable config: {e}")),
        }
        Ok(())
    }

    fn check(&self, _env: &Env, conf: &NetConf) -> Result<(), CniError> {
        let cfg = self.config(conf)?;
        let prev = prev_result(conf)?;
        let mut nl = Netlink::open().map_err(kernel)?;
        let kbr = linux_bridge(&mut nl, prev)?;
        let spec = cfg.bridge_spec(kbr.mtu);
        let mut client = ovsdb::Client::connect(&cfg.ovsdb, OVSDB_TIMEOUT)
            .map_err(|e| unreachable_ovsdb(&cfg, e, Code::TryAgainLater))?;
        let snap = Snapshot::read(&mut client, &cfg.bridge).map_err(overlay_err)?;

        let mut drift: Vec<String> = match overlay::diff(&snap, &spec, &cfg.tunnels(), false) {
            Ok(changes) => changes
                .iter()
                .map(|c| format!("{}: {c}", cfg.bridge))
                .collect(),
            Err(c) => vec![c.to_string()],
        };
        let mut wanted: Vec<String> = cfg.tunnel_ports();
        wanted.push(cfg.bridge.clone());
        if let Some(e) = refused_interfaces(&snap, wanted) {
            drift.push(e.msg);
        }
        if snap.bridge.is_some() {
            match nl.link_by_name(&cfg.bridge).map_err(kernel)? {
                None => drift.push(format!(
                    "internal device {} does not exist in the kernel",
                    cfg.bridge
                )),
                Some(dev) => {
                    if dev.master != Some(kbr.index) {
                        let actual = match dev.master {
                            Some(m) => nl
                                .link_by_index(m)
                                .map_err(kernel)?
                                .map_or(format!("index {m}"), |l| l.name),
                            None => "no bridge".into(),
                        };
                        drift.push(format!(
                            "internal port {} is not enslaved to {} (master: {actual})",
                            cfg.bridge, kbr.name
                        ));
                    }
                    if !dev.up {
                        drift.push(format!("internal port {} is down", cfg.bridge));
                    }
                }
            }
        }
        if drift.is_empty() {
            Ok(())
        } else {
            Err(err(
                Code::Drift,
                format!(
                    "node wiring differs from the configuration: {}",
                    drift.join("; ")
                ),
            ))
        }
    }

    fn status(&self, conf: &NetConf) -> Result<(), CniError> {
        let cfg = self.config(conf)?;
        let mut client = ovsdb::Client::connect(&cfg.ovsdb, OVSDB_TIMEOUT)
            .map_err(|e| unreachable_ovsdb(&cfg, e, Code::NotAvailable))?;
        client
            .echo()
            .map_err(|e| unreachable_ovsdb(&cfg, e, Code::NotAvailable))
    }

    fn gc(&self, conf: &NetConf) -> Result<(), CniError> {
        // Linen keeps no per-attachment state, so there is nothing to collect.
        let _ = self.config(conf);
        Ok(())
    }
}
