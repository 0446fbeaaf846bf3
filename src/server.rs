//! The server's lifecycle: open the store, open catalogs in the background,
//! serve HTTP until the shutdown future resolves, drain in-flight requests
//! (bounded), flush.
//!
//! [`run`] takes an already-bound listener and a shutdown future, so tests
//! start a real server on `127.0.0.1:0` and stop it cleanly.

use std::future::{Future, IntoFuture};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tower_http::catch_panic::CatchPanicLayer;

use crate::api::error::ApiError;
use crate::api::{router, AppState};
use crate::catalog::registry::Catalogs;
use crate::config::Settings;
use crate::error::{Error, Result};
use crate::storage::Store;

/// How long in-flight requests may take to finish after shutdown begins.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves the API on `listener` until `shutdown` resolves.
pub async fn run(
    listener: TcpListener,
    settings: Settings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let data_dir = settings.data_dir.clone();
    let index_settings = settings.index;
    let store_options = settings.store;
    let analytics_settings = settings.analytics;
    let catalogs = tokio::task::spawn_blocking(move || -> Result<Catalogs> {
        let store = Arc::new(Store::open_with(&data_dir, store_options)?);
        Catalogs::open(store, index_settings, analytics_settings)
    })
    .await
    .map_err(|e| Error::Io {
        path: settings.data_dir.clone(),
        source: std::io::Error::other(e.to_string()),
    })??;
    let catalogs = Arc::new(catalogs);

    // Indexes build in the background: /healthz answers at once, /readyz
    // and the catalogs' routes say "loading" until they are built.
    let loader = Arc::clone(&catalogs);
    tokio::task::spawn_blocking(move || loader.load_all());
    // The collaborative models retrain in the background (0: only when
    // asked, POST .../model/train).
    let trainer = match settings.index.model_check_secs {
        0 => None,
        secs => Trainer::spawn(Arc::downgrade(&catalogs), Duration::from_secs(secs)),
    };

    let state = AppState::new(
        Arc::clone(&catalogs),
        settings.limits,
        settings.api_keys.clone(),
        settings.backup_dir.clone(),
    );
    let app = router(state).layer(CatchPanicLayer::custom(
        |_: Box<dyn std::any::Any + Send>| {
            axum::response::IntoResponse::into_response(ApiError::Panic)
        },
    ));

    // A bad certificate stops the start, before anything is served.
    let acceptor = match &settings.tls {
        Some(files) => Some(crate::tls::acceptor(&files.cert, &files.key)?),
        None => None,
    };
    let address = listener.local_addr().map_err(|source| Error::Io {
        path: settings.data_dir.clone(),
        source,
    })?;
    tracing::info!(
        %address,
        data_dir = %settings.data_dir.display(),
        kernels = crate::index::kernels::active().name,
        auth = if settings.api_keys.enabled() { "api keys" } else { "none" },
        tls = acceptor.is_some(),
        "recstore listening on {address}"
    );
    if !address.ip().is_loopback() && !settings.api_keys.enabled() {
        tracing::warn!(
            %address,
            "LISTENING BEYOND LOOPBACK WITHOUT AN API KEY: anyone who can reach \
             {address} can read and change every catalog; set RECSTORE_API_KEY"
        );
    }

    let (stop_tx, mut stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let mut graceful_rx = stop_rx.clone();
    let graceful = async move {
        let _ = graceful_rx.wait_for(|stop| *stop).await;
        tracing::info!("shutting down: draining in-flight requests");
    };
    // With TLS the same serve loop runs over handshaken connections.
    let serve: std::pin::Pin<Box<dyn Future<Output = std::io::Result<()>> + Send>> = match acceptor
    {
        None => Box::pin(
            axum::serve(listener, app)
                .with_graceful_shutdown(graceful)
                .into_future(),
        ),
        Some(acceptor) => {
            let listener =
                crate::tls::TlsListener::new(listener, acceptor).map_err(|source| Error::Io {
                    path: settings.data_dir.clone(),
                    source,
                })?;
            Box::pin(
                axum::serve(listener, app)
                    .with_graceful_shutdown(graceful)
                    .into_future(),
            )
        }
    };
    let drain_deadline = async move {
        let _ = stop_rx.wait_for(|stop| *stop).await;
        tokio::time::sleep(DRAIN_TIMEOUT).await;
    };
    tokio::select! {
        served = serve => {
            if let Err(e) = served {
                tracing::error!(error = %e, "server error");
            }
        }
        _ = drain_deadline => tracing::warn!("drain timed out after {DRAIN_TIMEOUT:?}; closing remaining connections"),
    }

    let flusher = Arc::clone(&catalogs);
    match tokio::task::spawn_blocking(move || {
        if let Some(trainer) = trainer {
            trainer.stop();
        }
        flusher.snapshot_all();
        flusher.flush()
    })
    .await
    {
        Ok(Ok(())) => tracing::info!("store flushed; bye"),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "final flush failed (the WAL still holds every write)")
        }
        Err(e) => tracing::error!(error = %e, "final flush task failed"),
    }
    Ok(())
}

/// How long shutdown waits for a training in progress before it goes on
/// without it (the store then closes when the training ends).
const TRAINER_STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// The background thread that retrains the collaborative models that are
/// due (`Catalog::training_due`), checking every `every`.
///
/// One thread, at nice 10, and faer's sequential kernels: a training uses
/// at most one core and yields it to requests, so reads and writes go on
/// at full speed on the other (on 2 cores). Training reads the events
/// through a RocksDB iterator and swaps the model in under a brief write
/// lock; it never takes a sequencer turn. The thread holds the catalogs
/// only while it checks or trains (a `Weak` otherwise), so a stopped
/// server's store closes and its folder can be opened again at once.
struct Trainer {
    stop: Arc<AtomicBool>,
    thread: std::thread::Thread,
    done: std::sync::mpsc::Receiver<()>,
}

impl Trainer {
    fn spawn(catalogs: std::sync::Weak<Catalogs>, every: Duration) -> Option<Trainer> {
        let stop = Arc::new(AtomicBool::new(false));
        let (done_tx, done) = std::sync::mpsc::channel();
        let flag = Arc::clone(&stop);
        let spawned = std::thread::Builder::new()
            .name("recstore-trainer".into())
            .spawn(move || {
                lower_priority();
                while !flag.load(Ordering::Relaxed) {
                    std::thread::park_timeout(every);
                    if flag.load(Ordering::Relaxed) {
                        break;
                    }
                    let Some(catalogs) = catalogs.upgrade() else {
                        break;
                    };
                    for catalog in catalogs.ready() {
                        if flag.load(Ordering::Relaxed) {
                            break;
                        }
                        if catalog.training_due() {
                            train(&catalog);
                        }
                        if !flag.load(Ordering::Relaxed) && catalog.engagement_due() {
                            train_engagement(&catalog);
                        }
                    }
                }
                let _ = done_tx.send(());
            });
        match spawned {
            Ok(handle) => Some(Trainer {
                stop,
                thread: handle.thread().clone(),
                done,
            }),
            Err(e) => {
                tracing::error!(error = %e, "could not start the model trainer; models train only when asked");
                None
            }
        }
    }

    /// Stops the thread: at once when idle, after the current training
    /// otherwise (waiting at most `TRAINER_STOP_TIMEOUT`).
    fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.unpark();
        if self.done.recv_timeout(TRAINER_STOP_TIMEOUT).is_err() {
            tracing::warn!(
                "a collaborative model is still training; shutting down without waiting for it"
            );
        }
    }
}

/// One background training; a failure is logged and retried at the next
/// check.
fn train(catalog: &crate::catalog::Catalog) {
    let trained = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        catalog.train_collaborative(crate::recommend::blend::fit_for)
    }));
    match trained {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => {
            tracing::warn!(catalog = %catalog.name(), error = %e, "training the collaborative model failed; retried at the next check")
        }
        Err(_) => {
            tracing::error!(catalog = %catalog.name(), "training the collaborative model panicked (see the log)")
        }
    }
}

fn train_engagement(catalog: &crate::catalog::Catalog) {
    let trained =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| catalog.train_engagement()));
    match trained {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => {
            tracing::warn!(catalog = %catalog.name(), error = %e, "training the engagement model failed; retried at the next check")
        }
        Err(_) => {
            tracing::error!(catalog = %catalog.name(), "training the engagement model panicked (see the log)")
        }
    }
}

/// Nice 10 for the calling thread (Linux keeps a nice value per thread).
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: setpriority only reads its integer arguments; `0` names
        // the calling thread.
        let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, 10) };
        if rc != 0 {
            tracing::debug!("could not lower the trainer's priority");
        }
    }
}
