use crate::{Error, Result};
use std::process::{Command, Output};

/// Runs a command to completion; a non-zero exit is an error carrying stderr.
pub fn run(cmd: &mut Command) -> Result<Output> {
    let shown = format!("{cmd:?}");
    let out = cmd.output().map_err(|source| Error::Io {
        what: format!("cannot run {shown}"),
        source,
    })?;
    if !out.status.success() {
        return Err(Error::Command {
            cmd: shown,
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(out)
}

pub fn stdout(cmd: &mut Command) -> Result<String> {
    Ok(String::from_utf8_lossy(&run(cmd)?.stdout)
        .trim()
        .to_string())
}

/// Stops a daemon we started, by its pid: TERM, then KILL if it lingers.
pub fn stop_pid(pid: u32) {
    let pid = pid as libc::pid_t;
    // SAFETY: signalling a pid we started; a stale pid just yields ESRCH.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    for _ in 0..100 {
        if !alive(pid as u32) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // SAFETY: as above.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    for _ in 0..50 {
        if !alive(pid as u32) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// A zombie counts as gone: it holds no resources but its pid.
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}
