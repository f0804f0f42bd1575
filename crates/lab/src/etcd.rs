//! A real etcd (Debian's etcd-server) on loopback with its own data
//! directory, started and stopped by pid.

use crate::process::stop_pid;
use crate::{Error, Result};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Etcd {
    child: Option<Child>,
    pub dir: PathBuf,
    pub client_port: u16,
    peer_port: u16,
    /// The address it listens on (loopback unless a lab puts it on a fabric).
    pub host: String,
    netns: Option<String>,
}

fn free_port() -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|source| Error::Io {
        what: "pick a port".into(),
        source,
    })?;
    Ok(l.local_addr()
        .map_err(|source| Error::Io {
            what: "pick a port".into(),
            source,
        })?
        .port())
}

impl Etcd {
    /// Starts etcd on 127.0.0.1 with fresh data.
    pub fn start() -> Result<Etcd> {
        Self::launch("127.0.0.1", None, free_port()?, free_port()?)
    }

    /// Starts etcd inside `netns` on `host` with fixed ports (a fresh
    /// namespace has every port free).
    pub fn start_at(host: &str, netns: &str, client_port: u16, peer_port: u16) -> Result<Etcd> {
        Self::launch(host, Some(netns), client_port, peer_port)
    }

    fn launch(host: &str, netns: Option<&str>, client_port: u16, peer_port: u16) -> Result<Etcd> {
        let dir = std::env::temp_dir().join(crate::unique("linen-etcd-"));
        std::fs::create_dir_all(&dir).map_err(|source| Error::Io {
            what: dir.display().to_string(),
            source,
        })?;
        let mut e = Etcd {
            child: None,
            dir,
            client_port,
            peer_port,
            host: host.to_string(),
            netns: netns.map(str::to_string),
        };
        e.resume()?;
        Ok(e)
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}:{}", self.host, self.client_port)
    }

    /// (Re)starts the server on the same data directory and ports.
    pub fn resume(&mut self) -> Result<()> {
        let peer = format!("http://{}:{}", self.host, self.peer_port);
        let mut cmd = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, "etcd"]);
                c
            }
            None => Command::new("etcd"),
        };
        cmd.args([
            "--name",
            "lab",
            "--data-dir",
            &self.dir.join("data").display().to_string(),
            "--listen-client-urls",
            &self.endpoint(),
            "--advertise-client-urls",
            &self.endpoint(),
            "--listen-peer-urls",
            &peer,
            "--initial-advertise-peer-urls",
            &peer,
            "--initial-cluster",
            &format!("lab={peer}"),
            "--log-level",
            "warn",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::from(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.dir.join("etcd.log"))
                .map_err(|source| Error::Io {
                    what: "etcd log".into(),
                    source,
                })?,
        ));
        self.child = Some(cmd.spawn().map_err(|source| Error::Io {
            what: "start etcd".into(),
            source,
        })?);
        self.wait_ready(Duration::from_secs(20))
    }

    fn wait_ready(&self, timeout: Duration) -> Result<()> {
        let start = Instant::now();
        while start.elapsed() < timeout {
            let ok = self
                .ctl(&["endpoint", "health"])
                .map(|o| o.status.success())
                .unwrap_or(false);
            if ok {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(Error::Other(format!(
            "etcd did not become healthy; log: {}",
            self.log()
        )))
    }

    /// etcdctl (v3 API) against this server.
    pub fn ctl(&self, args: &[&str]) -> std::io::Result<std::process::Output> {
        let mut c = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, "etcdctl"]);
                c
            }
            None => Command::new("etcdctl"),
        };
        c.env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", self.endpoint()))
            .args(args)
            .output()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("etcd.log")).unwrap_or_default()
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Stops the server, keeping its data for [`Etcd::resume`].
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            stop_pid(c.id());
            let _ = c.wait();
        }
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
