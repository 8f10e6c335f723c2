//! The running hub: routes, shared state, the snapshot refresher and
//! graceful shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use khien_store::Store;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::auth::{SCOPE_HITS_WRITE, SCOPE_READ, authenticate};
use crate::config::HubConfig;
use crate::db::{OwnedStore, StoreHandle};
use crate::error::{ApiError, Error, Problem};
use crate::metrics::{Metrics, add};
use crate::snapshot::{self, Current};

/// What every request handler shares.
#[derive(Debug)]
pub(crate) struct AppState {
    pub config: HubConfig,
    pub store: StoreHandle,
    pub metrics: Metrics,
    snapshot: RwLock<Option<Arc<Current>>>,
}

impl AppState {
    pub fn current_snapshot(&self) -> Option<Arc<Current>> {
        match self.snapshot.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub fn set_snapshot(&self, current: Arc<Current>) {
        match self.snapshot.write() {
            Ok(mut g) => *g = Some(current),
            Err(poisoned) => *poisoned.into_inner() = Some(current),
        }
    }
}

/// A hub bound to its address with its database open, not yet serving.
/// Made by [`HubConfig::build`]; run it with [`Hub::run`] or [`Hub::spawn`].
#[derive(Debug)]
pub struct Hub {
    listener: tokio::net::TcpListener,
    addr: SocketAddr,
    state: Arc<AppState>,
    /// The snapshot builder's own connection.
    builder_store: OwnedStore,
}

impl HubConfig {
    /// Checks the configuration, opens (and migrates) the database and
    /// binds the listening socket. Must run inside a Tokio runtime.
    pub async fn build(self) -> Result<Hub, Error> {
        self.validate()?;
        let database = self.database.clone();
        let (request_store, builder_store) = tokio::task::spawn_blocking(move || {
            let a = OwnedStore::new(Store::open(&database)?);
            let b = OwnedStore::new(Store::open(&database)?);
            Ok::<_, khien_store::Error>((a, b))
        })
        .await
        .map_err(|e| Error::Task(e.to_string()))??;
        let listener = tokio::net::TcpListener::bind(self.listen)
            .await
            .map_err(|source| Error::Bind {
                addr: self.listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| Error::Bind {
            addr: self.listen,
            source,
        })?;
        let state = Arc::new(AppState {
            store: StoreHandle::new(&self.database, request_store),
            config: self,
            metrics: Metrics::default(),
            snapshot: RwLock::new(None),
        });
        Ok(Hub {
            listener,
            addr,
            state,
            builder_store,
        })
    }
}

/// Runs a hub until `shutdown` completes (see [`shutdown_signal`]).
pub async fn serve(
    config: HubConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    config.build().await?.run(shutdown).await
}

impl Hub {
    /// The address actually bound (the port chosen, for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until `shutdown` completes, then stops accepting, lets the
    /// requests in flight finish (a batch being stored is committed and
    /// answered) and stops the snapshot refresher.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), Error> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let refresher = tokio::spawn(refresh_loop(
            self.state.clone(),
            self.builder_store,
            stop_rx,
        ));
        tracing::info!(event = "hub_started", addr = %self.addr);
        let result = axum::serve(self.listener, router(self.state))
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(Error::Serve);
        let _ = stop_tx.send(true);
        let _ = refresher.await;
        tracing::info!(event = "hub_stopped");
        result
    }

    /// Runs the hub as a task of the current Tokio runtime; the handle
    /// stops it. For tests and embedding.
    pub fn spawn(self) -> HubHandle {
        let addr = self.addr;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(self.run(async move {
            let _ = rx.await;
        }));
        HubHandle {
            addr,
            stop: Some(tx),
            task,
        }
    }
}

/// A hub running as a task; see [`Hub::spawn`].
#[derive(Debug)]
pub struct HubHandle {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: JoinHandle<Result<(), Error>>,
}

impl HubHandle {
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Shuts the hub down gracefully and waits for it.
    pub async fn shutdown(mut self) -> Result<(), Error> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        (&mut self.task)
            .await
            .map_err(|e| Error::Task(e.to_string()))?
    }
}

/// Completes on Ctrl-C or, on Unix, SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!(event = "hub_shutdown_requested");
}

fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/api/v1/hits", post(crate::ingest::post_hits))
        .route("/api/v1/snapshots/latest", get(latest_snapshot))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::new(Problem::NotFound, "no such endpoint")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(Problem::MethodNotAllowed, "method not allowed here")
}

async fn healthz(State(state): State<Arc<AppState>>) -> Result<&'static str, ApiError> {
    state
        .store
        .run(|s| s.indicators_changed_marker())
        .await
        .map_err(|e| {
            if e.status().is_server_error() {
                ApiError::new(Problem::Unavailable, "the database does not answer")
            } else {
                e
            }
        })?;
    Ok("ok\n")
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        state.metrics.render(),
    )
        .into_response()
}

async fn latest_snapshot(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    authenticate(&state.store, &headers, &[SCOPE_HITS_WRITE, SCOPE_READ]).await?;
    let Some(current) = state.current_snapshot() else {
        return Err(ApiError::new(
            Problem::SnapshotUnavailable,
            "the first snapshot is being built; retry shortly",
        ));
    };
    let etag = HeaderValue::from_str(&current.etag).map_err(|e| ApiError::internal(&e))?;
    let modified = HeaderValue::from_str(
        &current
            .summary
            .built_at
            .format("%a, %d %b %Y %H:%M:%S GMT")
            .to_string(),
    )
    .map_err(|e| ApiError::internal(&e))?;
    let cache = HeaderValue::from_static("no-cache");
    if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| snapshot::none_match(v, &current.etag))
    {
        return Ok((
            StatusCode::NOT_MODIFIED,
            [(header::ETAG, etag), (header::CACHE_CONTROL, cache)],
        )
            .into_response());
    }
    Ok((
        [
            (header::ETAG, etag),
            (header::CACHE_CONTROL, cache),
            (header::LAST_MODIFIED, modified),
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            ),
        ],
        current.bytes.clone(),
    )
        .into_response())
}

/// Checks for changes every `snapshot_refresh_seconds` and rebuilds in a
/// blocking task; the first check runs at once.
async fn refresh_loop(state: Arc<AppState>, store: OwnedStore, mut stop: watch::Receiver<bool>) {
    let every = Duration::from_secs(state.config.snapshot_refresh_seconds);
    let database = state.config.database.clone();
    let mut store = store;
    loop {
        let st = state.clone();
        let db = database.clone();
        let mut conn = std::mem::take(&mut store);
        let task = tokio::task::spawn_blocking(move || {
            let result = match conn.get_mut() {
                Some(s) => snapshot::refresh_once(&st, s),
                None => match Store::open(&db) {
                    Ok(s) => snapshot::refresh_once(&st, conn.set(s)),
                    Err(e) => Err(Error::Store(e)),
                },
            };
            if result.is_err() {
                // Reconnect on the next round: the failure may have been
                // the connection.
                conn.clear();
            }
            (conn, result)
        });
        match task.await {
            Ok((conn, Ok(_))) => store = conn,
            Ok((conn, Err(e))) => {
                store = conn;
                add(&state.metrics.snapshot_build_failures, 1);
                tracing::error!(event = "hub_snapshot_build_failed", error = %e);
            }
            Err(e) => {
                add(&state.metrics.snapshot_build_failures, 1);
                tracing::error!(event = "hub_snapshot_build_failed", error = %e);
            }
        }
        tokio::select! {
            () = tokio::time::sleep(every) => {},
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
    }
}
