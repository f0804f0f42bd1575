//! Makes OVS match the membership: desired tunnels = peers minus this node
//! (shaped by the topology), actual = tunnel ports tagged as Linen's; the
//! difference goes in one transaction. Synchronous, on its own thread: the
//! OVSDB client and netlink are blocking, and reconciles must not overlap.

use crate::config::{Config, ConfigError, Topology};
use crate::membership::Peer;
use crate::metrics::Metrics;
use overlay::{BridgeSpec, Snapshot, TunnelSpec};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

const OVSDB_TIMEOUT: Duration = Duration::from_secs(5);
const APPLY_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error(transparent)]
    Ovsdb(#[from] ovsdb::Error),
    #[error(transparent)]
    Overlay(#[from] overlay::Error),
    #[error("netlink: {0}")]
    Netlink(#[from] rtlink::Error),
}

pub struct Reconciler {
    endpoint: ovsdb::Endpoint,
    spec: BridgeSpec,
    key: overlay::Key,
    dst_port: u16,
    linux_bridge: Option<String>,
    topology: Topology,
    hub: Option<String>,
    node_name: String,
    node_ip: std::net::IpAddr,
    client: Option<ovsdb::Client>,
    metrics: Arc<Metrics>,
}

/// What one reconcile did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Outcome {
    pub changes: usize,
    pub tunnels: usize,
    pub replugged: bool,
}

impl Reconciler {
    pub fn new(cfg: &Config, metrics: Arc<Metrics>) -> Result<Reconciler, ConfigError> {
        Ok(Reconciler {
            endpoint: cfg.ovs.endpoint()?,
            spec: BridgeSpec {
                name: cfg.ovs.bridge.clone(),
                datapath_type: cfg.ovs.datapath()?,
                controller: None,
                datapath_id: None,
                internal_mtu: None,
            },
            key: cfg.ovs.key()?,
            dst_port: cfg.ovs.dst_port,
            linux_bridge: cfg.ovs.linux_bridge.clone().filter(|b| !b.is_empty()),
            topology: cfg.topology,
            hub: cfg.hub.clone(),
            node_name: cfg.node_name.clone(),
            node_ip: cfg.node_ip,
            client: None,
            metrics,
        })
    }

    /// The tunnels this node should have: to everyone in a mesh; in a hub,
    /// the hub to every spoke (unprotected, it forwards between them) and a
    /// spoke to the hub only.
    pub fn desired(&self, peers: &BTreeMap<String, Peer>) -> Vec<TunnelSpec> {
        let others = peers
            .values()
            .filter(|p| p.name != self.node_name && p.ip != self.node_ip);
        let tunnel = |p: &Peer, protected: bool| TunnelSpec {
            remote: p.ip,
            key: self.key,
            dst_port: self.dst_port,
            protected,
        };
        let mut t: Vec<TunnelSpec> = match (self.topology, self.hub.as_deref()) {
            (Topology::Hub, Some(hub)) if hub == self.node_name => {
                others.map(|p| tunnel(p, false)).collect()
            }
            (Topology::Hub, Some(hub)) => others
                .filter(|p| p.name == hub)
                .map(|p| tunnel(p, true))
                .collect(),
            _ => others.map(|p| tunnel(p, true)).collect(),
        };
        // Two registrations with one address would be one port.
        t.sort_by_key(|t| t.remote);
        t.dedup_by_key(|t| t.remote);
        t
    }

    fn client(&mut self) -> Result<&mut ovsdb::Client, ReconcileError> {
        if self.client.is_none() {
            self.client = Some(ovsdb::Client::connect(&self.endpoint, OVSDB_TIMEOUT)?);
        }
        Ok(self.client.as_mut().expect("just connected"))
    }

    pub fn reconcile(&mut self, peers: &BTreeMap<String, Peer>) -> Result<Outcome, ReconcileError> {
        let start = Instant::now();
        let cached = self.client.is_some();
        let mut result = self.reconcile_inner(peers);
        if cached && matches!(&result, Err(ReconcileError::Ovsdb(e)) if e.is_disconnect()) {
            // The kept connection died while idle (a restarted server, or
            // inactivity probes on a TCP remote): one fresh try before
            // calling it a failure.
            self.client = None;
            result = self.reconcile_inner(peers);
        }
        self.metrics.reconciles.inc();
        self.metrics
            .reconcile_duration
            .observe(start.elapsed().as_secs_f64());
        match &result {
            Ok(o) => {
                self.metrics.tunnels.set(o.tunnels as i64);
                if o.changes > 0 || o.replugged {
                    tracing::info!(
                        changes = o.changes,
                        tunnels = o.tunnels,
                        replugged = o.replugged,
                        took_us = start.elapsed().as_micros() as u64,
                        "reconciled"
                    );
                }
            }
            Err(e) => {
                self.metrics.reconcile_errors.inc();
                // A broken connection is not reused; the next try reconnects.
                self.client = None;
                tracing::warn!(error = %e, "reconcile failed");
            }
        }
        result
    }

    fn reconcile_inner(
        &mut self,
        peers: &BTreeMap<String, Peer>,
    ) -> Result<Outcome, ReconcileError> {
        let mut desired = self.desired(peers);
        let spec = self.spec.clone();
        let mut changes = 0;
        let mut attempt = 0;
        while attempt < 3 {
            attempt += 1;
            let client = self.client()?;
            let snap = Snapshot::read(client, &spec.name)?;
            let diff = match overlay::diff(&snap, &spec, &desired, true) {
                Ok(d) => d,
                // A name taken by a port we do not own blocks that one
                // tunnel, never the rest of the mesh.
                Err(
                    overlay::Conflict::ForeignPort { port, .. }
                    | overlay::Conflict::PortElsewhere { port },
                ) if desired.iter().any(|t| t.port_name() == port) => {
                    tracing::warn!(%port, "a port Linen does not own has this tunnel's name; skipping the tunnel");
                    self.metrics.reconcile_errors.inc();
                    desired.retain(|t| t.port_name() != port);
                    attempt -= 1;
                    continue;
                }
                Err(c) => return Err(overlay::Error::from(c).into()),
            };
            if diff.is_empty() {
                break;
            }
            for c in &diff {
                tracing::debug!(change = %c, "applying");
            }
            match overlay::apply(client, &snap, &spec, &diff) {
                Ok(applied) => {
                    overlay::wait_applied(client, applied.next_cfg, APPLY_TIMEOUT)?;
                    changes = diff.len();
                    break;
                }
                Err(overlay::Error::Ovsdb(e)) if e.is_wait_timeout() && attempt < 3 => {}
                Err(e) => return Err(e.into()),
            }
        }
        let names: Vec<String> = desired.iter().map(TunnelSpec::port_name).collect();
        if let Err(e) = overlay::check_interfaces(self.client()?, &names) {
            // OVS refusing one tunnel must not stop the others being kept.
            self.metrics.reconcile_errors.inc();
            tracing::warn!(error = %e, "Open vSwitch refused a tunnel");
        }
        let replugged = self.replug()?;
        Ok(Outcome {
            changes,
            tunnels: desired.len(),
            replugged,
        })
    }

    /// Puts the bridge's internal device back into the Linux bridge when OVS
    /// recreated it (a restarted ovs-vswitchd with the kernel datapath).
    fn replug(&self) -> Result<bool, ReconcileError> {
        let Some(lb) = &self.linux_bridge else {
            return Ok(false);
        };
        let mut nl = rtlink::Netlink::open()?;
        let (Some(kbr), Some(dev)) = (nl.link_by_name(lb)?, nl.link_by_name(&self.spec.name)?)
        else {
            // No pod yet (no Linux bridge) or no device yet: nothing to plug.
            return Ok(false);
        };
        let mut changed = false;
        if dev.master != Some(kbr.index) {
            nl.set_master(dev.index, kbr.index)?;
            changed = true;
        }
        if !dev.up {
            nl.set_up(dev.index)?;
            changed = true;
        }
        Ok(changed)
    }
}

/// Messages to the reconcile thread.
pub enum Msg {
    /// The complete desired membership.
    Peers(BTreeMap<String, Peer>),
    /// Something in OVS changed, or a resync is due.
    Poke,
    Stop,
}

/// Shared view of the reconciler's health, for /readyz.
#[derive(Default)]
pub struct Status {
    pub membership_known: std::sync::atomic::AtomicBool,
    pub last_ok: std::sync::atomic::AtomicBool,
}

/// Runs reconciles until `Stop`: bursts of messages are coalesced into one
/// reconcile, failures are retried with backoff. Never prunes before the
/// membership is known: an empty set at start-up would remove every tunnel.
pub fn run(
    mut rec: Reconciler,
    rx: std::sync::mpsc::Receiver<Msg>,
    status: Arc<Status>,
    require_self: bool,
) {
    use std::sync::atomic::Ordering;
    use std::sync::mpsc::RecvTimeoutError;
    let mut peers: Option<BTreeMap<String, Peer>> = None;
    let mut retry_at: Option<Instant> = None;
    let mut backoff = crate::membership::Backoff::default();
    loop {
        let first = match retry_at {
            Some(at) => match rx.recv_timeout(at.saturating_duration_since(Instant::now())) {
                Ok(m) => Some(m),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => return,
            },
            None => match rx.recv() {
                Ok(m) => Some(m),
                Err(_) => return,
            },
        };
        for msg in first
            .into_iter()
            .chain(std::iter::from_fn(|| rx.try_recv().ok()))
        {
            match msg {
                Msg::Peers(p) => {
                    peers = Some(p);
                    status.membership_known.store(true, Ordering::SeqCst);
                }
                Msg::Poke => {}
                Msg::Stop => return,
            }
        }
        let Some(peers) = &peers else { continue };
        // A store that registers this node but does not list it is not
        // telling the whole truth (a misconfigured filter, a half-expired
        // registration): acting on it could prune the whole mesh.
        if require_self && !peers.contains_key(&rec.node_name) {
            tracing::warn!(node = %rec.node_name, "membership does not include this node; not reconciling until it does");
            status.last_ok.store(false, Ordering::SeqCst);
            // Nothing to retry until the membership changes: without this a
            // pending retry time would turn the wait into a busy loop.
            retry_at = None;
            continue;
        }
        match rec.reconcile(peers) {
            Ok(_) => {
                status.last_ok.store(true, Ordering::SeqCst);
                retry_at = None;
                backoff.reset();
            }
            Err(_) => {
                status.last_ok.store(false, Ordering::SeqCst);
                retry_at = Some(Instant::now() + backoff.next_delay());
            }
        }
    }
}
