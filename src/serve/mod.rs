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
pub mod conn;
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
    pub timeouts: Timeouts,
}

/// How long `serve` waits for clients, so that slow or silent ones cannot hold its request
/// slots or connections, and how long a shutdown waits for the requests in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// How long a connection may wait for a request: from its start, or from the end of the
    /// previous answer on it (a kept-alive connection), to the request's first byte
    /// (`--idle-timeout`). Then it is closed.
    pub idle: Duration,
    /// A request's headers must arrive whole within this of their first byte
    /// (`--header-timeout`). Then the connection is closed.
    pub header: Duration,
    /// A request's body must arrive whole within this, counted from when it is admitted (its
    /// headers read); else 408 (`--body-timeout`).
    pub body: Duration,
    /// How long a client may leave its answer unread: a write that makes no progress for this
    /// long closes the connection (`--write-timeout`; progress restarts it, as nginx's
    /// `send_timeout`).
    pub write: Duration,
    /// At shutdown, how long the requests in flight may take to be answered; the connections
    /// still open after it are closed (`--shutdown-grace`).
    pub shutdown_grace: Duration,
}

impl Default for Timeouts {
    /// 30 s idle, 10 s for headers, 60 s for a body, 30 s for an unread answer, 30 s of
    /// shutdown grace.
    fn default() -> Self {
        Timeouts {
            idle: Duration::from_secs(30),
            header: Duration::from_secs(10),
            body: Duration::from_secs(60),
            write: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

/// A loaded model behind its routes, not yet listening.
pub struct Service {
    info: ModelInfo,
    router: Router,
    worker: batcher::Worker,
    timeouts: Timeouts,
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
        body_timeout: opts.timeouts.body,
    };
    let router = http::router(info.clone(), jobs, limits, batch.max_batch);
    Ok(Service {
        info,
        router,
        worker,
        timeouts: opts.timeouts,
    })
}

impl Service {
    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// Serves on `listener` until `shutdown` completes, then stops accepting connections,
    /// answers the requests already received (for at most the shutdown grace; connections
    /// still open then are closed) and stops the model thread. Each connection is HTTP/1.1
    /// with the idle, header and write timeouts ([`Timeouts`], [`conn`]).
    pub async fn run(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<()> {
        let Service { router, worker, timeouts, .. } = self;
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        let mut http = hyper::server::conn::http1::Builder::new();
        // hyper's header timer runs from when it waits for a request, which would make it the
        // idle limit too: conn keeps the two apart.
        http.timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(None);
        let limits = conn::ConnLimits {
            idle: timeouts.idle,
            header: timeouts.header,
            write: timeouts.write,
        };
        let mut connections = tokio::task::JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            let stream = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        // Out of file descriptors, say: wait a little rather than spin.
                        tracing::warn!("accepting a connection: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                // Finished connections are reaped as they end.
                Some(_) = connections.join_next(), if !connections.is_empty() => continue,
                () = &mut shutdown => break,
            };
            let state = conn::ConnState::new();
            let service = conn::Tracked {
                inner: hyper_util::service::TowerToHyperService::new(router.clone()),
                state: state.clone(),
            };
            let io = hyper_util::rt::TokioIo::new(conn::TimedStream::new(stream, state, limits));
            let conn = graceful.watch(http.serve_connection(io, service));
            connections.spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!("connection closed: {e}");
                }
            });
        }
        drop(listener);
        drop(router);
        let drained = async {
            graceful.shutdown().await;
            while connections.join_next().await.is_some() {}
        };
        if tokio::time::timeout(timeouts.shutdown_grace, drained).await.is_err() {
            tracing::warn!(
                "connections still open {} s after shutdown began (--shutdown-grace): closed",
                timeouts.shutdown_grace.as_secs_f64()
            );
        }
        connections.shutdown().await;
        // The routes (and with them the queue's senders) are gone: the worker answers what is
        // left and stops.
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
