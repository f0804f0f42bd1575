//! The `etcd` (v3) backend. Each node registers `<prefix>/nodes/<name>`
//! under a lease it keeps alive, so a dead node disappears when the lease
//! runs out; every node watches the prefix. Pod subnets are reserved under
//! `<prefix>/subnets/` with a create-if-absent transaction, so two nodes
//! can never get the same one.

use super::{Backoff, Event, Peer};
use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, EventType, GetOptions, PutOptions, Txn, TxnOp,
    WatchOptions,
};
use ipnet::IpNet;
use serde::Deserialize;
use std::time::Duration;
use tokio::sync::mpsc;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EtcdConfig {
    pub endpoints: Vec<String>,
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// Seconds a node survives without keep-alives.
    #[serde(default = "default_ttl")]
    pub lease_ttl: i64,
    /// The pod network subnets are carved from.
    pub cluster_cidr: IpNet,
    #[serde(default = "default_subnet_len")]
    pub subnet_len: u8,
}

fn default_prefix() -> String {
    "/linen".into()
}
fn default_ttl() -> i64 {
    10
}
fn default_subnet_len() -> u8 {
    24
}

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error(transparent)]
    Etcd(#[from] etcd_client::Error),
    #[error("{0}")]
    Lost(String),
}

impl EtcdConfig {
    fn nodes_prefix(&self) -> String {
        format!("{}/nodes/", self.prefix.trim_end_matches('/'))
    }
    fn subnets_prefix(&self) -> String {
        format!("{}/subnets/", self.prefix.trim_end_matches('/'))
    }
}

fn subnet_key(cfg: &EtcdConfig, net: &IpNet) -> String {
    format!(
        "{}{}",
        cfg.subnets_prefix(),
        net.to_string().replace('/', "-")
    )
}

pub async fn connect(cfg: &EtcdConfig) -> Result<Client, etcd_client::Error> {
    let opts = ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(2))
        .with_timeout(Duration::from_secs(5));
    Client::connect(&cfg.endpoints, Some(opts)).await
}

/// This node's subnet: the one already reserved under its name, else the
/// first free one, reserved atomically.
pub async fn allocate_subnet(
    client: &mut Client,
    cfg: &EtcdConfig,
    node: &str,
) -> Result<IpNet, SessionError> {
    let prefix = cfg.subnets_prefix();
    let taken = client
        .get(prefix.as_str(), Some(GetOptions::new().with_prefix()))
        .await?;
    let mut used = std::collections::HashSet::new();
    for kv in taken.kvs() {
        let key = kv.key_str().unwrap_or_default().to_string();
        if kv.value_str().unwrap_or_default() == node {
            if let Ok(net) = key
                .trim_start_matches(prefix.as_str())
                .replace('-', "/")
                .parse::<IpNet>()
            {
                return Ok(net);
            }
        }
        used.insert(key);
    }
    let subnets = cfg.cluster_cidr.subnets(cfg.subnet_len).map_err(|e| {
        SessionError::Lost(format!(
            "cluster_cidr {} / {}: {e}",
            cfg.cluster_cidr, cfg.subnet_len
        ))
    })?;
    for net in subnets {
        let key = subnet_key(cfg, &net);
        if used.contains(&key) {
            continue;
        }
        let txn = Txn::new()
            .when([Compare::create_revision(key.as_str(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key.as_str(), node, None)]);
        if client.txn(txn).await?.succeeded() {
            return Ok(net);
        }
    }
    Err(SessionError::Lost(format!(
        "no free /{} left in {}",
        cfg.subnet_len, cfg.cluster_cidr
    )))
}

fn decode(kv: &etcd_client::KeyValue) -> Option<Peer> {
    serde_json::from_slice(kv.value()).ok()
}

/// Registers this node and streams membership, forever: every failure
/// (etcd down, restarted, lease lost, watch compacted) starts a new session
/// after a backoff, which re-registers and re-lists.
pub async fn run(cfg: EtcdConfig, me: Peer, events: mpsc::Sender<Event>) {
    let mut backoff = Backoff::default();
    loop {
        let result = session(&cfg, &me, &events, &mut backoff).await;
        if events.is_closed() {
            return;
        }
        if let Err(e) = result {
            let delay = backoff.next_delay();
            tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "etcd session ended");
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = events.closed() => return,
            }
        }
    }
}

async fn session(
    cfg: &EtcdConfig,
    me: &Peer,
    events: &mpsc::Sender<Event>,
    backoff: &mut Backoff,
) -> Result<(), SessionError> {
    let mut client = connect(cfg).await?;
    let subnet = allocate_subnet(&mut client, cfg, &me.name).await?;
    let record = Peer {
        pod_cidr: Some(subnet),
        ..me.clone()
    };
    let lease = client.lease_grant(cfg.lease_ttl, None).await?.id();
    let key = format!("{}{}", cfg.nodes_prefix(), me.name);
    let value = serde_json::to_vec(&record).expect("peer serialises");
    client
        .put(
            key.as_str(),
            value,
            Some(PutOptions::new().with_lease(lease)),
        )
        .await?;
    let (mut keeper, mut acks) = client.lease_keep_alive(lease).await?;
    tracing::info!(%subnet, lease, "registered in etcd");
    if events.send(Event::LocalSubnet(subnet)).await.is_err() {
        return Ok(());
    }

    let prefix = cfg.nodes_prefix();
    let listed = client
        .get(prefix.as_str(), Some(GetOptions::new().with_prefix()))
        .await?;
    let revision = listed.header().map(|h| h.revision()).unwrap_or(0);
    let peers: Vec<Peer> = listed.kvs().iter().filter_map(decode).collect();
    if events.send(Event::Reset(peers)).await.is_err() {
        return Ok(());
    }
    let mut watch = client
        .watch(
            prefix.as_str(),
            Some(
                WatchOptions::new()
                    .with_prefix()
                    .with_start_revision(revision + 1),
            ),
        )
        .await?;
    backoff.reset();

    // Keep-alives at a third of the TTL survive one lost round.
    let mut tick = tokio::time::interval(Duration::from_millis(
        (cfg.lease_ttl.max(1) as u64) * 1000 / 3,
    ));
    loop {
        tokio::select! {
            _ = tick.tick() => keeper.keep_alive().await?,
            ack = acks.message() => match ack? {
                Some(r) if r.ttl() > 0 => {}
                _ => return Err(SessionError::Lost("lease expired or keep-alive stream closed".into())),
            },
            msg = watch.message() => {
                let Some(resp) = msg? else {
                    return Err(SessionError::Lost("watch stream closed".into()));
                };
                if resp.canceled() {
                    return Err(SessionError::Lost(format!("watch canceled (compacted at {})", resp.compact_revision())));
                }
                for ev in resp.events() {
                    let Some(kv) = ev.kv() else { continue };
                    let event = match ev.event_type() {
                        EventType::Put => match decode(kv) {
                            Some(p) => Event::Upsert(p),
                            None => {
                                tracing::warn!(key = kv.key_str().unwrap_or_default(), "ignoring undecodable registration");
                                continue;
                            }
                        },
                        EventType::Delete => {
                            let name = kv.key_str().unwrap_or_default().trim_start_matches(prefix.as_str()).to_string();
                            Event::Remove(name)
                        }
                    };
                    if events.send(event).await.is_err() {
                        return Ok(());
                    }
                }
            }
            _ = events.closed() => return Ok(()),
        }
    }
}
