//! The `static` backend: a peers file, re-read whenever it changes.

use super::{Event, Peer};
use serde::Deserialize;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};
use tokio::sync::mpsc;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StaticConfig {
    pub peers_file: PathBuf,
    /// How often the file's modification time and size are looked at.
    #[serde(default = "default_poll_ms")]
    pub poll_ms: u64,
}

fn default_poll_ms() -> u64 {
    250
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PeersFile {
    #[serde(default)]
    peer: Vec<FilePeer>,
}

/// A hand-written entry: unlike a registration read from a store, a
/// misspelt key here is a mistake to report, not a newer writer's field.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FilePeer {
    name: String,
    ip: std::net::IpAddr,
    #[serde(default, rename = "podCIDR")]
    pod_cidr: Option<ipnet::IpNet>,
}

/// Parses the peers file:
///
/// ```toml
/// [[peer]]
/// name = "node1"
/// ip = "172.31.0.1"
/// podCIDR = "10.244.1.0/24"   # optional
/// ```
pub fn parse(text: &str) -> Result<Vec<Peer>, toml::de::Error> {
    let f: PeersFile = toml::from_str(text)?;
    Ok(f.peer
        .into_iter()
        .map(|p| Peer {
            name: p.name,
            ip: p.ip,
            pod_cidr: p.pod_cidr,
        })
        .collect())
}

type Stamp = (Option<SystemTime>, u64);

fn stamp(path: &std::path::Path) -> Option<Stamp> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok(), m.len()))
}

/// Sends the file's peers at start and after every change; a file that
/// cannot be read or parsed keeps the last good membership.
pub async fn run(cfg: StaticConfig, node_name: String, events: mpsc::Sender<Event>) {
    let mut last: Option<Stamp> = None;
    let mut last_peers: Option<Vec<Peer>> = None;
    let mut tick = tokio::time::interval(Duration::from_millis(cfg.poll_ms.max(10)));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = events.closed() => return,
        }
        let now = stamp(&cfg.peers_file);
        if now.is_none() || now == last {
            if now.is_none() && last.is_some() {
                tracing::warn!(file = %cfg.peers_file.display(), "peers file disappeared; keeping the last membership");
                last = None;
            }
            continue;
        }
        last = now;
        let text = match tokio::fs::read_to_string(&cfg.peers_file).await {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(file = %cfg.peers_file.display(), error = %e, "cannot read peers file");
                continue;
            }
        };
        let peers = match parse(&text) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(file = %cfg.peers_file.display(), error = %e, "peers file is invalid; keeping the last membership");
                continue;
            }
        };
        if last_peers.as_ref() == Some(&peers) {
            continue;
        }
        tracing::info!(file = %cfg.peers_file.display(), peers = peers.len(), "peers file loaded");
        if let Some(cidr) = peers
            .iter()
            .find(|p| p.name == node_name)
            .and_then(|p| p.pod_cidr)
        {
            if events.send(Event::LocalSubnet(cidr)).await.is_err() {
                return;
            }
        }
        if events.send(Event::Reset(peers.clone())).await.is_err() {
            return;
        }
        last_peers = Some(peers);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_peers() {
        let p = parse(
            r#"
            [[peer]]
            name = "n1"
            ip = "172.31.0.1"
            podCIDR = "10.244.1.0/24"
            [[peer]]
            name = "n2"
            ip = "fd00::2"
            "#,
        )
        .unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(p[1].ip.to_string(), "fd00::2");
        assert!(p[1].pod_cidr.is_none());
        assert!(parse("[[peer]]\nname = \"x\"\nip = \"nope\"\n").is_err());
        assert!(
            parse("[[peer]]\nname = \"x\"\nip = \"10.0.0.1\"\npod_cidr = \"10.244.1.0/24\"\n")
                .is_err(),
            "misspelt podCIDR"
        );
    }

    async fn next(rx: &mut mpsc::Receiver<Event>) -> Event {
        tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("event in time")
            .expect("open")
    }

    #[tokio::test]
    async fn reloads_on_change_and_keeps_the_last_good_file() {
        let dir = std::env::temp_dir().join(format!("flax-static-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("peers.toml");
        std::fs::write(
            &file,
            "[[peer]]\nname = \"n1\"\nip = \"10.0.0.1\"\npodCIDR = \"10.244.1.0/24\"\n",
        )
        .unwrap();
        let (tx, mut rx) = mpsc::channel(16);
        let task = tokio::spawn(run(
            StaticConfig {
                peers_file: file.clone(),
                poll_ms: 20,
            },
            "n1".into(),
            tx,
        ));
        assert_eq!(
            next(&mut rx).await,
            Event::LocalSubnet("10.244.1.0/24".parse().unwrap())
        );
        let Event::Reset(p) = next(&mut rx).await else {
            panic!("expected Reset")
        };
        assert_eq!(p.len(), 1);

        // A broken edit is ignored; the next good one is picked up.
        std::fs::write(&file, "[[peer]]\nname = ").unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        std::fs::write(&file, "[[peer]]\nname = \"n1\"\nip = \"10.0.0.1\"\npodCIDR = \"10.244.1.0/24\"\n[[peer]]\nname = \"n2\"\nip = \"10.0.0.2\"\n").unwrap();
        loop {
            match next(&mut rx).await {
                Event::Reset(p) => {
                    assert_eq!(
                        p.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
                        ["n1", "n2"]
                    );
                    break;
                }
                Event::LocalSubnet(_) => continue,
                other => panic!("unexpected {other:?}"),
            }
        }
        drop(rx);
        let _ = tokio::time::timeout(Duration::from_secs(2), task).await;
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
