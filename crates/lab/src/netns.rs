use crate::process::run;
use crate::Result;
use std::path::PathBuf;
use std::process::Command;

/// A network namespace this process created; deleted on drop.
#[derive(Debug)]
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn create(prefix: &str) -> Result<Netns> {
        // A crashed run whose pid came back may have left this very name:
        // never adopt it, take the next one.
        let mut attempt = 0;
        let name = loop {
            let name = crate::unique(prefix);
            match run(Command::new("ip").args(["netns", "add", &name])) {
                Ok(_) => break name,
                Err(e) if attempt < 16 && PathBuf::from("/var/run/netns").join(&name).exists() => {
                    attempt += 1;
                    let _ = e;
                }
                Err(e) => return Err(e),
            }
        };
        let ns = Netns { name };
        run(&mut ns.cmd(["ip", "link", "set", "lo", "up"]))?;
        Ok(ns)
    }

    pub fn path(&self) -> PathBuf {
        PathBuf::from("/var/run/netns").join(&self.name)
    }

    /// A command that runs inside this namespace.
    pub fn cmd<I, S>(&self, argv: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]);
        c.args(argv);
        c
    }

    /// `ping` from inside this namespace; true when every probe came back.
    pub fn ping(&self, addr: &str, count: u32) -> bool {
        self.cmd([
            "ping",
            "-q",
            "-n",
            "-c",
            &count.to_string(),
            "-i",
            "0.2",
            "-W",
            "1",
            addr,
        ])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}
