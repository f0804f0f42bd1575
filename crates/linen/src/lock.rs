//! Serialises changes to one bridge across concurrent plugin invocations:
//! runtimes start many pods at once, and two processes creating the same
//! bridge would race.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

pub const RUN_DIR: &str = "/run/linen";

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("cannot open lock file {path}: {source}")]
    Open { path: PathBuf, source: io::Error },
    #[error("another linen holds {path} for longer than {waited_ms} ms")]
    Timeout { path: PathBuf, waited_ms: u128 },
}

/// Held for as long as this value lives; the kernel drops the lock if the
/// process dies, so a crash never wedges the node.
#[derive(Debug)]
pub struct BridgeLock {
    _file: File,
}

/// The lock file for `bridge` in the OVS instance behind `endpoint`: two OVS
/// instances (as in a lab) each have their own `br0`.
pub fn lock_path(dir: &Path, bridge: &str, endpoint: &str) -> PathBuf {
    dir.join(format!("{bridge}.{:016x}.lock", fnv1a(endpoint.as_bytes())))
}

/// A hash that never changes between builds: two linen binaries (say, during
/// an upgrade) must agree on the lock file of a bridge.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn open(path: &Path) -> Result<File, LockError> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|source| LockError::Open {
            path: path.to_path_buf(),
            source,
        })
}

pub fn acquire(
    dir: &Path,
    bridge: &str,
    endpoint: &str,
    timeout: Duration,
) -> Result<BridgeLock, LockError> {
    std::fs::create_dir_all(dir).map_err(|source| LockError::Open {
        path: dir.to_path_buf(),
        source,
    })?;
    let path = lock_path(dir, bridge, endpoint);
    let file = open(&path)?;
    if file.try_lock().is_ok() {
        return Ok(BridgeLock { _file: file });
    }
    // Block in a helper thread so we can give up after `timeout` without
    // polling. It opens its own file: should it win after we gave up, its
    // send fails, the file drops and the lock is released at once.
    let (tx, rx) = mpsc::channel();
    let p = path.clone();
    std::thread::spawn(move || {
        if let Ok(f) = open(&p) {
            if f.lock().is_ok() {
                let _ = tx.send(f);
            }
        }
    });
    match rx.recv_timeout(timeout) {
        Ok(f) => Ok(BridgeLock { _file: f }),
        Err(_) => Err(LockError::Timeout {
            path,
            waited_ms: timeout.as_millis(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn tmp() -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "linen-lock-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn lock_names_are_stable_across_builds() {
        assert_eq!(
            lock_path(
                Path::new("/run/linen"),
                "br0",
                "unix:/var/run/openvswitch/db.sock"
            ),
            PathBuf::from(format!(
                "/run/linen/br0.{:016x}.lock",
                fnv1a(b"unix:/var/run/openvswitch/db.sock")
            ))
        );
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn second_holder_times_out_then_gets_it_after_release() {
        let d = tmp();
        let first = acquire(&d, "br0", "unix:/a", Duration::from_secs(1)).unwrap();
        let t = Instant::now();
        let e = acquire(&d, "br0", "unix:/a", Duration::from_millis(50)).unwrap_err();
        assert!(matches!(e, LockError::Timeout { .. }));
        assert!(t.elapsed() >= Duration::from_millis(50));
        // Another OVS instance's bridge of the same name is independent.
        acquire(&d, "br0", "unix:/b", Duration::from_millis(50)).unwrap();
        drop(first);
        acquire(&d, "br0", "unix:/a", Duration::from_secs(1)).unwrap();
        std::fs::remove_dir_all(&d).unwrap();
    }
}
