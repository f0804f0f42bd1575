//! The optional `logFile`: stdout belongs to the runtime, so diagnostics go
//! to a file, written once at the end of the invocation.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Debug)]
pub struct Log {
    start: Instant,
    lines: Vec<String>,
    pub path: Option<PathBuf>,
}

impl Default for Log {
    fn default() -> Self {
        Log {
            start: Instant::now(),
            lines: Vec::new(),
            path: None,
        }
    }
}

impl Log {
    /// Records a step with the time since the invocation started, so slow
    /// ADDs can be explained from the log alone.
    pub fn step(&mut self, msg: impl AsRef<str>) {
        let us = self.start.elapsed().as_micros();
        self.lines.push(format!(
            "+{}.{:03}ms {}",
            us / 1000,
            us % 1000,
            msg.as_ref()
        ));
    }

    pub fn flush(&mut self, header: &str) {
        let Some(path) = &self.path else { return };
        let ts = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or_default();
        let mut text = format!("{ts:.3} pid={} {header}\n", std::process::id());
        for l in self.lines.drain(..) {
            text.push_str("  ");
            text.push_str(&l);
            text.push('\n');
        }
        // O_APPEND writes of one buffer do not interleave between processes.
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = f.write_all(text.as_bytes());
        }
    }
}
