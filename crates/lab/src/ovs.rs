//! One Open vSwitch instance (ovsdb-server + ovs-vswitchd) running inside a
//! network namespace with its own database and run directory.

use crate::process::{alive, run, stdout, stop_pid};
use crate::{Error, Netns, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

pub const SCHEMA: &str = "/usr/share/openvswitch/vswitch.ovsschema";

#[derive(Debug)]
pub struct Ovs {
    pub dir: PathBuf,
    ns: String,
    ovsdb_pid: Option<u32>,
    vswitchd_pid: Option<u32>,
}

impl Ovs {
    /// Creates a fresh database and starts both daemons inside `ns`.
    pub fn start(ns: &Netns) -> Result<Ovs> {
        let dir = std::env::temp_dir().join(format!("linen-ovs-{}", ns.name));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|source| Error::Io {
            what: format!("mkdir {}", dir.display()),
            source,
        })?;
        run(Command::new("ovsdb-tool")
            .arg("create")
            .arg(dir.join("conf.db"))
            .arg(SCHEMA))?;
        let mut ovs = Ovs {
            dir,
            ns: ns.name.clone(),
            ovsdb_pid: None,
            vswitchd_pid: None,
        };
        ovs.start_ovsdb()?;
        ovs.vsctl(&["--no-wait", "init"])?;
        ovs.start_vswitchd()?;
        Ok(ovs)
    }

    pub fn db_sock(&self) -> PathBuf {
        self.dir.join("db.sock")
    }

    pub fn endpoint(&self) -> String {
        format!("unix:{}", self.db_sock().display())
    }

    fn in_ns(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns, program]);
        for var in ["OVS_RUNDIR", "OVS_DBDIR", "OVS_LOGDIR", "OVS_SYSCONFDIR"] {
            c.env(var, &self.dir);
        }
        c
    }

    fn daemon(&self, program: &str, args: &[String]) -> Result<u32> {
        let pidfile = self.dir.join(format!("{program}.pid"));
        let _ = std::fs::remove_file(&pidfile);
        let mut c = self.in_ns(program);
        c.args(args).args([
            format!("--pidfile={}", pidfile.display()),
            format!(
                "--unixctl={}",
                self.dir.join(format!("{program}.ctl")).display()
            ),
            format!(
                "--log-file={}",
                self.dir.join(format!("{program}.log")).display()
            ),
            "--detach".into(),
            "--no-chdir".into(),
        ]);
        run(&mut c)?;
        read_pid(&pidfile)
    }

    pub fn start_ovsdb(&mut self) -> Result<()> {
        let args = vec![
            self.dir.join("conf.db").display().to_string(),
            format!("--remote=punix:{}", self.db_sock().display()),
        ];
        self.ovsdb_pid = Some(self.daemon("ovsdb-server", &args)?);
        Ok(())
    }

    pub fn start_vswitchd(&mut self) -> Result<()> {
        let args = vec![format!("unix:{}", self.db_sock().display())];
        self.vswitchd_pid = Some(self.daemon("ovs-vswitchd", &args)?);
        Ok(())
    }

    pub fn stop_vswitchd(&mut self) {
        if let Some(pid) = self.vswitchd_pid.take() {
            stop_pid(pid);
        }
    }

    pub fn stop_ovsdb(&mut self) {
        if let Some(pid) = self.ovsdb_pid.take() {
            stop_pid(pid);
        }
    }

    pub fn pids(&self) -> Vec<u32> {
        self.ovsdb_pid
            .into_iter()
            .chain(self.vswitchd_pid)
            .collect()
    }

    /// `ovs-vsctl` against this instance (tests inspect and break things
    /// with it; product code never does).
    pub fn vsctl(&self, args: &[&str]) -> Result<String> {
        let mut c = Command::new("ovs-vsctl");
        c.arg(format!("--db={}", self.endpoint()))
            .arg("--timeout=10")
            .args(args);
        stdout(&mut c)
    }

    pub fn appctl(&self, daemon: &str, args: &[&str]) -> Result<String> {
        let mut c = Command::new("ovs-appctl");
        c.arg("-t")
            .arg(self.dir.join(format!("{daemon}.ctl")))
            .args(args);
        stdout(&mut c)
    }
}

fn read_pid(pidfile: &Path) -> Result<u32> {
    let text = std::fs::read_to_string(pidfile).map_err(|source| Error::Io {
        what: format!("read {}", pidfile.display()),
        source,
    })?;
    text.trim()
        .parse()
        .map_err(|_| Error::Other(format!("{} holds {text:?}, not a pid", pidfile.display())))
}

impl Drop for Ovs {
    fn drop(&mut self) {
        self.stop_vswitchd();
        self.stop_ovsdb();
        if self.pids().iter().all(|p| !alive(*p)) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
