//! `flax`, Linen's node daemon: learns which nodes exist from a membership
//! store and keeps this node's VXLAN tunnels equal to that set, repairing
//! whatever OVS loses.

pub mod config;
pub mod daemon;
pub mod membership;
pub mod metrics;
pub mod monitor;
pub mod reconcile;
pub mod render;
