//! A synchronous OVSDB management protocol client (RFC 7047): JSON-RPC over a
//! unix or TCP socket, `transact`, `monitor` with its `update` notifications,
//! and answers to the server's `echo` keepalives.

mod client;
mod error;
mod framer;
pub mod ops;
pub mod value;

pub use client::{Client, Endpoint};
pub use error::Error;
