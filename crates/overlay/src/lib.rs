//! What a Linen node looks like in Open vSwitch, shared by the `linen` CNI
//! plugin and the `flax` daemon so the two agree on every name, tag and
//! option and never fight over a port.
//!
//! The flow is always: [`Snapshot::read`] (one round trip), [`diff`] against
//! the desired [`BridgeSpec`] and [`TunnelSpec`]s, then [`apply`] the
//! resulting [`Change`]s in one transaction guarded by `wait` operations.

mod apply;
mod diff;
mod snapshot;
mod spec;
#[cfg(test)]
mod tests;

pub use apply::{apply, check_interfaces, ops, remove_ports, wait_applied, Applied, DB};
pub use diff::{diff, Change, Conflict};
pub use snapshot::{BridgeRow, InterfaceRow, PortRow, Snapshot};
pub use spec::{
    BridgeSpec, DatapathType, Key, TunnelSpec, OWNER_KEY, OWNER_VALUE, PEER_KEY, ROLE_KEY,
};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Ovsdb(#[from] ovsdb::Error),
    #[error(transparent)]
    Conflict(#[from] Conflict),
    #[error("ovs-vswitchd did not apply configuration {wanted} within {waited_ms} ms (cur_cfg is {current}); is ovs-vswitchd running?")]
    NotApplied {
        wanted: i64,
        current: i64,
        waited_ms: u128,
    },
    #[error("Open vSwitch refused {port}: {reason}")]
    Refused { port: String, reason: String },
    #[error("unexpected OVSDB reply: {0}")]
    Unexpected(String),
}
