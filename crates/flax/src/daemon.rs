//! Wires the pieces together: membership backend → desired peers →
//! reconcile thread, with the OVSDB monitor, a periodic resync, the HTTP
//! endpoints and clean shutdown.

use crate::config::{BackendKind, Config};
use crate::membership::{self, Event, Peer};
use crate::metrics::Metrics;
use crate::reconcile::{self, Msg, Reconciler, Status};
use anyhow::Context;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Applies one membership event to the known peers.
pub fn apply_event(peers: &mut BTreeMap<String, Peer>, ev: Event) {
    match ev {
        Event::Reset(all) => *peers = all.into_iter().map(|p| (p.name.clone(), p)).collect(),
        Event::Upsert(p) => {
            peers.insert(p.name.clone(), p);
        }
        Event::Remove(name) => {
            peers.remove(&name);
        }
        Event::LocalSubnet(_) => {}
    }
}

/// Runs until SIGTERM/SIGINT. Tunnels are left in place on the way out, so
/// pods keep talking while flax restarts.
pub async fn run(cfg: Config) -> anyhow::Result<()> {
    cfg.validate()?;
    let metrics = Arc::new(Metrics::default());
    let status = Arc::new(Status::default());
    let rec = Reconciler::new(&cfg, metrics.clone())?;
    let (to_rec, rec_rx) = std::sync::mpsc::channel::<Msg>();
    let status2 = status.clone();
    // Stores where this node registers itself must list it; a static file
    // may leave it out.
    let require_self = cfg.backend != BackendKind::Static;
    let rec_thread = std::thread::Builder::new()
        .name("reconcile".into())
        .spawn(move || reconcile::run(rec, rec_rx, status2, require_self))?;
    let stop = Arc::new(AtomicBool::new(false));
    let (endpoint, poke, stop2) = (cfg.ovs.endpoint()?, to_rec.clone(), stop.clone());
    let mon_thread = std::thread::Builder::new()
        .name("ovsdb-monitor".into())
        .spawn(move || crate::monitor::run(endpoint, poke, stop2))?;

    let listener = tokio::net::TcpListener::bind(cfg.metrics_address)
        .await
        .with_context(|| format!("cannot listen on {}", cfg.metrics_address))?;
    tracing::info!(address = %cfg.metrics_address, "serving /metrics /healthz /readyz");
    let router = crate::metrics::router(metrics.clone(), status);
    let http = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            tracing::error!(error = %e, "HTTP server stopped");
        }
    });

    let (tx, mut events) = mpsc::channel::<Event>(1024);
    let me = Peer {
        name: cfg.node_name.clone(),
        ip: cfg.node_ip,
        pod_cidr: cfg.cni.as_ref().and_then(|c| c.pod_cidr),
    };
    let backend = match cfg.backend {
        BackendKind::Etcd => tokio::spawn(membership::etcd::run(
            cfg.etcd.clone().expect("validated"),
            me,
            tx,
        )),
        BackendKind::Kubernetes => tokio::spawn(membership::kubernetes::run(
            cfg.kubernetes.clone(),
            cfg.node_name.clone(),
            tx,
        )),
        BackendKind::Static => tokio::spawn(membership::static_file::run(
            cfg.static_peers.clone().expect("validated"),
            cfg.node_name.clone(),
            tx,
        )),
    };
    if let (Some(cni), Some(subnet)) = (&cfg.cni, cfg.cni.as_ref().and_then(|c| c.pod_cidr)) {
        render(cni, &cfg, subnet);
    }

    let mut peers: BTreeMap<String, Peer> = BTreeMap::new();
    let mut resync = tokio::time::interval(Duration::from_secs(cfg.resync_seconds));
    resync.tick().await;
    let mut failed: Option<&str> = None;
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        tokio::select! {
            ev = events.recv() => {
                let Some(ev) = ev else {
                    // Backends run until shut down; one that stops has failed.
                    failed = Some("the membership backend stopped");
                    break;
                };
                metrics.membership_events.inc();
                tracing::debug!(event = ?ev, "membership");
                if let Event::LocalSubnet(subnet) = &ev {
                    if let Some(cni) = &cfg.cni {
                        render(cni, &cfg, *subnet);
                    }
                    continue;
                }
                apply_event(&mut peers, ev);
                metrics.peers.set(peers.len() as i64);
                let _ = to_rec.send(Msg::Peers(peers.clone()));
            }
            _ = resync.tick() => { let _ = to_rec.send(Msg::Poke); }
            _ = sigterm.recv() => { tracing::info!("SIGTERM: stopping, tunnels stay"); break; }
            _ = tokio::signal::ctrl_c() => { tracing::info!("SIGINT: stopping, tunnels stay"); break; }
        }
    }
    backend.abort();
    http.abort();
    stop.store(true, Ordering::SeqCst);
    let _ = to_rec.send(Msg::Stop);
    let _ = rec_thread.join();
    let _ = mon_thread.join();
    match failed {
        Some(why) => Err(anyhow::anyhow!(why)),
        None => Ok(()),
    }
}

fn render(cni: &crate::config::CniConfig, cfg: &Config, subnet: ipnet::IpNet) {
    match crate::render::write(cni, &cfg.ovs, subnet, cni.pod_mtu(cfg.node_ip.is_ipv6())) {
        Ok(Some(path)) => tracing::info!(path = %path.display(), %subnet, "conflist written"),
        Ok(None) => {}
        Err(e) => tracing::error!(error = %e, "cannot write the conflist"),
    }
}
