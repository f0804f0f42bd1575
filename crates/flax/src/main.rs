use clap::Parser;
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    about = "Linen's node daemon: keeps this node's VXLAN tunnels in step with cluster membership"
)]
struct Cli {
    /// The configuration file (TOML).
    #[arg(long, short, default_value = "/etc/linen/flax.toml")]
    config: PathBuf,
    /// Overrides `node_name`.
    #[arg(long)]
    node_name: Option<String>,
    /// Overrides `node_ip`.
    #[arg(long)]
    node_ip: Option<std::net::IpAddr>,
    /// Overrides `metrics_address`.
    #[arg(long)]
    metrics_address: Option<std::net::SocketAddr>,
    /// Overrides `ovs.socket`.
    #[arg(long)]
    ovsdb_socket: Option<String>,
    /// Overrides `etcd.endpoints` (comma-separated).
    #[arg(long, value_delimiter = ',')]
    etcd_endpoints: Option<Vec<String>>,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        // Colour only for a person at a terminal, not in log files.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    let mut cfg = flax::config::Config::load(&cli.config)?;
    if let Some(v) = cli.node_name {
        cfg.node_name = v;
    }
    if let Some(v) = cli.node_ip {
        cfg.node_ip = v;
    }
    if let Some(v) = cli.metrics_address {
        cfg.metrics_address = v;
    }
    if let Some(v) = cli.ovsdb_socket {
        cfg.ovs.socket = v;
    }
    if let (Some(v), Some(etcd)) = (cli.etcd_endpoints, cfg.etcd.as_mut()) {
        etcd.endpoints = v;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(flax::daemon::run(cfg))
}
