//! Watches OVSDB for anything that may undo our work (a port deleted by
//! hand, ovs-vswitchd restarting and renumbering interfaces, ovsdb-server
//! restarting) and pokes the reconciler at once.

use crate::membership::Backoff;
use crate::reconcile::Msg;
use serde_json::json;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::Duration;

pub fn run(endpoint: ovsdb::Endpoint, poke: Sender<Msg>, stop: Arc<AtomicBool>) {
    let mut backoff = Backoff::default();
    while !stop.load(Ordering::SeqCst) {
        match watch(&endpoint, &poke, &stop, &mut backoff) {
            Ok(()) => return,
            Err(e) => {
                let delay = backoff.next_delay();
                tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "OVSDB monitor lost");
                // In short steps, so SIGTERM is not held up by a backoff.
                let until = std::time::Instant::now() + delay;
                while std::time::Instant::now() < until && !stop.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
    }
}

fn watch(
    endpoint: &ovsdb::Endpoint,
    poke: &Sender<Msg>,
    stop: &AtomicBool,
    backoff: &mut Backoff,
) -> Result<(), ovsdb::Error> {
    let mut client = ovsdb::Client::connect(endpoint, Duration::from_secs(5))?;
    client.monitor(
        overlay::DB,
        json!("flax"),
        json!({
            "Open_vSwitch": {"columns": ["cur_cfg"]},
            "Bridge": {"columns": ["name", "ports"]},
            "Port": {"columns": ["name", "interfaces", "protected"]},
            // ifindex changes when ovs-vswitchd recreates a device, even
            // when it gets its old ofport back: the internal port must then
            // be plugged into the Linux bridge again.
            "Interface": {"columns": ["name", "type", "options", "ofport", "error", "ifindex"]},
        }),
    )?;
    backoff.reset();
    // (Re)connected: whatever happened while we were away needs a look.
    if poke.send(Msg::Poke).is_err() {
        return Ok(());
    }
    loop {
        if stop.load(Ordering::SeqCst) {
            return Ok(());
        }
        if client.next_update(Duration::from_millis(250))?.is_some() {
            // Drain a burst (our own transaction echoes back too) into one poke.
            while client.next_update(Duration::from_millis(5))?.is_some() {}
            if poke.send(Msg::Poke).is_err() {
                return Ok(());
            }
        }
    }
}
