//! `recstore-shoppersim`: runs simulated shoppers against a running
//! recstore server and reports how its experiment statistics behave
//! (false positives, coverage, power). See the library's docs and
//! EXPERIMENTS.md.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, ValueEnum};

use recstore_shoppersim::engagement::{engagement_markdown, run_engagement, EngagementOptions};
use recstore_shoppersim::{markdown, run, Options, Scenario};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Kind {
    /// Both arms the same: every rejection is a false positive.
    Aa,
    /// The treatment's shoppers click `--lift` more often.
    Ab,
    /// The treatment is a holdout that answers nothing.
    Holdout,
    /// The engagement study (#19): calibration and AUC of the served
    /// score on held-out shoppers, and an A/B of `rank_by: engagement`.
    Engagement,
}

#[derive(Debug, Parser)]
#[command(
    name = "recstore-shoppersim",
    about = "Simulated shoppers through A/A, A/B and holdout experiments on a real recstore server"
)]
struct Args {
    /// The server.
    #[arg(long, default_value = "http://127.0.0.1:7720")]
    url: String,
    /// An API key with write rights (or RECSTORE_API_KEY).
    #[arg(long, env = "RECSTORE_API_KEY")]
    api_key: Option<String>,
    #[arg(long, value_enum, default_value = "aa")]
    scenario: Kind,
    /// Relative lift in the treatment's click probability (`ab`).
    #[arg(long, default_value_t = 0.2)]
    lift: f64,
    #[arg(long, default_value_t = 200)]
    experiments: usize,
    /// Shoppers per experiment, both arms together.
    #[arg(long, default_value_t = 2_000)]
    units: usize,
    /// Batches the shoppers arrive in; results are read after each.
    #[arg(long, default_value_t = 10)]
    batches: usize,
    /// Visits per shopper.
    #[arg(long, default_value_t = 3)]
    visits: usize,
    /// Catalogs (experiments) run side by side.
    #[arg(long, default_value_t = 4)]
    parallel: usize,
    /// Shoppers in flight per catalog.
    #[arg(long, default_value_t = 16)]
    in_flight: usize,
    /// The experiments' primary metric.
    #[arg(long, default_value = "ctr")]
    primary_metric: String,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Also write the whole report (every look of every experiment) as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
    /// `engagement`: items in the catalog.
    #[arg(long, default_value_t = 2_000)]
    items: usize,
    /// `engagement`: shoppers of the logging, held-out and A/B phases.
    #[arg(long, default_value_t = 3_000)]
    train_shoppers: usize,
    #[arg(long, default_value_t = 1_500)]
    test_shoppers: usize,
    #[arg(long, default_value_t = 3_000)]
    ab_shoppers: usize,
    /// `engagement`: the server's `--attribution-window-secs` (the study
    /// waits it out before training).
    #[arg(long, default_value_t = 2)]
    window_secs: u64,
}

async fn engagement(args: &Args) -> anyhow::Result<()> {
    let mut o = EngagementOptions::new(args.url.clone());
    o.api_key = args.api_key.clone();
    o.items = args.items;
    o.train_shoppers = args.train_shoppers;
    o.test_shoppers = args.test_shoppers;
    o.ab_shoppers = args.ab_shoppers;
    o.visits = args.visits;
    o.in_flight = args.in_flight;
    o.window_secs = args.window_secs;
    o.seed = args.seed;
    let report = run_engagement(&o).await?;
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    print!("{}", engagement_markdown(&report));
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let scenario = match args.scenario {
        Kind::Aa => Scenario::Aa,
        Kind::Ab => Scenario::Ab { lift: args.lift },
        Kind::Holdout => Scenario::Holdout,
        Kind::Engagement => return engagement(&args).await,
    };
    let mut options = Options::new(args.url, scenario);
    options.api_key = args.api_key;
    options.experiments = args.experiments;
    options.units = args.units;
    options.batches = args.batches;
    options.visits = args.visits;
    options.parallel = args.parallel;
    options.in_flight = args.in_flight;
    options.primary_metric = args.primary_metric;
    options.seed = args.seed;
    let report = run(&options).await?;
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    print!("{}", markdown(&report));
    if !report.mismatches.is_empty() {
        for m in report.mismatches.iter().take(20) {
            eprintln!("mismatch: {m}");
        }
        anyhow::bail!(
            "{} counts differ from what was sent",
            report.mismatches.len()
        );
    }
    Ok(())
}
