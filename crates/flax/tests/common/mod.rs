//! Fixtures for flax's tests: a flax process with its own OVS, talking to a
//! real store; everything stopped by pid on drop.
#![allow(dead_code)]

use lab::{Netns, Ovs};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One emulated node: a namespace with its own OVS, and flax for it.
pub struct Node {
    pub flax: Option<Child>,
    pub ovs: Ovs,
    pub ns: Netns,
    pub name: String,
    pub ip: String,
    pub config: PathBuf,
    pub metrics_port: u16,
}

impl Node {
    pub fn new(name: &str, ip: &str) -> Node {
        let ns = Netns::create("lfx").unwrap();
        let ovs = Ovs::start(&ns).unwrap();
        let config = ovs.dir.join("flax.toml");
        Node {
            flax: None,
            ovs,
            ns,
            name: name.into(),
            ip: ip.into(),
            config,
            metrics_port: free_port(),
        }
    }

    /// Writes flax's config: this node's identity and OVS plus `backend`
    /// (TOML for the backend and any other tables).
    pub fn configure(&self, backend: &str) {
        let text = format!(
            "node_name = \"{}\"\nnode_ip = \"{}\"\nmetrics_address = \"127.0.0.1:{}\"\nresync_seconds = 30\n{backend}\n[ovs]\nsocket = \"{}\"\ndatapath_type = \"netdev\"\nlinux_bridge = \"\"\n",
            self.name,
            self.ip,
            self.metrics_port,
            self.ovs.db_sock().display()
        );
        std::fs::write(&self.config, text).unwrap();
    }

    pub fn start(&mut self) {
        self.spawn(false)
    }

    /// Runs flax inside the node's namespace, where its netlink calls act on
    /// the node's devices (its HTTP port is then on the node's loopback).
    pub fn start_inside(&mut self) {
        self.spawn(true)
    }

    fn spawn(&mut self, inside: bool) {
        assert!(self.flax.is_none());
        let log = std::fs::File::create(self.ovs.dir.join("flax.log")).unwrap();
        let mut cmd = if inside {
            self.ns.cmd([env!("CARGO_BIN_EXE_flax")])
        } else {
            Command::new(env!("CARGO_BIN_EXE_flax"))
        };
        let child = cmd
            .arg("--config")
            .arg(&self.config)
            .env("RUST_LOG", "info,flax=debug")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.flax = Some(child);
    }

    pub fn signal(&mut self, sig: i32) -> Option<std::process::ExitStatus> {
        let mut c = self.flax.take()?;
        // SAFETY: signalling our own child.
        unsafe { libc::kill(c.id() as i32, sig) };
        Some(c.wait().unwrap())
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.ovs.dir.join("flax.log")).unwrap_or_default()
    }

    pub fn ports(&self) -> BTreeSet<String> {
        self.ovs
            .vsctl(&["list-ports", "br0"])
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Waits until br0's ports are exactly `want`; returns how long it took.
    pub fn wait_ports(&self, want: &[&str], timeout: Duration) -> Duration {
        let want: BTreeSet<String> = want.iter().map(|s| s.to_string()).collect();
        let start = Instant::now();
        loop {
            let have = self.ports();
            if have == want {
                return start.elapsed();
            }
            if start.elapsed() > timeout {
                panic!(
                    "{}: ports {have:?}, want {want:?} after {timeout:?}\nflax log:\n{}",
                    self.name,
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn http(&self, path: &str) -> (u16, String) {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.metrics_port)).unwrap();
        write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        let code = out
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let body = out
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        (code, body)
    }

    pub fn wait_http(&self, path: &str, code: u16, timeout: Duration) -> String {
        let start = Instant::now();
        loop {
            let got = std::panic::catch_unwind(|| self.http(path)).ok();
            if let Some((c, body)) = got {
                if c == code {
                    return body;
                }
            }
            if start.elapsed() > timeout {
                panic!("{path} never answered {code}\nflax log:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.signal(libc::SIGKILL);
    }
}
