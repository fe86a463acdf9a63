//! `normiqa serve`: an HTTP scoring service (axum on tokio).
//!
//! ```text
//! request ─▶ admission (at most `queue` requests in the service, else 503)
//!         ─▶ body (≤ max_body_bytes, raw or multipart) ─▶ header size check (≤ max_image_pixels)
//!         ─▶ decode (blocking pool) ─▶ batcher queue ─▶ model thread: up to `max_batch`
//!            same-size images per forward pass ─▶ score ─▶ JSON
//! ```
//! The model lives on one thread ([`batcher`]); [`model`] is the only file that touches a
//! trained run. Shutdown (ctrl-c or SIGTERM) stops accepting connections, answers every request
//! already received, then stops the model thread.

pub mod batcher;
pub mod http;
pub mod model;

use std::future::Future;
use std::time::Duration;

use anyhow::{Context, Result};
use axum::Router;
use tokio::net::TcpListener;

pub use batcher::{BatchOptions, LoadModel};
pub use http::Limits;
pub use model::{ModelInfo, Scorer};

/// Everything `serve` can be told besides the model.
#[derive(Debug, Clone, Copy)]
pub struct ServeOptions {
    /// Most images per forward pass (at least 1).
    pub max_batch: usize,
    /// How long the model waits after a request for others to batch with it.
    pub max_wait: Duration,
    /// Most requests in the service at once; more are answered 503.
    pub queue: usize,
    pub max_body_bytes: usize,
    /// 0 = no limit.
    pub max_image_pixels: u64,
}

/// A loaded model behind its routes, not yet listening.
pub struct Service {
    info: ModelInfo,
    router: Router,
    worker: batcher::Worker,
}

/// Loads the model (on its own thread, through `load`) and builds the routes.
pub fn start(load: LoadModel, opts: ServeOptions) -> Result<Service> {
    start_workers(vec![load], opts)
}

/// [`start`] with one model worker per loader (each its own thread and copy of the model).
pub fn start_workers(loads: Vec<LoadModel>, opts: ServeOptions) -> Result<Service> {
    let queue = opts.queue.max(1);
    let batch = BatchOptions {
        max_batch: opts.max_batch.max(1),
        max_wait: opts.max_wait,
        capacity: queue,
    };
    let (info, jobs, worker) = batcher::start(loads, batch)?;
    let limits = Limits {
        max_body_bytes: opts.max_body_bytes,
        max_image_pixels: opts.max_image_pixels,
        max_requests: queue,
    };
    let router = http::router(info.clone(), jobs, limits, batch.max_batch);
    Ok(Service {
        info,
        router,
        worker,
    })
}

impl Service {
    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// Serves on `listener` until `shutdown` completes, then answers the requests already
    /// received and stops the model thread.
    pub async fn run(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<()> {
        axum::serve(listener, self.router)
            .with_graceful_shutdown(shutdown)
            .await
            .context("serving HTTP")?;
        // The routes (and with them the queue's senders) are gone: the worker answers what is
        // left and stops.
        let worker = self.worker;
        tokio::task::spawn_blocking(move || worker.join())
            .await
            .context("waiting for the model thread")??;
        Ok(())
    }
}

/// Completes on ctrl-c (SIGINT) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await
        }
    };
    #[cfg(unix)]
    let term = async {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
    tracing::info!("shutting down: answering the requests already received, accepting no more");
}
