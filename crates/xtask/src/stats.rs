use std::time::Duration;

/// Percentiles over a set of samples (nearest-rank).
pub struct Summary {
    pub n: usize,
    pub p50: Duration,
    pub p99: Duration,
    pub mean: Duration,
}

pub fn summarize(samples: &[Duration]) -> Summary {
    let mut v = samples.to_vec();
    v.sort();
    let rank = |p: f64| v[((p * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
    Summary {
        n: v.len(),
        p50: rank(0.50),
        p99: rank(0.99),
        mean: v.iter().sum::<Duration>() / v.len() as u32,
    }
}

pub fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

/// The version a tool prints first (`ovs-vswitchd (Open vSwitch) 3.1.0`,
/// `etcd Version: 3.4.23`): the last word of its first line.
pub fn tool_version(program: &str) -> String {
    std::process::Command::new(program)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .map(|l| l.rsplit(' ').next().unwrap_or("").to_string())
        })
        .unwrap_or_default()
}
