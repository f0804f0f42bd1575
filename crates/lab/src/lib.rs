//! Building blocks for emulating Linen nodes on one machine. Each piece
//! removes exactly what it created when dropped (daemons by pid, its own
//! namespaces and directories), so tests clean up after themselves even
//! when they fail.

pub mod chain;
pub mod cluster;
pub mod etcd;
pub mod faucet;
pub mod netns;
pub mod ovs;
pub mod process;
pub mod traffic;

pub use chain::{Chain, PluginError};
pub use netns::Netns;
pub use ovs::Ovs;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("`{cmd}` failed ({status}): {stderr}")]
    Command {
        cmd: String,
        status: String,
        stderr: String,
    },
    #[error("{0}")]
    Other(String),
}

pub type Result<T> = std::result::Result<T, Error>;

/// A name no other lab, test or crashed leftover uses: the pid keeps
/// processes apart, the counter keeps one process's objects apart.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::SeqCst);
    format!("{prefix}{}x{n}", std::process::id())
}

/// Skips a test that needs root (namespaces, OVS) with a clear message.
#[macro_export]
macro_rules! require_root {
    () => {
        if !$crate::is_root() {
            eprintln!("skipped: needs root (network namespaces, Open vSwitch)");
            return;
        }
    };
}

/// True when the process can create namespaces and start OVS.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}
