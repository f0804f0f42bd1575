//! Traffic between lab namespaces: iperf3 throughput.

use crate::process::stop_pid;
use crate::{Error, Netns, Result};
use std::process::{Child, Stdio};
use std::time::Duration;

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        stop_pid(self.0.id());
        let _ = self.0.wait();
    }
}

/// Bits per second of one iperf3 TCP stream from `client` to a server
/// started in `server_ns` on `server_ip`, over `seconds`.
pub fn iperf(client: &Netns, server_ns: &Netns, server_ip: &str, seconds: u32) -> Result<f64> {
    let _server = Server(
        server_ns
            .cmd(["iperf3", "-s", "-1", "-B", server_ip])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|source| Error::Io {
                what: "start iperf3 server".into(),
                source,
            })?,
    );
    let mut last = String::new();
    // The server may take a moment to listen.
    for _ in 0..40 {
        let out = client
            .cmd(["iperf3", "-c", server_ip, "-t", &seconds.to_string(), "-J"])
            .output()
            .map_err(|source| Error::Io {
                what: "run iperf3 client".into(),
                source,
            })?;
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        if let Some(bps) = v["end"]["sum_received"]["bits_per_second"].as_f64() {
            return Ok(bps);
        }
        last = v["error"].as_str().unwrap_or_default().to_string();
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(Error::Other(format!("iperf3 to {server_ip}: {last}")))
}
