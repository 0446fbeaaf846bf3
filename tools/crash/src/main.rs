//! `recstore-crash`: runs the crash harness for any number of cycles and
//! prints its report (RELIABILITY.md). Exit code 1 when a write was lost.

use std::path::PathBuf;

use clap::Parser;

/// SIGKILL a recstore server again and again under concurrent writes, and
/// check every acknowledged write after each restart.
#[derive(Debug, Parser)]
struct Args {
    /// The recstore binary (build it first: cargo build --release).
    #[arg(long, default_value = "target/release/recstore")]
    binary: PathBuf,
    /// Data directory; a fresh temporary one by default.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Kill/restart cycles.
    #[arg(long, default_value_t = 30)]
    cycles: usize,
    /// Longest a cycle's writers run before the kill.
    #[arg(long, default_value_t = 3.0)]
    cycle_seconds: f64,
    /// Items loaded before the first cycle.
    #[arg(long, default_value_t = 20_000)]
    preload: usize,
    #[arg(long, default_value_t = 32)]
    dimension: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Print the server's log.
    #[arg(long)]
    verbose: bool,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<std::process::ExitCode> {
    let args = Args::parse();
    let temp;
    let data_dir = match args.data_dir {
        Some(d) => d,
        None => {
            temp = std::env::temp_dir().join(format!("recstore-crash-{}", std::process::id()));
            temp
        }
    };
    let mut options = recstore_crash::Options::new(args.binary, data_dir.clone());
    options.cycles = args.cycles;
    options.cycle_seconds = args.cycle_seconds;
    options.preload = args.preload;
    options.dimension = args.dimension;
    options.seed = args.seed;
    options.verbose = args.verbose;
    let report = recstore_crash::run(&options).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("{report:#?}");
    }
    println!("data directory: {}", data_dir.display());
    Ok(if report.violations.is_empty() {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    })
}
