//! The `kubernetes` backend: membership is the cluster's Node objects.
//!
//! `kube`'s watcher does list + watch with resourceVersion, resumes broken
//! streams from the last version seen (bookmarks included) and re-lists on
//! 410 Gone. This module turns its events into membership [`Event`]s, adds
//! the backoff the watcher leaves to its caller, and covers the one case the
//! watcher does not recover from (a watch refused with HTTP 410).

use super::{Backoff, Event, Peer};
use futures::StreamExt;
use ipnet::IpNet;
use k8s_openapi::api::core::v1::Node;
use kube::runtime::watcher;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use tokio::sync::mpsc::Sender;

#[derive(Debug, Clone, serde::Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct KubernetesConfig {
    /// Path of a kubeconfig; in-cluster configuration when absent.
    #[serde(default)]
    pub kubeconfig: Option<PathBuf>,
    /// API server URL, overriding the kubeconfig's (tests, proxies).
    #[serde(default)]
    pub api_url: Option<String>,
    /// Which status.addresses entry is the tunnel endpoint.
    #[serde(default = "default_address_type")]
    pub address_type: String,
}

fn default_address_type() -> String {
    "InternalIP".to_string()
}

impl Default for KubernetesConfig {
    fn default() -> Self {
        KubernetesConfig {
            kubeconfig: None,
            api_url: None,
            address_type: default_address_type(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum ClientError {
    #[error("reading kubeconfig {0}: {1}")]
    Kubeconfig(PathBuf, #[source] kube::config::KubeconfigError),
    #[error("no kubeconfig and not in a cluster: {0}")]
    Infer(#[from] kube::config::InferConfigError),
    #[error("invalid api_url {url:?}: {reason}")]
    ApiUrl { url: String, reason: String },
    #[error("building the client: {0}")]
    Client(#[from] kube::Error),
}

async fn client(cfg: &KubernetesConfig) -> Result<kube::Client, ClientError> {
    let mut config = match (&cfg.kubeconfig, &cfg.api_url) {
        (Some(path), _) => {
            let kubeconfig = kube::config::Kubeconfig::read_from(path)
                .map_err(|e| ClientError::Kubeconfig(path.clone(), e))?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
                .await
                .map_err(|e| ClientError::Kubeconfig(path.clone(), e))?
        }
        // A bare URL (a test server, `kubectl proxy`) needs no credentials.
        (None, Some(url)) => kube::Config::new(parse_url(url)?),
        (None, None) => kube::Config::infer().await?,
    };
    if let Some(url) = &cfg.api_url {
        config.cluster_url = parse_url(url)?;
    }
    Ok(kube::Client::try_from(config)?)
}

/// Generic so as not to name the `http` crate's `Uri`, which kube does not re-export.
fn parse_url<T: std::str::FromStr>(url: &str) -> Result<T, ClientError>
where
    T::Err: std::fmt::Display,
{
    url.parse().map_err(|e: T::Err| ClientError::ApiUrl {
        url: url.to_string(),
        reason: e.to_string(),
    })
}

/// Watches Nodes forever, sending membership events; returns only when `events` is closed.
pub async fn run(cfg: KubernetesConfig, node_name: String, events: Sender<Event>) {
    let mut backoff = Backoff::default();
    let client = loop {
        match client(&cfg).await {
            Ok(client) => break client,
            Err(e) => {
                tracing::warn!(error = %e, "kubernetes: cannot build an API client; retrying")
            }
        }
        if pause(&events, backoff.next_delay()).await {
            return;
        }
    };
    let nodes = kube::Api::<Node>::all(client);
    let mut view = View::new(node_name, cfg.address_type);
    loop {
        // Every new watcher starts with a list; making one is how a watch
        // refused with 410 becomes a re-list (see `needs_relist`).
        let mut stream = std::pin::pin!(watcher(nodes.clone(), watcher::Config::default()));
        loop {
            let item = tokio::select! {
                _ = events.closed() => return,
                item = stream.next() => item,
            };
            match item {
                Some(Ok(event)) => {
                    if !matches!(event, watcher::Event::Init | watcher::Event::InitApply(_)) {
                        // Only a completed list or a watch event proves the
                        // API server works: `Init` comes before the list.
                        backoff.reset();
                    }
                    for event in view.apply(event) {
                        tracing::debug!(?event, "kubernetes: membership event");
                        if events.send(event).await.is_err() {
                            return;
                        }
                    }
                }
                Some(Err(e)) => {
                    if is_gone(&e) {
                        tracing::info!(error = %e, "kubernetes: watch expired; re-listing Nodes");
                    } else {
                        tracing::warn!(error = %e, "kubernetes: watching Nodes failed; retrying");
                    }
                    if pause(&events, backoff.next_delay()).await {
                        return;
                    }
                    if needs_relist(&e) {
                        break;
                    }
                }
                // The watcher never ends; should it, start over.
                None => break,
            }
        }
    }
}

/// Sleeps, or reports that the receiver is gone.
async fn pause(events: &Sender<Event>, delay: std::time::Duration) -> bool {
    tokio::select! {
        _ = events.closed() => true,
        _ = tokio::time::sleep(delay) => false,
    }
}

fn is_gone(e: &watcher::Error) -> bool {
    match e {
        watcher::Error::WatchError(status) => status.code == 410,
        watcher::Error::InitialListFailed(kube::Error::Api(status))
        | watcher::Error::WatchStartFailed(kube::Error::Api(status))
        | watcher::Error::WatchFailed(kube::Error::Api(status)) => status.code == 410,
        _ => false,
    }
}

/// The watcher re-lists after a 410 that arrives as a watch event (what the
/// API server sends), but retries a watch *refused* with HTTP 410 (as proxies
/// and some servers answer) from the same expired version, forever.
fn needs_relist(e: &watcher::Error) -> bool {
    matches!(e, watcher::Error::WatchStartFailed(kube::Error::Api(status)) if status.code == 410)
}

/// What the daemon has been told, so that only changes are sent.
struct View {
    node_name: String,
    address_type: String,
    sent: BTreeMap<String, Peer>,
    local_subnet: Option<IpNet>,
    /// Peers and own pod CIDR gathered during a (re)list: nothing is sent
    /// until the list is complete, so a half-read list never shrinks the mesh.
    listing: Option<(BTreeMap<String, Peer>, Option<IpNet>)>,
}

impl View {
    fn new(node_name: String, address_type: String) -> Self {
        View {
            node_name,
            address_type,
            sent: BTreeMap::new(),
            local_subnet: None,
            listing: None,
        }
    }

    fn apply(&mut self, event: watcher::Event<Node>) -> Vec<Event> {
        let mut out = Vec::new();
        match event {
            watcher::Event::Init => self.listing = Some(Default::default()),
            watcher::Event::InitApply(node) => {
                let peer = self.peer(&node);
                let own = self.own_subnet(&node);
                let (peers, subnet) = self.listing.get_or_insert_with(Default::default);
                if let Some(peer) = peer {
                    peers.insert(peer.name.clone(), peer);
                }
                *subnet = own.or(*subnet);
            }
            watcher::Event::InitDone => {
                let (peers, subnet) = self.listing.take().unwrap_or_default();
                self.sent = peers;
                out.push(Event::Reset(self.sent.values().cloned().collect()));
                out.extend(self.local_subnet_changed(subnet));
            }
            watcher::Event::Apply(node) => {
                let name = node.metadata.name.clone().unwrap_or_default();
                match self.peer(&node) {
                    Some(peer) if self.sent.get(&name) != Some(&peer) => {
                        self.sent.insert(name, peer.clone());
                        out.push(Event::Upsert(peer));
                    }
                    Some(_) => {}
                    None if self.sent.remove(&name).is_some() => out.push(Event::Remove(name)),
                    None => {}
                }
                let subnet = self.own_subnet(&node);
                out.extend(self.local_subnet_changed(subnet));
            }
            watcher::Event::Delete(node) => {
                let name = node.metadata.name.unwrap_or_default();
                if self.sent.remove(&name).is_some() {
                    out.push(Event::Remove(name));
                }
            }
        }
        out
    }

    /// The node as a peer, or `None` when it has no usable address of the
    /// configured type (yet: kubelet fills `status.addresses` after joining).
    fn peer(&self, node: &Node) -> Option<Peer> {
        let name = node.metadata.name.clone().filter(|n| !n.is_empty())?;
        let addresses = node
            .status
            .as_ref()
            .and_then(|s| s.addresses.as_deref())
            .unwrap_or_default();
        let ip = addresses
            .iter()
            .filter(|a| a.type_ == self.address_type)
            .find_map(|a| a.address.parse::<IpAddr>().ok());
        let Some(ip) = ip else {
            tracing::debug!(node = %name, address_type = %self.address_type, "kubernetes: node has no such address; skipped");
            return None;
        };
        Some(Peer {
            name,
            ip,
            pod_cidr: pod_cidr(node),
        })
    }

    fn own_subnet(&self, node: &Node) -> Option<IpNet> {
        (node.metadata.name.as_deref() == Some(self.node_name.as_str()))
            .then(|| pod_cidr(node))
            .flatten()
    }

    fn local_subnet_changed(&mut self, subnet: Option<IpNet>) -> Option<Event> {
        let subnet = subnet.filter(|s| self.local_subnet != Some(*s))?;
        self.local_subnet = Some(subnet);
        Some(Event::LocalSubnet(subnet))
    }
}

fn pod_cidr(node: &Node) -> Option<IpNet> {
    let cidr = node.spec.as_ref()?.pod_cidr.as_deref()?;
    match cidr.parse() {
        Ok(net) => Some(net),
        Err(e) => {
            tracing::warn!(node = ?node.metadata.name, %cidr, error = %e, "kubernetes: ignoring unparsable spec.podCIDR");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    //! Against a fake API server speaking the real wire format: `NodeList`s
    //! (items without kind/apiVersion, as the API server sends them), chunked
    //! newline-delimited watch events, `Status` errors, 410 as an ERROR event
    //! on a 200 stream, bookmarks carrying an empty Node.

    use super::*;
    use axum::body::{Body, Bytes};
    use axum::extract::State;
    use axum::http::{header, StatusCode, Uri};
    use axum::response::Response;
    use serde_json::{json, Value};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;
    use tokio::sync::mpsc;

    const WAIT: Duration = Duration::from_secs(10);

    enum Chunk {
        Line(String),
        /// End the response properly (the API server's way after an ERROR).
        End,
        /// Cut the connection mid-body.
        Abort,
    }

    #[derive(Debug, Clone)]
    struct Seen {
        watch: bool,
        query: BTreeMap<String, String>,
    }

    #[derive(Default)]
    struct Server {
        rv: u64,
        uids: u64,
        nodes: BTreeMap<String, Value>,
        /// Watch events by resourceVersion, replayed to a watch resuming from an older one.
        history: Vec<(u64, String)>,
        /// Watches from an older resourceVersion are refused (etcd compaction).
        compacted: u64,
        /// Refuse an expired watch with HTTP 410 instead of a 200 + ERROR event.
        gone_as_http_status: bool,
        watches: Vec<mpsc::UnboundedSender<Chunk>>,
        seen: Vec<Seen>,
        failing_lists: usize,
        failing_watches: usize,
    }

    impl Server {
        fn put(&mut self, mut node: Value) {
            self.rv += 1;
            let name = node["metadata"]["name"].as_str().unwrap().to_string();
            let uid = match self.nodes.get(&name) {
                Some(old) => old["metadata"]["uid"].clone(),
                None => {
                    self.uids += 1;
                    json!(format!("6f1c2a3e-0000-4000-8000-{:012x}", self.uids))
                }
            };
            node["metadata"]["uid"] = uid;
            node["metadata"]["resourceVersion"] = json!(self.rv.to_string());
            let kind = if self.nodes.contains_key(&name) {
                "MODIFIED"
            } else {
                "ADDED"
            };
            self.nodes.insert(name, node.clone());
            self.event(kind, node);
        }

        fn delete(&mut self, name: &str) {
            self.rv += 1;
            let mut node = self.nodes.remove(name).unwrap();
            node["metadata"]["resourceVersion"] = json!(self.rv.to_string());
            self.event("DELETED", node);
        }

        fn event(&mut self, kind: &str, object: Value) {
            let line = json!({"type": kind, "object": object}).to_string() + "\n";
            self.history.push((self.rv, line.clone()));
            self.broadcast(|| Chunk::Line(line.clone()));
        }

        fn broadcast(&mut self, chunk: impl Fn() -> Chunk) {
            self.watches.retain(|w| w.send(chunk()).is_ok());
        }

        /// Other objects changed meanwhile, then a bookmark: returns its version.
        fn bookmark(&mut self, advance: u64) -> u64 {
            self.rv += advance;
            let line =
                json!({"type": "BOOKMARK", "object": empty_node(self.rv)}).to_string() + "\n";
            self.broadcast(|| Chunk::Line(line.clone()));
            self.rv
        }

        fn drop_watches(&mut self) {
            self.broadcast(|| Chunk::Abort);
            self.watches.clear();
        }

        fn compact(&mut self) {
            self.compacted = self.rv;
            self.history.clear();
        }

        /// What the API server does when the watch cache has moved past a watcher.
        fn expire(&mut self) {
            self.rv += 5;
            self.compact();
            let line =
                json!({"type": "ERROR", "object": gone(self.rv - 5, self.rv)}).to_string() + "\n";
            self.broadcast(|| Chunk::Line(line.clone()));
            self.broadcast(|| Chunk::End);
            self.watches.clear();
        }

        fn lists(&self) -> usize {
            self.seen.iter().filter(|s| !s.watch).count()
        }

        fn watch_versions(&self) -> Vec<String> {
            self.seen
                .iter()
                .filter(|s| s.watch)
                .map(|s| s.query["resourceVersion"].clone())
                .collect()
        }

        fn list(&mut self, query: &BTreeMap<String, String>) -> Response {
            if self.failing_lists > 0 {
                self.failing_lists -= 1;
                return status(
                    500,
                    "InternalError",
                    "Internal error occurred: etcdserver: request timed out",
                );
            }
            let start: usize = query.get("continue").map_or(0, |c| c.parse().unwrap());
            let limit: usize = query
                .get("limit")
                .map_or(usize::MAX, |l| l.parse().unwrap());
            let items: Vec<Value> = self
                .nodes
                .values()
                .skip(start)
                .take(limit)
                .map(|n| {
                    let mut item = n.clone();
                    let item_map = item.as_object_mut().unwrap();
                    item_map.remove("kind");
                    item_map.remove("apiVersion");
                    item
                })
                .collect();
            let end = start + items.len();
            let mut metadata = json!({"resourceVersion": self.rv.to_string()});
            if end < self.nodes.len() {
                metadata["continue"] = json!(end.to_string());
                metadata["remainingItemCount"] = json!(self.nodes.len() - end);
            }
            let list = json!({"kind": "NodeList", "apiVersion": "v1", "metadata": metadata, "items": items});
            respond(StatusCode::OK, Body::from(list.to_string()))
        }

        fn watch(&mut self, query: &BTreeMap<String, String>) -> Response {
            if self.failing_watches > 0 {
                self.failing_watches -= 1;
                return status(
                    500,
                    "InternalError",
                    "Internal error occurred: etcdserver: leader changed",
                );
            }
            let Some(from) = query
                .get("resourceVersion")
                .and_then(|v| v.parse::<u64>().ok())
            else {
                return status(
                    400,
                    "BadRequest",
                    "flax's fake only serves watches from a resourceVersion",
                );
            };
            let (tx, rx) = mpsc::unbounded_channel();
            if from < self.compacted {
                if self.gone_as_http_status {
                    return status(
                        410,
                        "Expired",
                        &format!("too old resource version: {from} ({})", self.compacted),
                    );
                }
                let line = json!({"type": "ERROR", "object": gone(from, self.compacted)})
                    .to_string()
                    + "\n";
                let _ = tx.send(Chunk::Line(line));
                let _ = tx.send(Chunk::End);
            } else {
                for (_, line) in self.history.iter().filter(|(rv, _)| *rv > from) {
                    let _ = tx.send(Chunk::Line(line.clone()));
                }
                self.watches.push(tx);
            }
            let chunks = futures::stream::unfold(rx, |mut rx| async move {
                match rx.recv().await? {
                    Chunk::Line(line) => Some((Ok(Bytes::from(line)), rx)),
                    Chunk::Abort => {
                        // hyper discards unflushed output on a body error:
                        // pause so that what was sent before goes out first.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        Some((Err(std::io::Error::other("connection cut")), rx))
                    }
                    Chunk::End => None,
                }
            });
            respond(StatusCode::OK, Body::from_stream(chunks))
        }
    }

    fn respond(code: StatusCode, body: Body) -> Response {
        Response::builder()
            .status(code)
            .header(header::CONTENT_TYPE, "application/json")
            .body(body)
            .unwrap()
    }

    fn status_object(code: u16, reason: &str, message: &str) -> Value {
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": message, "reason": reason, "code": code})
    }

    fn status(code: u16, reason: &str, message: &str) -> Response {
        respond(
            StatusCode::from_u16(code).unwrap(),
            Body::from(status_object(code, reason, message).to_string()),
        )
    }

    fn gone(from: u64, oldest: u64) -> Value {
        status_object(
            410,
            "Expired",
            &format!("too old resource version: {from} ({oldest})"),
        )
    }

    /// A bookmark's object: a Node with nothing but its resourceVersion set,
    /// serialized with the zero values the API server includes.
    fn empty_node(rv: u64) -> Value {
        json!({"kind": "Node", "apiVersion": "v1",
               "metadata": {"resourceVersion": rv.to_string(), "creationTimestamp": null},
               "spec": {},
               "status": {"daemonEndpoints": {"kubeletEndpoint": {"Port": 0}},
                          "nodeInfo": {"machineID": "", "systemUUID": "", "bootID": "", "kernelVersion": "",
                                       "osImage": "", "containerRuntimeVersion": "", "kubeletVersion": "",
                                       "kubeProxyVersion": "", "operatingSystem": "", "architecture": ""}}})
    }

    /// A Node as kubelet and the node IPAM controller leave it.
    fn node(name: &str, addresses: &[(&str, &str)], pod_cidr: Option<&str>) -> Value {
        let mut addrs: Vec<Value> = addresses
            .iter()
            .map(|(t, a)| json!({"type": t, "address": a}))
            .collect();
        addrs.push(json!({"type": "Hostname", "address": name}));
        let spec = match pod_cidr {
            Some(c) => json!({"podCIDR": c, "podCIDRs": [c]}),
            None => json!({}),
        };
        json!({
            "kind": "Node", "apiVersion": "v1",
            "metadata": {"name": name, "creationTimestamp": "2025-03-01T10:00:00Z",
                         "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux"},
                         "annotations": {"node.alpha.kubernetes.io/ttl": "0"}},
            "spec": spec,
            "status": {
                "capacity": {"cpu": "2", "memory": "4015852Ki", "pods": "110"},
                "allocatable": {"cpu": "2", "memory": "3913452Ki", "pods": "110"},
                "conditions": [{"type": "Ready", "status": "True",
                                "lastHeartbeatTime": "2025-03-01T10:05:00Z",
                                "lastTransitionTime": "2025-03-01T10:00:30Z",
                                "reason": "KubeletReady", "message": "kubelet is posting ready status"}],
                "addresses": addrs,
                "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
                "nodeInfo": {"machineID": "0d3f", "systemUUID": "0d3f", "bootID": "b007",
                             "kernelVersion": "6.1.0-28-amd64", "osImage": "Debian GNU/Linux 12 (bookworm)",
                             "containerRuntimeVersion": "containerd://1.7.24", "kubeletVersion": "v1.33.1",
                             "kubeProxyVersion": "v1.33.1", "operatingSystem": "linux", "architecture": "amd64"}
            }
        })
    }

    fn internal(name: &str, ip: &str, pod_cidr: Option<&str>) -> Value {
        node(name, &[("InternalIP", ip)], pod_cidr)
    }

    fn peer(name: &str, ip: &str, pod_cidr: Option<&str>) -> Peer {
        Peer {
            name: name.into(),
            ip: ip.parse().unwrap(),
            pod_cidr: pod_cidr.map(|c| c.parse().unwrap()),
        }
    }

    async fn serve(State(server): State<Arc<Mutex<Server>>>, uri: Uri) -> Response {
        // kube sends only unreserved characters in these parameters.
        let query: BTreeMap<String, String> = uri
            .query()
            .unwrap_or_default()
            .split('&')
            .filter(|kv| !kv.is_empty())
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                (k.to_string(), v.to_string())
            })
            .collect();
        let watch = query.get("watch").is_some_and(|w| w == "true" || w == "1");
        let mut server = server.lock().unwrap();
        server.seen.push(Seen {
            watch,
            query: query.clone(),
        });
        if watch {
            server.watch(&query)
        } else {
            server.list(&query)
        }
    }

    struct Harness {
        server: Arc<Mutex<Server>>,
        url: String,
        events: mpsc::Receiver<Event>,
        daemon: tokio::task::JoinHandle<()>,
        http: tokio::task::JoinHandle<()>,
    }

    impl Drop for Harness {
        fn drop(&mut self) {
            self.daemon.abort();
            self.http.abort();
        }
    }

    impl Harness {
        async fn start(nodes: Vec<Value>) -> Harness {
            Harness::start_with(nodes, |_| {}, |_| {}).await
        }

        async fn start_with(
            nodes: Vec<Value>,
            setup: impl FnOnce(&mut Server),
            configure: impl FnOnce(&mut KubernetesConfig),
        ) -> Harness {
            let mut server = Server::default();
            for n in nodes {
                server.put(n);
            }
            setup(&mut server);
            let server = Arc::new(Mutex::new(server));
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let url = format!("http://{}", listener.local_addr().unwrap());
            let app = axum::Router::new()
                .route("/api/v1/nodes", axum::routing::get(serve))
                .with_state(server.clone());
            let http = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
            let mut cfg = KubernetesConfig {
                api_url: Some(url.clone()),
                ..Default::default()
            };
            configure(&mut cfg);
            let (tx, events) = mpsc::channel(16);
            let daemon = tokio::spawn(run(cfg, "self".into(), tx));
            Harness {
                server,
                url,
                events,
                daemon,
                http,
            }
        }

        fn with<R>(&self, f: impl FnOnce(&mut Server) -> R) -> R {
            f(&mut self.server.lock().unwrap())
        }

        async fn next(&mut self) -> Event {
            match tokio::time::timeout(WAIT, self.events.recv()).await {
                Ok(Some(event)) => event,
                Ok(None) => panic!("the backend stopped"),
                Err(_) => panic!("no membership event within {WAIT:?}"),
            }
        }

        async fn wait_for(&self, what: &str, done: impl Fn(&Server) -> bool) {
            let deadline = tokio::time::Instant::now() + WAIT;
            while !self.with(|s| done(s)) {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "timed out waiting for {what}"
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }

        async fn wait_watching(&self) {
            self.wait_for("an open watch", |s| !s.watches.is_empty())
                .await;
        }

        fn assert_quiet(&mut self) {
            if let Ok(event) = self.events.try_recv() {
                panic!("unexpected {event:?}");
            }
        }
    }

    fn cluster() -> Vec<Value> {
        vec![
            internal("a", "172.31.0.1", Some("10.244.1.0/24")),
            node(
                "b",
                &[("InternalIP", "172.31.0.2"), ("ExternalIP", "203.0.113.2")],
                None,
            ),
            // Just joined: kubelet has not reported its addresses yet.
            node("c", &[], Some("10.244.3.0/24")),
        ]
    }

    #[tokio::test]
    async fn a_list_becomes_a_reset_of_the_nodes_with_an_address() {
        let mut h = Harness::start(cluster()).await;
        assert_eq!(
            h.next().await,
            Event::Reset(vec![
                peer("a", "172.31.0.1", Some("10.244.1.0/24")),
                peer("b", "172.31.0.2", None)
            ])
        );
        h.wait_watching().await;
        let seen = h.with(|s| s.seen.clone());
        assert!(
            !seen[0].watch && seen[0].query.contains_key("limit"),
            "{seen:?}"
        );
        assert!(seen[1].watch, "{seen:?}");
        assert_eq!(
            seen[1].query["resourceVersion"], "3",
            "watch from the list's version"
        );
        assert_eq!(
            seen[1].query.get("allowWatchBookmarks").map(String::as_str),
            Some("true")
        );
        h.assert_quiet();
    }

    #[tokio::test]
    async fn the_address_type_picks_the_tunnel_endpoint() {
        let mut h =
            Harness::start_with(cluster(), |_| {}, |c| c.address_type = "ExternalIP".into()).await;
        assert_eq!(
            h.next().await,
            Event::Reset(vec![peer("b", "203.0.113.2", None)])
        );
    }

    #[tokio::test]
    async fn watch_events_become_upserts_and_removes_only_on_change() {
        let mut h = Harness::start(cluster()).await;
        assert!(matches!(h.next().await, Event::Reset(_)));

        h.with(|s| s.put(internal("d", "172.31.0.4", Some("10.244.4.0/24"))));
        assert_eq!(
            h.next().await,
            Event::Upsert(peer("d", "172.31.0.4", Some("10.244.4.0/24")))
        );

        // A heartbeat-like change (labels) is no news; an IP change is.
        h.with(|s| {
            let mut a = internal("a", "172.31.0.1", Some("10.244.1.0/24"));
            a["metadata"]["labels"]["topology.kubernetes.io/zone"] = json!("z1");
            s.put(a);
            s.put(internal("b", "172.31.0.22", None));
        });
        assert_eq!(
            h.next().await,
            Event::Upsert(peer("b", "172.31.0.22", None))
        );

        // Gaining an address makes a node a peer; losing it removes it.
        h.with(|s| s.put(internal("c", "172.31.0.3", Some("10.244.3.0/24"))));
        assert_eq!(
            h.next().await,
            Event::Upsert(peer("c", "172.31.0.3", Some("10.244.3.0/24")))
        );
        h.with(|s| s.put(node("c", &[], Some("10.244.3.0/24"))));
        assert_eq!(h.next().await, Event::Remove("c".into()));

        // Deleting a node that was never a peer is no news either.
        h.with(|s| {
            s.delete("c");
            s.delete("a");
        });
        assert_eq!(h.next().await, Event::Remove("a".into()));
        h.with(|s| s.put(internal("e", "172.31.0.5", None)));
        assert_eq!(h.next().await, Event::Upsert(peer("e", "172.31.0.5", None)));
        assert_eq!(h.with(|s| s.lists()), 1, "all of this without a re-list");
    }

    #[tokio::test]
    async fn the_own_node_s_pod_cidr_is_the_local_subnet() {
        let mut h = Harness::start(vec![internal("self", "172.31.0.9", None)]).await;
        assert_eq!(
            h.next().await,
            Event::Reset(vec![peer("self", "172.31.0.9", None)])
        );

        h.with(|s| s.put(internal("self", "172.31.0.9", Some("10.244.9.0/24"))));
        assert_eq!(
            h.next().await,
            Event::Upsert(peer("self", "172.31.0.9", Some("10.244.9.0/24")))
        );
        assert_eq!(
            h.next().await,
            Event::LocalSubnet("10.244.9.0/24".parse().unwrap())
        );

        // Once per change: neither a re-list nor another node's CIDR repeats it.
        h.with(|s| {
            s.expire();
            s.put(internal("other", "172.31.0.10", Some("10.244.10.0/24")));
        });
        let Event::Reset(peers) = h.next().await else {
            panic!("expected a Reset")
        };
        assert_eq!(peers.len(), 2);
        h.with(|s| s.put(internal("self", "172.31.0.9", Some("10.244.99.0/24"))));
        assert_eq!(
            h.next().await,
            Event::Upsert(peer("self", "172.31.0.9", Some("10.244.99.0/24")))
        );
        assert_eq!(
            h.next().await,
            Event::LocalSubnet("10.244.99.0/24".parse().unwrap())
        );
    }

    #[tokio::test]
    async fn a_listed_own_node_announces_its_subnet_after_the_reset() {
        let mut h = Harness::start(vec![node("self", &[], Some("10.244.9.0/24"))]).await;
        assert_eq!(h.next().await, Event::Reset(vec![]));
        assert_eq!(
            h.next().await,
            Event::LocalSubnet("10.244.9.0/24".parse().unwrap())
        );
    }

    #[tokio::test]
    async fn a_bookmark_moves_the_resume_point_silently() {
        let mut h = Harness::start(cluster()).await;
        assert!(matches!(h.next().await, Event::Reset(_)));
        h.wait_watching().await;
        let mark = h.with(|s| {
            let mark = s.bookmark(40);
            s.drop_watches();
            mark
        });
        h.wait_for("a watch from the bookmark", |s| {
            s.watch_versions().last() == Some(&mark.to_string())
        })
        .await;
        h.assert_quiet();
        h.with(|s| s.put(internal("d", "172.31.0.4", None)));
        assert_eq!(h.next().await, Event::Upsert(peer("d", "172.31.0.4", None)));
        assert_eq!(h.with(|s| s.lists()), 1);
    }

    #[tokio::test]
    async fn a_broken_stream_resumes_where_it_was_without_losing_events() {
        let mut h = Harness::start(cluster()).await;
        assert!(matches!(h.next().await, Event::Reset(_)));
        h.with(|s| s.put(internal("d", "172.31.0.4", None)));
        assert_eq!(h.next().await, Event::Upsert(peer("d", "172.31.0.4", None)));
        let last = h.with(|s| s.rv);

        // These happen while the client is cut off: only a resume from the
        // right version delivers them.
        h.with(|s| {
            s.drop_watches();
            s.put(internal("a", "172.31.0.11", Some("10.244.1.0/24")));
            s.delete("d");
        });
        assert_eq!(
            h.next().await,
            Event::Upsert(peer("a", "172.31.0.11", Some("10.244.1.0/24")))
        );
        assert_eq!(h.next().await, Event::Remove("d".into()));
        let versions = h.with(|s| s.watch_versions());
        assert_eq!(versions.last(), Some(&last.to_string()), "{versions:?}");
        assert_eq!(h.with(|s| s.lists()), 1, "a resume, not a re-list");
    }

    #[tokio::test]
    async fn gone_during_a_watch_relists_and_resets() {
        let mut h = Harness::start(cluster()).await;
        assert!(matches!(h.next().await, Event::Reset(_)));
        h.wait_watching().await;
        h.with(|s| {
            s.expire();
            // Compacted away: only the re-list can tell.
            s.delete("b");
            s.put(internal("f", "172.31.0.6", None));
            s.compact();
        });
        assert_eq!(
            h.next().await,
            Event::Reset(vec![
                peer("a", "172.31.0.1", Some("10.244.1.0/24")),
                peer("f", "172.31.0.6", None)
            ])
        );
        assert_eq!(h.with(|s| s.lists()), 2);
        h.with(|s| s.put(internal("g", "172.31.0.7", None)));
        assert_eq!(h.next().await, Event::Upsert(peer("g", "172.31.0.7", None)));
    }

    #[tokio::test]
    async fn resuming_from_a_compacted_version_relists() {
        let mut h = Harness::start(cluster()).await;
        assert!(matches!(h.next().await, Event::Reset(_)));
        h.wait_watching().await;
        h.with(|s| {
            s.drop_watches();
            s.delete("a");
            s.compact();
        });
        assert_eq!(
            h.next().await,
            Event::Reset(vec![peer("b", "172.31.0.2", None)])
        );
        assert_eq!(h.with(|s| s.lists()), 2);
    }

    #[tokio::test]
    async fn a_watch_refused_with_http_410_relists_too() {
        let mut h = Harness::start_with(cluster(), |s| s.gone_as_http_status = true, |_| {}).await;
        assert!(matches!(h.next().await, Event::Reset(_)));
        h.wait_watching().await;
        h.with(|s| {
            s.drop_watches();
            s.delete("a");
            s.compact();
        });
        assert_eq!(
            h.next().await,
            Event::Reset(vec![peer("b", "172.31.0.2", None)])
        );
        assert_eq!(h.with(|s| s.lists()), 2);
    }

    #[tokio::test]
    async fn api_errors_are_retried_not_fatal() {
        let mut h = Harness::start_with(
            cluster(),
            |s| {
                s.failing_lists = 3;
                s.failing_watches = 2;
            },
            |_| {},
        )
        .await;
        assert!(matches!(h.next().await, Event::Reset(_)));
        assert_eq!(h.with(|s| s.lists()), 4);
        h.wait_watching().await;
        assert_eq!(h.with(|s| s.watch_versions()), ["3", "3", "3"]);
        h.with(|s| s.put(internal("d", "172.31.0.4", None)));
        assert_eq!(h.next().await, Event::Upsert(peer("d", "172.31.0.4", None)));
    }

    #[tokio::test]
    async fn an_unreachable_api_server_is_retried() {
        // Nothing listens here until the server below binds the port.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        drop(listener);
        let (tx, mut events) = mpsc::channel(4);
        let daemon = tokio::spawn(run(
            KubernetesConfig {
                api_url: Some(url.clone()),
                ..Default::default()
            },
            "self".into(),
            tx,
        ));
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert!(!daemon.is_finished());

        let server = Arc::new(Mutex::new(Server::default()));
        server
            .lock()
            .unwrap()
            .put(internal("a", "172.31.0.1", None));
        let listener = tokio::net::TcpListener::bind(url.trim_start_matches("http://"))
            .await
            .unwrap();
        let app = axum::Router::new()
            .route("/api/v1/nodes", axum::routing::get(serve))
            .with_state(server);
        let http = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let event = tokio::time::timeout(WAIT, events.recv()).await.unwrap();
        assert_eq!(
            event,
            Some(Event::Reset(vec![peer("a", "172.31.0.1", None)]))
        );
        daemon.abort();
        http.abort();
    }

    #[tokio::test]
    async fn a_paged_list_is_one_reset() {
        let nodes = (0..1203).map(|i| {
            internal(
                &format!("n{i:04}"),
                &format!("10.1.{}.{}", i / 250, i % 250 + 1),
                None,
            )
        });
        let mut h = Harness::start(nodes.collect()).await;
        let Event::Reset(peers) = h.next().await else {
            panic!("expected a Reset")
        };
        assert_eq!(peers.len(), 1203);
        assert_eq!(peers[1202], peer("n1202", "10.1.4.203", None));
        let continues: Vec<_> = h.with(|s| {
            s.seen
                .iter()
                .filter_map(|r| r.query.get("continue").cloned())
                .collect()
        });
        assert_eq!(continues, ["500", "1000"]);
    }

    #[tokio::test]
    async fn a_kubeconfig_file_is_honoured() {
        // Only the fake server of the harness is needed.
        let h = Harness::start(cluster()).await;
        h.daemon.abort();
        let dir = std::env::temp_dir().join(format!("flax-kubeconfig-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("config");
        std::fs::write(
            &path,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {}\n\
                 contexts:\n- name: fake\n  context:\n    cluster: fake\n    user: nobody\n\
                 current-context: fake\nusers:\n- name: nobody\n  user:\n    token: not-checked\n",
                h.url
            ),
        )
        .unwrap();
        let (tx, mut events) = mpsc::channel(4);
        let daemon = tokio::spawn(run(
            KubernetesConfig {
                kubeconfig: Some(path),
                ..Default::default()
            },
            "self".into(),
            tx,
        ));
        let event = tokio::time::timeout(WAIT, events.recv()).await.unwrap();
        assert!(
            matches!(event, Some(Event::Reset(ref p)) if p.len() == 2),
            "{event:?}"
        );
        daemon.abort();
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn it_returns_once_nobody_listens() {
        let mut h = Harness::start(cluster()).await;
        assert!(matches!(h.next().await, Event::Reset(_)));
        h.wait_watching().await;
        h.events.close();
        tokio::time::timeout(WAIT, &mut h.daemon)
            .await
            .expect("still running")
            .unwrap();

        // Also while backing off from errors.
        let mut h = Harness::start_with(cluster(), |s| s.failing_lists = usize::MAX, |_| {}).await;
        h.wait_for("a failed list", |s| s.lists() >= 2).await;
        h.events.close();
        tokio::time::timeout(WAIT, &mut h.daemon)
            .await
            .expect("still running")
            .unwrap();
    }

    #[test]
    fn config_defaults_to_internal_ip_and_rejects_typos() {
        let cfg: KubernetesConfig = toml::from_str("").unwrap();
        assert_eq!(cfg, KubernetesConfig::default());
        assert_eq!(cfg.address_type, "InternalIP");
        assert!(toml::from_str::<KubernetesConfig>("adress_type = \"ExternalIP\"").is_err());
    }

    /// The whole daemon on the kubernetes backend, end to end: the fake API
    /// server's Nodes become tunnels in a real OVS, this node's podCIDR
    /// becomes its conflist, and a deleted Node takes its tunnel with it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_daemon_keeps_ovs_in_step_with_the_node_list() {
        lab::require_root!();
        let ns = lab::Netns::create("lfk").unwrap();
        let ovs = lab::Ovs::start(&ns).unwrap();
        let mut server = Server::default();
        server.put(internal("self", "172.31.0.10", Some("10.244.7.0/24")));
        server.put(internal("a", "172.31.0.1", Some("10.244.1.0/24")));
        server.put(internal("b", "172.31.0.2", None));
        let server = Arc::new(Mutex::new(server));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let app = axum::Router::new()
            .route("/api/v1/nodes", axum::routing::get(serve))
            .with_state(server.clone());
        let http = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let net_d = ovs.dir.join("net.d");
        let cfg = crate::config::Config::parse(&format!(
            "node_name = \"self\"\nnode_ip = \"172.31.0.10\"\nbackend = \"kubernetes\"\nmetrics_address = \"127.0.0.1:0\"\n\
             [kubernetes]\napi_url = \"{url}\"\n\
             [ovs]\nsocket = \"{}\"\ndatapath_type = \"netdev\"\nlinux_bridge = \"\"\n\
             [cni]\nconf_dir = \"{}\"\ncluster_cidr = \"10.244.0.0/16\"\n",
            ovs.db_sock().display(),
            net_d.display()
        ))
        .unwrap();
        let daemon = tokio::spawn(crate::daemon::run(cfg));
        let ports = || -> Vec<String> {
            let mut v: Vec<String> = ovs
                .vsctl(&["list-ports", "br0"])
                .unwrap_or_default()
                .lines()
                .map(str::to_string)
                .collect();
            v.sort();
            v
        };
        let wait = |want: &[&str]| {
            let want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
            async move {
                let deadline = tokio::time::Instant::now() + WAIT;
                loop {
                    let have = ports();
                    if have == want {
                        return;
                    }
                    assert!(
                        tokio::time::Instant::now() < deadline,
                        "ports {have:?}, want {want:?}"
                    );
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        };
        wait(&["vxif172_31_0_1", "vxif172_31_0_2"]).await;
        let conflist: Value = serde_json::from_str(
            &std::fs::read_to_string(net_d.join("10-linen.conflist")).unwrap(),
        )
        .unwrap();
        assert_eq!(
            conflist["plugins"][0]["ipam"]["ranges"][0][0]["gateway"],
            "10.244.7.1"
        );
        server.lock().unwrap().delete("b");
        wait(&["vxif172_31_0_1"]).await;
        server
            .lock()
            .unwrap()
            .put(internal("c", "172.31.0.3", None));
        wait(&["vxif172_31_0_1", "vxif172_31_0_3"]).await;
        daemon.abort();
        http.abort();
    }
}
