//! `cargo run -p xtask -- <command>`: the demo and the benchmarks, built on
//! the `lab` library the integration tests use too.

mod bench_add;
mod bench_dataplane;
mod bench_flax;
mod demo;
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
    /// Bring up an emulated cluster, attach pods through the real CNI chain,
    /// and show them talking across nodes.
    Demo {
        #[arg(long, default_value_t = 3)]
        nodes: usize,
        #[arg(long, default_value_t = 2)]
        pods_per_node: usize,
        /// The original star topology: node 1 is the master (isMaster).
        #[arg(long)]
        hub: bool,
        /// Leave the lab running; remove it later with `down`.
        #[arg(long)]
        keep: bool,
        /// The original workflow: write `vtepIPs` into each node's conflist
        /// instead of running flax with etcd.
        #[arg(long)]
        static_vteps: bool,
        /// Run a real OpenFlow controller (Faucet) and point every br0 at it;
        /// implies the hub topology, as the original project ran it.
        #[arg(long)]
        controller: bool,
    },
    /// iperf3 pod to pod: same node, across nodes through Linen's OVS
    /// tunnels, and through a plain kernel VXLAN between the same nodes.
    BenchDataplane {
        #[arg(long, default_value_t = 5)]
        seconds: u32,
        #[arg(long, default_value_t = 3)]
        repeats: usize,
    },
    /// flax: join-to-tunnel latency over etcd, and the time and memory to
    /// reconcile a large membership.
    BenchFlax {
        #[arg(long, default_value_t = 50)]
        joins: usize,
        #[arg(long, default_value_t = 500)]
        peers: usize,
    },
    /// Remove a lab left running by `demo --keep`.
    Down {
        /// The state file `demo --keep` printed.
        state: std::path::PathBuf,
    },
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
        Cmd::Demo {
            nodes,
            pods_per_node,
            hub,
            keep,
            controller,
            static_vteps,
        } => {
            anyhow::ensure!(nodes >= 2, "a demo needs at least 2 nodes");
            demo::run(
                demo::Args {
                    nodes,
                    pods_per_node,
                    hub: hub || controller,
                    keep,
                    controller,
                    static_vteps,
                },
                bench_add::linen_dir()?,
            )
        }
        Cmd::Down { state } => demo::down(&state),
        Cmd::BenchAdd { iterations } => bench_add::run(iterations),
        Cmd::BenchFlax { joins, peers } => bench_flax::run(bench_add::linen_dir()?, joins, peers),
        Cmd::BenchDataplane { seconds, repeats } => {
            bench_dataplane::run_bench(bench_add::linen_dir()?, seconds, repeats)
        }
    }
}
