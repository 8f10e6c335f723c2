//! The running hub: shared state, routes (with the OpenAPI document made
//! from them), background jobs and graceful shutdown.
//!
//! Jobs run beside the server until shutdown:
//!
//! - the snapshot refresher (sensors' snapshot and the TLP:CLEAR one the
//!   public lookups use), see [`crate::snapshot`];
//! - the case job: resolves cases quiet for `cases.resolve_after`;
//! - the attribution watcher: reloads interval indexes when another
//!   replica changed assignments, and trims the rate limiters' memory.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::Utc;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use khien_matcher::Snapshot;
use khien_model::{OrgRole, UserRole};
use khien_store::{NewUser, Store};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api;
use crate::attribution::AttributionIndex;
use crate::auth::{Auth, Permission};
use crate::clock::{Clock, SystemClock};
use crate::config::HubConfig;
use crate::db::{OwnedStore, StoreHandle, open_store};
use crate::error::{ApiError, Error, Problem};
use crate::metrics::{Metrics, add};
use crate::notify::Notifier;
use crate::secrets::{Secrets, SecretsSource};
use crate::snapshot::{self, Current};

/// Per-address rate limiters.
pub(crate) struct Limits {
    pub lookups: DefaultKeyedRateLimiter<IpAddr>,
    pub logins: DefaultKeyedRateLimiter<IpAddr>,
}

impl std::fmt::Debug for Limits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limits")
            .field("lookups", &self.lookups.len())
            .field("logins", &self.logins.len())
            .finish()
    }
}

/// The interval indexes, per organisation.
#[derive(Debug, Default)]
pub(crate) struct Attribution {
    indexes: RwLock<HashMap<i64, Arc<AttributionIndex>>>,
    /// The store's attribution generation the indexes were built at.
    generation: AtomicI64,
}

impl Attribution {
    pub fn get(&self, org: i64) -> Option<Arc<AttributionIndex>> {
        match self.indexes.read() {
            Ok(m) => m.get(&org).cloned(),
            Err(p) => p.into_inner().get(&org).cloned(),
        }
    }

    fn set(&self, org: i64, index: AttributionIndex) {
        let index = Arc::new(index);
        match self.indexes.write() {
            Ok(mut m) => m.insert(org, index),
            Err(p) => p.into_inner().insert(org, index),
        };
    }
}

/// What every request handler shares.
#[derive(Debug)]
pub(crate) struct AppState {
    pub config: HubConfig,
    pub secrets: Secrets,
    pub store: StoreHandle,
    pub metrics: Metrics,
    pub limits: Limits,
    pub attribution: Attribution,
    pub lookup_cache: api::lookup::LookupCache,
    /// Wakes the case job: hits were stored.
    pub case_work: tokio::sync::Notify,
    /// Where the notification engine reads the time.
    pub clock: Arc<dyn Clock>,
    /// Templates and channels; `None` when notifications are disabled.
    pub notifier: Option<Notifier>,
    /// Wakes the notification engine: cases opened, or an operator retried.
    pub notify_work: tokio::sync::Notify,
    snapshot: RwLock<Option<Arc<Current>>>,
    public: RwLock<Option<Arc<Snapshot>>>,
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

    /// The TLP:CLEAR snapshot behind the public indicator lookup.
    pub fn public_snapshot(&self) -> Option<Arc<Snapshot>> {
        match self.public.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub fn set_public_snapshot(&self, s: Arc<Snapshot>) {
        match self.public.write() {
            Ok(mut g) => *g = Some(s),
            Err(poisoned) => *poisoned.into_inner() = Some(s),
        }
        self.lookup_cache.clear();
    }
}

/// What the first start created, for the operator to be told once.
#[derive(Debug, Clone)]
pub struct FirstStart {
    /// The administrator's login.
    pub email: String,
    /// The one-time token with which they set their password.
    pub setup_token: String,
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
    first_start: Option<FirstStart>,
    secrets_source: SecretsSource,
    /// Walled-garden listeners and the organisation each serves.
    notice_listeners: Vec<(tokio::net::TcpListener, i64)>,
}

/// The login of the administrator made at first start.
pub const FIRST_ADMIN_EMAIL: &str = "admin@khien.local";

fn quota(per_minute: u32, burst: u32) -> Quota {
    let n = |v: u32| NonZeroU32::new(v.max(1)).unwrap_or(NonZeroU32::MIN);
    Quota::per_minute(n(per_minute)).allow_burst(n(burst.max(1)))
}

/// Names the hub's own organisation as configured and, on a hub without
/// users, creates the first administrator with a setup token.
fn bootstrap(store: &mut Store, config: &HubConfig) -> Result<Option<FirstStart>, Error> {
    let o = &config.organization;
    let current = store.org(1)?;
    if current
        .as_ref()
        .is_none_or(|c| c.slug != o.slug || c.name != o.name || c.role != o.role)
    {
        store.update_org(1, &o.slug, &o.name, o.role)?;
    }
    if store.user_count()? > 0 {
        return Ok(None);
    }
    let user = store.create_user(&NewUser {
        org_id: 1,
        email: FIRST_ADMIN_EMAIL,
        display_name: "Administrator",
        role: UserRole::Admin,
        language: "vi",
    })?;
    let token = store.create_setup_token(user.id, api::users::SETUP_TOKEN_SECONDS)?;
    store.audit(&khien_store::AuditEntry {
        org_id: Some(1),
        actor: "system".into(),
        action: "user.create".into(),
        target: Some(format!("user:{}", user.id)),
        detail: Some(serde_json::json!({"first_start": true})),
        ..khien_store::AuditEntry::default()
    })?;
    Ok(Some(FirstStart {
        email: user.email,
        setup_token: token,
    }))
}

impl HubConfig {
    /// Checks the configuration, loads (or at first start creates) the
    /// secrets, opens and migrates the database, names the hub's
    /// organisation, creates the first administrator on a fresh database,
    /// and binds the listening socket. Must run inside a Tokio runtime.
    pub async fn build(self) -> Result<Hub, Error> {
        self.build_with_clock(Arc::new(SystemClock)).await
    }

    /// [`HubConfig::build`] with the notification engine reading `clock`
    /// (a [`crate::ManualClock`] in tests).
    pub async fn build_with_clock(self, clock: Arc<dyn Clock>) -> Result<Hub, Error> {
        self.validate()?;
        let (secrets, secrets_source) = Secrets::load(&self)?;
        let database = self.database_url();
        let hash_key = secrets.hash_key();
        let config = self.clone();
        let key = hash_key.clone();
        let link_key = secrets.link_key();
        let (request_store, builder_store, first_start, notifier) =
            tokio::task::spawn_blocking(move || {
                let mut a = open_store(&database, &key)?;
                let first = bootstrap(&mut a, &config)?;
                let notifier = if config.notifications.enabled {
                    Some(Notifier::build(&config, link_key, &mut a)?)
                } else {
                    None
                };
                let b = open_store(&database, &key)?;
                Ok::<_, Error>((OwnedStore::new(a), OwnedStore::new(b), first, notifier))
            })
            .await
            .map_err(|e| Error::Task(e.to_string()))??;
        let mut notice_listeners = Vec::new();
        for (l, org) in self
            .notifications
            .notice
            .iter()
            .zip(notifier.iter().flat_map(|n| n.notice_org_ids.iter()))
        {
            let listener = tokio::net::TcpListener::bind(l.listen)
                .await
                .map_err(|source| Error::Bind {
                    addr: l.listen,
                    source,
                })?;
            notice_listeners.push((listener, *org));
        }
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
        let limits = Limits {
            lookups: RateLimiter::keyed(quota(
                self.lookups.requests_per_minute,
                self.lookups.burst,
            )),
            logins: RateLimiter::keyed(quota(
                self.login.attempts_per_minute,
                self.login.attempts_per_minute,
            )),
        };
        let state = Arc::new(AppState {
            store: StoreHandle::new(
                &self.database_url(),
                hash_key,
                request_store,
                self.database_connections.saturating_sub(1),
            ),
            secrets,
            config: self,
            metrics: Metrics::default(),
            limits,
            attribution: Attribution::default(),
            lookup_cache: api::lookup::LookupCache::default(),
            case_work: tokio::sync::Notify::new(),
            clock,
            notifier,
            notify_work: tokio::sync::Notify::new(),
            snapshot: RwLock::new(None),
            public: RwLock::new(None),
        });
        reload_all_attribution(&state)
            .await
            .map_err(|e| Error::Task(e.detail))?;
        Ok(Hub {
            listener,
            addr,
            state,
            builder_store,
            first_start,
            secrets_source,
            notice_listeners,
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

    /// The first administrator and their setup token, on the start that
    /// created them; `None` afterwards.
    pub fn first_start(&self) -> Option<&FirstStart> {
        self.first_start.as_ref()
    }

    /// The addresses the walled-garden listeners bound, in configuration
    /// order.
    pub fn notice_addrs(&self) -> Vec<SocketAddr> {
        self.notice_listeners
            .iter()
            .filter_map(|(l, _)| l.local_addr().ok())
            .collect()
    }

    /// Where the keys came from (and whether this start made the file).
    pub fn secrets_source(&self) -> &SecretsSource {
        &self.secrets_source
    }

    /// Serves until `shutdown` completes, then stops accepting, lets the
    /// requests in flight finish (a batch being stored is committed and
    /// answered) and stops the background jobs.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), Error> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let jobs = [
            tokio::spawn(refresh_loop(
                self.state.clone(),
                self.builder_store,
                stop_rx.clone(),
            )),
            tokio::spawn(case_loop(self.state.clone(), stop_rx.clone())),
            tokio::spawn(apply_loop(self.state.clone(), stop_rx.clone())),
            tokio::spawn(crate::notify::notify_loop(
                self.state.clone(),
                stop_rx.clone(),
            )),
            tokio::spawn(attribution_loop(self.state.clone(), stop_rx.clone())),
        ];
        let mut notices = Vec::new();
        for (listener, org) in self.notice_listeners {
            let app = crate::notify::web::notice_router(self.state.clone(), org)
                .into_make_service_with_connect_info::<SocketAddr>();
            let mut stop = stop_rx.clone();
            notices.push(tokio::spawn(async move {
                let stopped = async move {
                    while !*stop.borrow() {
                        if stop.changed().await.is_err() {
                            break;
                        }
                    }
                };
                if let Err(e) = axum::serve(listener, app)
                    .with_graceful_shutdown(stopped)
                    .await
                {
                    tracing::error!(event = "hub_notice_listener_failed", error = %e);
                }
            }));
        }
        tracing::info!(event = "hub_started", addr = %self.addr);
        let app = router(self.state).into_make_service_with_connect_info::<SocketAddr>();
        let result = axum::serve(self.listener, app)
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(Error::Serve);
        let _ = stop_tx.send(true);
        for j in jobs.into_iter().chain(notices) {
            let _ = j.await;
        }
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

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Khiên hub API",
        description = "Threat intelligence, sensor hits, subscriber attribution, infection cases \
                       and public lookups. Errors are RFC 9457 problem documents \
                       (application/problem+json). Authenticate with `Authorization: Bearer \
                       <API key>` or the session cookie from POST /api/v1/session (with \
                       X-CSRF-Token on requests that change something).",
        license(name = "Apache-2.0")
    ),
    tags(
        (name = "session", description = "Login, logout, setup tokens"),
        (name = "organizations", description = "Tenants"),
        (name = "users", description = "People of an organisation"),
        (name = "api-keys", description = "Keys of sensors and scripts"),
        (name = "audit", description = "Append-only log of admin actions and personal-data reads"),
        (name = "subscribers", description = "An operator's subscriber directory"),
        (name = "attribution", description = "Who had which address when"),
        (name = "cases", description = "Infection cases"),
        (name = "statistics", description = "Case statistics"),
        (name = "notifications", description = "Warning subscribers: the queue, exports, policy, previews"),
        (name = "public", description = "Lookups and notice verification without login"),
        (name = "sensors", description = "Hit ingest and snapshots"),
    )
)]
struct ApiDoc;

/// The routes and the OpenAPI document generated from them.
pub(crate) fn api_router() -> (Router<Arc<AppState>>, utoipa::openapi::OpenApi) {
    let (router, doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(
            api::session::login,
            api::session::whoami,
            api::session::logout
        ))
        .routes(routes!(api::session::setup))
        .routes(routes!(api::session::change_password))
        .routes(routes!(api::orgs::list, api::orgs::create))
        .routes(routes!(api::orgs::get))
        .routes(routes!(api::users::list, api::users::create))
        .routes(routes!(api::users::get, api::users::update))
        .routes(routes!(api::users::new_setup_token))
        .routes(routes!(api::keys::list, api::keys::create))
        .routes(routes!(api::keys::revoke))
        .routes(routes!(api::audit::list))
        .routes(routes!(api::subscribers::list, api::subscribers::upload))
        .routes(routes!(api::subscribers::get))
        .routes(routes!(api::attribution::upload))
        .routes(routes!(api::cases::list))
        .routes(routes!(api::cases::get))
        .routes(routes!(api::cases::transition))
        .routes(routes!(api::cases::assign))
        .routes(routes!(api::cases::comment))
        .routes(routes!(api::notifications::list))
        .routes(routes!(api::notifications::export))
        .routes(routes!(api::notifications::garden_clients))
        .routes(routes!(api::notifications::get))
        .routes(routes!(api::notifications::retry))
        .routes(routes!(api::notifications::done))
        .routes(routes!(
            api::notifications::get_policy,
            api::notifications::put_policy,
            api::notifications::delete_policy
        ))
        .routes(routes!(api::notifications::preview))
        .routes(routes!(crate::notify::web::verify_api))
        .routes(routes!(crate::notify::web::delivery_report))
        .routes(routes!(api::stats::cases))
        .routes(routes!(api::lookup::own_address))
        .routes(routes!(api::lookup::indicator))
        .routes(routes!(crate::ingest::post_hits))
        .routes(routes!(latest_snapshot))
        .split_for_parts();
    (router, finish_document(doc))
}

/// Endpoints anyone may call.
const PUBLIC_OPERATIONS: [&str; 6] = [
    "login",
    "setup",
    "own_address",
    "indicator",
    "verify_api",
    // Signed with the gateway's shared secret instead.
    "delivery_report",
];

/// What the annotations leave implicit: error responses are
/// `application/problem+json`, and the two ways to authenticate.
fn finish_document(mut doc: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    use utoipa::openapi::security::{
        ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
    };
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "api_key",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some("An API key: `Authorization: Bearer khk_…`"))
                .build(),
        ),
    );
    components.add_security_scheme(
        "session",
        SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
            crate::auth::SESSION_COOKIE,
            "The session cookie from POST /api/v1/session; send X-CSRF-Token too on requests \
             that change something",
        ))),
    );
    let either = vec![
        SecurityRequirement::new("api_key", Vec::<String>::new()),
        SecurityRequirement::new("session", Vec::<String>::new()),
    ];
    for item in doc.paths.paths.values_mut() {
        for op in [
            &mut item.get,
            &mut item.post,
            &mut item.put,
            &mut item.patch,
            &mut item.delete,
        ]
        .into_iter()
        .flatten()
        {
            let public = op
                .operation_id
                .as_deref()
                .is_some_and(|id| PUBLIC_OPERATIONS.contains(&id));
            op.security = Some(if public {
                vec![SecurityRequirement::default()]
            } else {
                either.clone()
            });
            for (status, response) in op.responses.responses.iter_mut() {
                let error = status.starts_with('4') || status.starts_with('5');
                if let (true, utoipa::openapi::RefOr::T(r)) = (error, response)
                    && let Some(c) = r.content.shift_remove("application/json")
                {
                    r.content.insert("application/problem+json".into(), c);
                }
            }
        }
    }
    doc
}

/// The OpenAPI document of the API, as `GET /api/openapi.json` serves it.
pub fn openapi_json() -> String {
    api_router().1.to_pretty_json().unwrap_or_default()
}

fn router(state: Arc<AppState>) -> Router {
    let (api, doc) = api_router();
    let doc = Arc::new(doc.to_pretty_json().unwrap_or_default());
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route(
            "/api/openapi.json",
            get(move || {
                let doc = doc.clone();
                async move {
                    (
                        [(
                            header::CONTENT_TYPE,
                            HeaderValue::from_static("application/json"),
                        )],
                        doc.as_str().to_owned(),
                    )
                }
            }),
        )
        .route(
            "/ack/{token}",
            get(crate::notify::web::ack_page).post(crate::notify::web::ack_post),
        )
        .route("/verify", get(crate::notify::web::verify_page))
        .merge(api)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn(read_small_bodies))
        .with_state(state)
}

/// Bodies up to this size are read before the handler runs.
const SMALL_BODY: u64 = 64 * 1024;

/// Keeps keep-alive connections healthy when a request is refused before
/// its body was read (a bad query string, no credentials): the server
/// would close the connection with the body unread, and a client that
/// reused it would see a reset. Small bodies are therefore read up front,
/// so they are consumed whatever the handler does; for larger ones an
/// error answer says `Connection: close`. Hit ingest drains its own body.
async fn read_small_bodies(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let has_body = req.headers().contains_key(header::TRANSFER_ENCODING)
        || req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v != "0");
    if !has_body || req.uri().path() == "/api/v1/hits" {
        return next.run(req).await;
    }
    let small = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|n| n <= SMALL_BODY);
    let req = if small {
        let (parts, body) = req.into_parts();
        let limit = usize::try_from(SMALL_BODY).unwrap_or(usize::MAX);
        let read =
            tokio::time::timeout(Duration::from_secs(30), axum::body::to_bytes(body, limit)).await;
        match read {
            Ok(Ok(bytes)) => {
                axum::extract::Request::from_parts(parts, axum::body::Body::from(bytes))
            }
            Ok(Err(_)) | Err(_) => {
                let mut res = ApiError::new(Problem::InvalidBody, "the body could not be read")
                    .into_response();
                res.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
                return res;
            }
        }
    } else {
        req
    };
    let mut res = next.run(req).await;
    if !small && res.status().as_u16() >= 400 {
        res.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    res
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

/// The matcher snapshot for sensors (`If-None-Match` answers 304).
#[utoipa::path(get, path = "/api/v1/snapshots/latest", tag = "sensors",
    responses(
        (status = 200, description = "The snapshot file", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 304, description = "Not changed since the ETag given"),
        (status = 503, description = "The first snapshot is being built", body = crate::error::ProblemSchema)))]
pub(crate) async fn latest_snapshot(
    State(state): State<Arc<AppState>>,
    Auth(p): Auth,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if !p.can(Permission::SubmitHits) {
        p.require(Permission::Read)?;
    }
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

/// Rows loaded per query when an index is (re)built.
const INDEX_PAGE: u32 = 50_000;

/// Rebuilds one organisation's interval index from the store.
pub(crate) async fn reload_attribution(state: &Arc<AppState>, org: i64) -> Result<(), ApiError> {
    let index = state
        .store
        .run(move |s| {
            let mut index = AttributionIndex::default();
            let mut after = 0;
            loop {
                let rows = s.assignments(org, after, INDEX_PAGE)?;
                for r in &rows {
                    index.insert(r);
                }
                match rows.last() {
                    Some(r) if rows.len() == INDEX_PAGE as usize => after = r.id,
                    _ => break,
                }
            }
            Ok(index)
        })
        .await?;
    tracing::info!(
        event = "hub_attribution_index_loaded",
        org,
        intervals = index.len(),
        skipped = index.skipped()
    );
    state.attribution.set(org, index);
    Ok(())
}

async fn reload_all_attribution(state: &Arc<AppState>) -> Result<(), ApiError> {
    let (generation, orgs) = state
        .store
        .run(|s| Ok((s.attribution_generation()?, s.orgs_with_assignments()?)))
        .await?;
    for org in orgs {
        reload_attribution(state, org).await?;
    }
    state
        .attribution
        .generation
        .store(generation, Ordering::Relaxed);
    Ok(())
}

async fn stopped(stop: &mut watch::Receiver<bool>, after: Duration) -> bool {
    tokio::select! {
        () = tokio::time::sleep(after) => {},
        _ = stop.changed() => {},
    }
    *stop.borrow()
}

/// Reloads the indexes when the store's attribution generation moved
/// (another replica took an upload), and trims the rate limiters.
async fn attribution_loop(state: Arc<AppState>, mut stop: watch::Receiver<bool>) {
    const EVERY: Duration = Duration::from_secs(10);
    while !stopped(&mut stop, EVERY).await {
        state.limits.lookups.retain_recent();
        state.limits.logins.retain_recent();
        let generation = state.store.run(|s| s.attribution_generation()).await;
        match generation {
            Ok(g) if g != state.attribution.generation.load(Ordering::Relaxed) => {
                if let Err(e) = reload_all_attribution(&state).await {
                    tracing::error!(event = "hub_attribution_reload_failed", error = %e.detail);
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(event = "hub_attribution_check_failed", error = %e.detail),
        }
    }
}

/// The case job: when hits were stored, but at most once per
/// `cases.apply_interval`, applies every pending batch to cases (see
/// `Store::apply_pending_hits`). The first run is at start, for batches a
/// stopped hub left pending.
async fn apply_loop(state: Arc<AppState>, mut stop: watch::Receiver<bool>) {
    let every = state.config.cases.apply_interval;
    let max_hits = state.config.cases.apply_max_hits.max(1);
    loop {
        let started = std::time::Instant::now();
        loop {
            match state
                .store
                .run(move |s| s.apply_pending_hits(max_hits))
                .await
            {
                Ok((0, _)) => break,
                Ok((batches, cases)) => {
                    if cases.opened + cases.reinfected > 0 {
                        state.notify_work.notify_one();
                    }
                    add(&state.metrics.cases_opened, cases.opened);
                    add(&state.metrics.cases_reinfected, cases.reinfected);
                    tracing::debug!(
                        event = "hub_cases_applied",
                        batches,
                        opened = cases.opened,
                        reinfected = cases.reinfected,
                        updated = cases.updated,
                    );
                    let more = state.store.run(|s| s.hits_pending()).await.unwrap_or(false);
                    if !more {
                        break;
                    }
                    // Let ingest, waiting on SQLite's busy handler, take the
                    // write lock between two runs.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => {
                    tracing::error!(event = "hub_case_job_failed", error = %e.detail);
                    break;
                }
            }
        }
        let rest = every.saturating_sub(started.elapsed());
        if stopped(&mut stop, rest).await {
            return;
        }
        tokio::select! {
            () = state.case_work.notified() => {},
            () = tokio::time::sleep(every * 10) => {},
            _ = stop.changed() => return,
        }
    }
}

/// Resolves cases without hits for `cases.resolve_after`, every
/// `cases.job_interval`; the first run is at start.
async fn case_loop(state: Arc<AppState>, mut stop: watch::Receiver<bool>) {
    let after = state.config.cases.resolve_after;
    let days = u32::try_from(after.as_secs() / 86_400).unwrap_or(u32::MAX);
    let mut first = true;
    loop {
        if !first && stopped(&mut stop, state.config.cases.job_interval).await {
            return;
        }
        first = false;
        let cutoff =
            Utc::now() - chrono::Duration::seconds(i64::try_from(after.as_secs()).unwrap_or(0));
        let started = std::time::Instant::now();
        match state
            .store
            .run(move |s| s.resolve_quiet_cases(cutoff, days))
            .await
        {
            Ok(0) => {}
            Ok(n) => {
                add(&state.metrics.cases_resolved, n);
                tracing::info!(
                    event = "hub_cases_resolved",
                    count = n,
                    millis = started.elapsed().as_millis() as u64
                );
            }
            Err(e) => tracing::error!(event = "hub_case_job_failed", error = %e.detail),
        }
    }
}

/// Checks for changes every `snapshot_refresh_seconds` and rebuilds in a
/// blocking task; the first check runs at once.
async fn refresh_loop(state: Arc<AppState>, store: OwnedStore, mut stop: watch::Receiver<bool>) {
    let every = Duration::from_secs(state.config.snapshot_refresh_seconds);
    let database = state.config.database_url();
    let key = state.secrets.hash_key();
    let mut store = store;
    loop {
        let st = state.clone();
        let db = database.clone();
        let key = key.clone();
        let mut conn = std::mem::take(&mut store);
        let task = tokio::task::spawn_blocking(move || {
            let result = match conn.get_mut() {
                Some(s) => snapshot::refresh_once(&st, s),
                None => match open_store(&db, &key) {
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
        if stopped(&mut stop, every).await {
            return;
        }
    }
}

/// What `khien admin` commands work with: the store as the hub would
/// open it (hash key set) and the hub's secrets.
pub fn open_admin_store(config: &HubConfig) -> Result<(Store, Secrets), Error> {
    let (secrets, _) = Secrets::load(config)?;
    let store = open_store(&config.database_url(), &secrets.hash_key())?;
    Ok((store, secrets))
}

/// The role check `khien admin` uses for organisations it names.
pub fn org_role_of(store: &mut Store, slug: &str) -> Result<Option<(i64, OrgRole)>, Error> {
    Ok(store.org_by_slug(slug)?.map(|o| (o.id, o.role)))
}
