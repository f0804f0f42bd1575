//! The `linen` chained CNI plugin: after the `bridge` plugin has attached a
//! pod to a Linux bridge, make sure the node's OVS bridge exists, is plugged
//! into that Linux bridge, and tunnels to the other nodes; then pass the
//! previous result on.

pub mod config;
pub mod lock;
pub mod log;
pub mod plugin;

pub use plugin::Linen;
