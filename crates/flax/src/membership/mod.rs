//! Where flax learns which nodes exist. Every backend turns its store's
//! changes into the same [`Event`]s; the daemon does not care which store
//! they came from.

pub mod etcd;
pub mod kubernetes;
pub mod static_file;

use ipnet::IpNet;
use std::net::IpAddr;

/// A node of the cluster as membership reports it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct Peer {
    pub name: String,
    /// Underlay address: the tunnel's `remote_ip`.
    pub ip: IpAddr,
    /// The node's pod subnet, when the store knows it.
    #[serde(default, rename = "podCIDR", skip_serializing_if = "Option::is_none")]
    pub pod_cidr: Option<IpNet>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The complete membership (after a list or re-list): replaces all.
    Reset(Vec<Peer>),
    /// A node joined or changed.
    Upsert(Peer),
    /// A node left.
    Remove(String),
    /// This node's own pod subnet is now known (allocated or assigned).
    LocalSubnet(IpNet),
}

/// Delays between retries after a store error: 100 ms doubling to 5 s, so a
/// flapping store is neither hammered nor waited on for long.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: std::time::Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            next: std::time::Duration::from_millis(100),
        }
    }
}

impl Backoff {
    pub const MAX: std::time::Duration = std::time::Duration::from_secs(5);

    pub fn next_delay(&mut self) -> std::time::Duration {
        let d = self.next;
        self.next = (self.next * 2).min(Self::MAX);
        d
    }

    pub fn reset(&mut self) {
        *self = Backoff::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn backoff_doubles_to_a_cap_and_resets() {
        let mut b = Backoff::default();
        let seen: Vec<Duration> = (0..8).map(|_| b.next_delay()).collect();
        assert_eq!(seen[0], Duration::from_millis(100));
        assert_eq!(seen[1], Duration::from_millis(200));
        assert_eq!(seen[6], Backoff::MAX);
        assert_eq!(seen[7], Backoff::MAX);
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_millis(100));
    }

    #[test]
    fn peers_use_the_registration_wire_names() {
        let p: Peer =
            serde_json::from_str(r#"{"name":"n1","ip":"172.31.0.1","podCIDR":"10.244.1.0/24"}"#)
                .unwrap();
        assert_eq!(p.pod_cidr.unwrap().to_string(), "10.244.1.0/24");
        let back = serde_json::to_value(&p).unwrap();
        assert_eq!(back["podCIDR"], "10.244.1.0/24");
    }
}
