//! `cargo run -p xtask -- <command>`: the demo and the benchmarks, built on
//! the `lab` library the integration tests use too.

mod bench_add;
mod stats;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "Linen's demo and benchmarks (run as root)")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Time the plugin's ADD (warm and cold) against the bridge+host-local
    /// steps, on a real OVS in a throwaway namespace.
    BenchAdd {
        /// ADDs per measured step.
        #[arg(long, default_value_t = 200)]
        iterations: usize,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    anyhow::ensure!(
        lab::is_root(),
        "run as root: network namespaces and Open vSwitch need it"
    );
    match cli.command {
        Cmd::BenchAdd { iterations } => bench_add::run(iterations),
    }
}
