//! Prometheus metrics and the /metrics, /healthz, /readyz endpoints.

use crate::reconcile::Status;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::atomic::Ordering;
use std::sync::Arc;

pub struct Metrics {
    registry: Registry,
    pub peers: Gauge,
    pub tunnels: Gauge,
    pub reconciles: Counter,
    pub reconcile_errors: Counter,
    pub reconcile_duration: Histogram,
    pub membership_events: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("flax");
        let m = Metrics {
            registry: Registry::default(),
            peers: Gauge::default(),
            tunnels: Gauge::default(),
            reconciles: Counter::default(),
            reconcile_errors: Counter::default(),
            // 0.5 ms .. ~4 s
            reconcile_duration: Histogram::new(exponential_buckets(0.0005, 2.0, 14)),
            membership_events: Counter::default(),
        };
        registry.register(
            "peers",
            "Nodes in the membership, this one included",
            m.peers.clone(),
        );
        registry.register(
            "tunnels",
            "VXLAN ports this node should have",
            m.tunnels.clone(),
        );
        registry.register("reconciles", "Reconciles run", m.reconciles.clone());
        registry.register(
            "reconcile_errors",
            "Reconciles that failed, and tunnels OVS refused",
            m.reconcile_errors.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Time per reconcile",
            m.reconcile_duration.clone(),
        );
        registry.register(
            "membership_events",
            "Events received from the membership backend",
            m.membership_events.clone(),
        );
        Metrics { registry, ..m }
    }
}

impl Metrics {
    pub fn render(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}

#[derive(Clone)]
struct Shared {
    metrics: Arc<Metrics>,
    status: Arc<Status>,
}

pub fn router(metrics: Arc<Metrics>, status: Arc<Status>) -> Router {
    Router::new()
        .route("/metrics", get(metrics_page))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .with_state(Shared { metrics, status })
}

async fn metrics_page(State(s): State<Shared>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.render(),
    )
}

/// Ready once the membership is known and the last reconcile succeeded.
async fn ready(State(s): State<Shared>) -> impl IntoResponse {
    let known = s.status.membership_known.load(Ordering::SeqCst);
    let ok = s.status.last_ok.load(Ordering::SeqCst);
    match (known, ok) {
        (true, true) => (StatusCode::OK, "ready\n".to_string()),
        (false, _) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "waiting for membership\n".to_string(),
        ),
        (true, false) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "OVS not reconciled (see logs)\n".to_string(),
        ),
    }
}
