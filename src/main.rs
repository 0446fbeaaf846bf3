//! The `recstore` binary: parse the command line into validated settings,
//! set up logging, and hand over to the library.

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use recstore::config::{Cli, Command, LoadArgs, RestoreArgs, Settings};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => match serve_main(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        },
        Command::Load(args) => load_main(args),
        Command::Restore(args) => restore_main(args),
        Command::Openapi => {
            print!("{}", recstore::api::openapi_json());
            ExitCode::SUCCESS
        }
    }
}

/// `recstore restore`: 0 restored, 1 nothing changed.
fn restore_main(args: RestoreArgs) -> ExitCode {
    let data_dir = match args.data_dir() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    match recstore::backup::restore(&args.from, &data_dir) {
        Ok(restored) => {
            if args.json {
                println!(
                    "{}",
                    serde_json::to_string(&restored).expect("the summary serialises")
                );
            } else {
                println!(
                    "restored {} ({:.1} MiB) into {}",
                    args.from.display(),
                    restored.bytes as f64 / (1024.0 * 1024.0),
                    restored.data_dir.display()
                );
                for c in &restored.catalogs {
                    println!(
                        "  catalog {}: {} items, {} users, {}",
                        c.name,
                        c.items,
                        c.users,
                        match c.snapshot_watermark {
                            Some(_) => "index snapshot included",
                            None => "no index snapshot (built at start)",
                        }
                    );
                }
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn serve_main(args: recstore::config::ServeArgs) -> anyhow::Result<()> {
    let settings = Settings::from_serve_args(args)?;
    init_tracing(settings.log_json);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let served = runtime.block_on(serve(settings));
    // The store is flushed and closed by now. What may still run on the
    // blocking pool is derived work (a catalog index still being built at
    // start): dropping the runtime would wait for it, so a SIGTERM during a
    // long start would hang. Give it a moment, then leave.
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    served
}

/// `recstore load`: 0 all loaded, 2 loaded with rejects, 1 nothing changed.
fn load_main(args: LoadArgs) -> ExitCode {
    let json = args.json;
    let options = match recstore::load::LoadOptions::from_args(args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Logs go to stderr: stdout carries the summary.
    let filter = tracing_subscriber::EnvFilter::try_from_env("RECSTORE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    match recstore::load::run(&options) {
        Ok(summary) => {
            if json {
                println!(
                    "{}",
                    serde_json::to_string(&summary).expect("the summary serialises")
                );
            } else if summary.kind == "events" {
                println!(
                    "loaded {} events into catalog {} in {:.1} s: {} duplicates skipped, {} users created, {} unknown item ids (kept)",
                    summary.loaded,
                    summary.catalog,
                    summary.seconds.total,
                    summary.duplicates,
                    summary.new_users,
                    summary.unknown_items,
                );
                if let Some(file) = &summary.rejects_file {
                    println!(
                        "{} rows rejected, listed in {}",
                        summary.rejected,
                        file.display()
                    );
                }
            } else {
                let mb = |b: u64| b as f64 / (1024.0 * 1024.0);
                println!(
                    "loaded {} {} into catalog {} ({}) in {:.1} s: read {:.1} s, write {:.1} s, graph {:.1} s, snapshot {:.1} s",
                    summary.loaded,
                    summary.kind,
                    summary.catalog,
                    if summary.created { "created" } else { "updated" },
                    summary.seconds.total,
                    summary.seconds.read,
                    summary.seconds.write,
                    summary.seconds.graph,
                    summary.seconds.snapshot,
                );
                println!(
                    "catalog now holds {} items and {} users; {:.0} vectors/s; snapshot {:.1} MiB; peak memory {}",
                    summary.catalog_items,
                    summary.catalog_users,
                    summary.vectors_per_second,
                    mb(summary.snapshot_bytes),
                    summary
                        .peak_rss_bytes
                        .map_or("unknown".to_string(), |b| format!("{:.0} MiB", mb(b))),
                );
                if let Some(file) = &summary.rejects_file {
                    println!(
                        "{} rows rejected, listed in {}",
                        summary.rejected,
                        file.display()
                    );
                }
            }
            if summary.rejected > 0 {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let shutdown = shutdown_signal().context("cannot handle SIGINT and SIGTERM")?;
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    recstore::server::run(listener, settings, shutdown)
        .await
        .context("server failed")
}

fn init_tracing(json: bool) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("RECSTORE_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,hnsw_rs=warn"));
    use std::io::IsTerminal;
    // Colour codes only on a terminal: logs piped to files or collectors
    // (and the tests that read the "listening on" line) stay plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stdout().is_terminal());
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// A future that resolves on SIGINT (Ctrl-C) or SIGTERM. The handlers are
/// installed here, before the store opens or the port is bound, not when
/// the future is first polled: the server polls it from a task of its own,
/// and a SIGTERM that came before that task ran (an orchestrator stopping
/// a server that had just started; seen in the tests under CPU load) met
/// the default action and killed the process without its final flush.
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut terminate = signal(SignalKind::terminate())?;
        Ok(async move {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
        })
    }
}
