//! The console's HTTP side: the router, who is asking (session cookie or trusted proxy
//! header), and the handlers of every page and form. Pages are rendered in `pages`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts, Path, Query, RawQuery, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use serde::Deserialize;
use store::{Cursor, RequestFilter, Store, WorkflowFilter};
use uuid::Uuid;
use workflow::Engine;

use crate::auth::{self, Keys, LOGIN_COOKIE, SESSION_COOKIE, User};
use crate::config::{ConsoleConfig, Role};
use crate::operate::{self, Command, OperateError, OperatorsConfig, Queued};
use crate::pages;

/// Rows on one page of a table.
pub const PAGE_SIZE: u32 = 50;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

struct Inner {
    store: Store,
    engine: Engine,
    config: ConsoleConfig,
    operators: OperatorsConfig,
    keys: Keys,
}

impl AppState {
    /// The console over `store`, judging commands with `engine`.
    #[must_use]
    pub fn new(
        store: Store,
        engine: Engine,
        config: ConsoleConfig,
        operators: OperatorsConfig,
    ) -> Self {
        let keys = Keys::new(&config);
        Self(Arc::new(Inner {
            store,
            engine,
            config,
            operators,
            keys,
        }))
    }

    pub(crate) fn store(&self) -> &Store {
        &self.0.store
    }

    pub(crate) fn engine(&self) -> &Engine {
        &self.0.engine
    }

    pub(crate) fn operators(&self) -> &OperatorsConfig {
        &self.0.operators
    }

    /// A session cookie's value for `name`, as a sign-in would set it (for tests and tools).
    #[must_use]
    pub fn session_for(&self, name: &str) -> String {
        self.0.keys.session(name, Utc::now().timestamp())
    }

    /// The CSRF token of a session cookie's value.
    #[must_use]
    pub fn csrf_for(&self, session: &str) -> Option<String> {
        self.0
            .keys
            .user(&self.0.config, session, Utc::now().timestamp())
            .map(|u| u.csrf)
    }
}

/// Every route of the console.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/", get(overview))
        .route("/workflows", get(workflows))
        .route("/workflows/bulk", post(bulk))
        .route("/workflows/{id}", get(one_workflow))
        .route("/workflows/{id}/command", post(command))
        .route("/commands", get(commands))
        .route("/commands/{id}/approve", post(approve))
        .route("/commands/{id}/reject", post(reject))
        .route("/reconciliation", get(reconciliation))
        .route("/reconciliation/run", post(start_reconciliation))
        .route("/events", get(events))
        .route("/webhooks", get(webhooks))
        .route("/webhooks/replay", post(replay))
        .route("/assets/console.css", get(stylesheet))
        .with_state(state)
}

// ---------------------------------------------------------------- who is asking

/// The peer's address (the TCP peer; a proxy's when behind one); unspecified when the
/// server was not started with connect info.
async fn peer(parts: &mut Parts, state: &AppState) -> IpAddr {
    ConnectInfo::<SocketAddr>::from_request_parts(parts, state)
        .await
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip())
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A signed-in user; anyone else is sent to the sign-in page.
pub struct Authed(pub User);

impl FromRequestParts<AppState> for Authed {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let inner = &state.0;
        if let Some(header) = &inner.config.trusted_user_header
            && let Some(name) = parts
                .headers
                .get(header)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
            && let Some(user) = inner
                .keys
                .proxied(&inner.config, peer(parts, state).await, &name)
        {
            return Ok(Self(user));
        }
        cookie(&parts.headers, SESSION_COOKIE)
            .and_then(|c| inner.keys.user(&inner.config, c, Utc::now().timestamp()))
            .map(Self)
            .ok_or_else(|| see_other("/login"))
    }
}

fn see_other(to: &str) -> Response {
    (
        StatusCode::SEE_OTHER,
        [(
            LOCATION,
            HeaderValue::from_str(to).unwrap_or(HeaderValue::from_static("/")),
        )],
    )
        .into_response()
}

/// Back to `to` with a message for the person.
fn back(to: &str, notice: &str) -> Response {
    let sep = if to.contains('?') { '&' } else { '?' };
    let query = serde_urlencoded::to_string([("notice", notice)]).unwrap_or_default();
    see_other(&format!("{to}{sep}{query}"))
}

fn forbidden(user: &User, why: &str) -> Response {
    (StatusCode::FORBIDDEN, pages::refusal(user, why)).into_response()
}

/// The refusal of a form post, if any: a missing or foreign CSRF token, or a role below
/// `role` (`what` names the action for the message).
fn guard(user: &User, token: &str, role: Role, what: &str) -> Option<Response> {
    if !auth::csrf_ok(user, token) {
        return Some(forbidden(
            user,
            "the form's CSRF token is missing or not this session's: reload the page and try again",
        ));
    }
    (!user.can(role)).then(|| {
        forbidden(
            user,
            &format!(
                "{what} needs the {} role; {} has {}",
                role.as_str(),
                user.name,
                user.role.as_str()
            ),
        )
    })
}

/// A failure the person cannot fix: logged, shown without internals.
struct Failure(String);

impl<E: std::error::Error> From<E> for Failure {
    fn from(e: E) -> Self {
        let mut chain = e.to_string();
        let mut source = e.source();
        while let Some(s) = source {
            chain.push_str(": ");
            chain.push_str(&s.to_string());
            source = s.source();
        }
        Self(chain)
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        tracing::error!(error.message = %self.0, "console request failed");
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            pages::failure("the store could not answer; see the console's log"),
        )
            .into_response()
    }
}

// ---------------------------------------------------------------- sign-in

#[derive(Debug, Deserialize)]
struct LoginQuery {
    error: Option<String>,
}

async fn login_page(State(state): State<AppState>, Query(q): Query<LoginQuery>) -> Response {
    let (cookie, token) = state.0.keys.login_form();
    let mut response = pages::login(&token, q.error.as_deref()).into_response();
    set_cookie(&mut response, &state, LOGIN_COOKIE, &cookie, 600);
    response
}

fn set_cookie(response: &mut Response, state: &AppState, name: &str, value: &str, max_age: u64) {
    let secure = if state.0.config.secure_cookies {
        "; Secure"
    } else {
        ""
    };
    let cookie =
        format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}");
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        response.headers_mut().append(SET_COOKIE, v);
    }
}

#[derive(Debug, Deserialize)]
struct LoginForm {
    name: String,
    password: String,
    #[serde(default)]
    csrf: String,
}

async fn login(
    State(state): State<AppState>,
    parts: Parts2,
    Form(form): Form<LoginForm>,
) -> Response {
    let inner = &state.0;
    let form_ok = cookie(&parts.headers, LOGIN_COOKIE)
        .is_some_and(|c| inner.keys.check_login_form(c, &form.csrf));
    if !form_ok {
        return (
            StatusCode::FORBIDDEN,
            pages::failure("the sign-in form expired or lacks its CSRF token: reload it"),
        )
            .into_response();
    }
    if inner.keys.locked(&inner.config, &form.name, parts.peer) {
        return (
            StatusCode::TOO_MANY_REQUESTS,
            pages::failure("too many failed sign-ins: wait a few minutes and try again"),
        )
            .into_response();
    }
    let user = inner.config.user(&form.name).filter(|u| {
        u.password_hash
            .as_deref()
            .is_some_and(|hash| auth::verify_password(&form.password, hash))
    });
    let Some(user) = user else {
        inner.keys.failed(&form.name, parts.peer);
        tracing::warn!(user = %form.name, "console sign-in failed");
        return see_other("/login?error=wrong+name+or+password");
    };
    inner.keys.succeeded(&user.name);
    let session = inner.keys.session(&user.name, Utc::now().timestamp());
    let mut response = see_other("/");
    set_cookie(
        &mut response,
        &state,
        SESSION_COOKIE,
        &session,
        inner.keys.ttl().as_secs(),
    );
    set_cookie(&mut response, &state, LOGIN_COOKIE, "", 0);
    response
}

/// The headers and the peer, for handlers that also take a body.
struct Parts2 {
    headers: HeaderMap,
    peer: IpAddr,
}

impl FromRequestParts<AppState> for Parts2 {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(Self {
            headers: parts.headers.clone(),
            peer: peer(parts, state).await,
        })
    }
}

#[derive(Debug, Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

async fn logout(
    State(state): State<AppState>,
    Authed(user): Authed,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Some(refused) = guard(&user, &form.csrf, Role::Viewer, "signing out") {
        return refused;
    }
    let mut response = see_other("/login");
    set_cookie(&mut response, &state, SESSION_COOKIE, "", 0);
    response
}

async fn stylesheet() -> Response {
    (
        [
            (
                CONTENT_TYPE,
                HeaderValue::from_static("text/css; charset=utf-8"),
            ),
            (CACHE_CONTROL, HeaderValue::from_static("max-age=3600")),
        ],
        pages::STYLESHEET,
    )
        .into_response()
}

// ---------------------------------------------------------------- pages

#[derive(Debug, Deserialize, Default)]
struct Notice {
    notice: Option<String>,
    /// On a workflow's page: reveal its input, for this reason (journaled).
    #[serde(default)]
    reveal: Option<String>,
}

async fn overview(
    State(state): State<AppState>,
    Authed(user): Authed,
    Query(notice): Query<Notice>,
) -> Result<Response, Failure> {
    let store = state.store();
    let now = Utc::now();
    let counts = store.status_counts().await?;
    let (stuck, stuck_total) = store.stuck_page(20).await?;
    let pending = store
        .command_requests(&RequestFilter {
            pending_only: true,
            limit: 20,
            ..RequestFilter::default()
        })
        .await?;
    let funnel = store.funnel(now - TimeDelta::hours(24)).await?;
    let rates = store.rates(now - TimeDelta::minutes(60)).await?;
    let workers = store
        .workers_seen(now - TimeDelta::hours(24), now - TimeDelta::minutes(5))
        .await?;
    let governor = store.governor().await?;
    Ok(pages::overview(&pages::Overview {
        user: &user,
        notice: notice.notice.as_deref(),
        now,
        counts: &counts,
        stuck: &stuck,
        stuck_total,
        pending: &pending,
        funnel: &funnel,
        rates: &rates,
        workers: &workers,
        governor: &governor,
    })
    .into_response())
}

/// The workflow table's filter, as it stands in the URL.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize, PartialEq, Eq)]
pub struct FilterQuery {
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub state: String,
    #[serde(default)]
    pub definition: String,
    #[serde(default)]
    pub created_from: String,
    #[serde(default)]
    pub created_to: String,
    #[serde(default)]
    pub updated_from: String,
    #[serde(default)]
    pub updated_to: String,
    #[serde(default)]
    pub key: String,
    #[serde(default)]
    pub user_id: String,
    #[serde(default)]
    pub loan: String,
    /// The last 4 digits of a borrower's NIK (onboardings).
    #[serde(default)]
    pub nik: String,
    /// Keyset cursor: `created_at~id` of the last row of the previous page.
    #[serde(default)]
    pub after: String,
}

fn opt(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_owned())
}

/// A date (`2026-12-01`) or an RFC 3339 time.
fn time(s: &str) -> Result<Option<DateTime<Utc>>, String> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(None);
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(Some(t.with_timezone(&Utc)));
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map(|d| Some(d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc()))
        .map_err(|_| format!("{s:?} is not a date (YYYY-MM-DD) or an RFC 3339 time"))
}

impl FilterQuery {
    /// The store's filter and cursor, or what is wrong with the query.
    ///
    /// # Errors
    /// A message naming the malformed field.
    pub fn to_filter(&self) -> Result<(WorkflowFilter, Option<Cursor>), String> {
        let filter = WorkflowFilter {
            kind: opt(&self.kind),
            status: opt(&self.status),
            state: opt(&self.state),
            definition: opt(&self.definition),
            created_from: time(&self.created_from)?,
            created_to: time(&self.created_to)?,
            updated_from: time(&self.updated_from)?,
            updated_to: time(&self.updated_to)?,
            business_key_prefix: opt(&self.key),
            user_id: opt(&self.user_id),
            loan_unique_id: opt(&self.loan),
            nik_last4: match opt(&self.nik) {
                Some(n) if n.len() == 4 && n.bytes().all(|b| b.is_ascii_digit()) => Some(n),
                Some(_) => return Err("NIK: give its last 4 digits".to_owned()),
                None => None,
            },
        };
        let cursor = match self.after.split_once('~') {
            None if self.after.trim().is_empty() => None,
            Some((t, id)) => Some(Cursor {
                created_at: DateTime::parse_from_rfc3339(t)
                    .map_err(|_| "the page cursor is malformed".to_owned())?
                    .with_timezone(&Utc),
                id: id
                    .parse()
                    .map_err(|_| "the page cursor is malformed".to_owned())?,
            }),
            None => return Err("the page cursor is malformed".to_owned()),
        };
        Ok((filter, cursor))
    }

    /// This filter as a query string, with `after` replaced.
    #[must_use]
    pub fn with_after(&self, after: &str) -> String {
        let mut q = self.clone();
        q.after = after.to_owned();
        serde_urlencoded::to_string(&q).unwrap_or_default()
    }
}

async fn workflows(
    State(state): State<AppState>,
    Authed(user): Authed,
    RawQuery(raw): RawQuery,
) -> Result<Response, Failure> {
    let raw = raw.unwrap_or_default();
    let query: FilterQuery = serde_urlencoded::from_str(&raw).unwrap_or_default();
    let notice: Notice = serde_urlencoded::from_str(&raw).unwrap_or_default();
    let (filter, cursor) = match query.to_filter() {
        Ok(parsed) => parsed,
        Err(why) => {
            return Ok((
                StatusCode::BAD_REQUEST,
                pages::workflows(&user, &query, &[], None, Some(&why)),
            )
                .into_response());
        }
    };
    let (rows, next) = state
        .store()
        .list_workflows(&filter, cursor, PAGE_SIZE)
        .await?;
    let next = next.map(|c| format!("{}~{}", c.created_at.to_rfc3339(), c.id));
    Ok(pages::workflows(
        &user,
        &query,
        &rows,
        next.as_deref(),
        notice.notice.as_deref(),
    )
    .into_response())
}

async fn one_workflow(
    State(state): State<AppState>,
    Authed(user): Authed,
    Path(id): Path<Uuid>,
    Query(notice): Query<Notice>,
) -> Result<Response, Failure> {
    let store = state.store();
    let Some(mut workflow) = store.get(id).await? else {
        return Ok((
            StatusCode::NOT_FOUND,
            pages::refusal(&user, &format!("no workflow {id}")),
        )
            .into_response());
    };
    // Revealed in the clear only to a user allowed to see personal data who gave a reason,
    // journaled first.
    let revealed = match notice.reveal.as_deref().map(str::trim) {
        Some(reason) if user.personal_data && !reason.is_empty() => {
            match store.reveal(&workflow, &user.name, reason, "console").await {
                Ok(input) => Some(input),
                Err(store::StoreError::Erased(_)) => None,
                Err(other) => return Err(other.into()),
            }
        }
        _ => None,
    };
    // The input as submitted (opened when sealed; shown masked), or what erasure left.
    workflow.input = match store.input(&workflow) {
        Ok(input) => input,
        Err(store::StoreError::Erased(_)) => serde_json::json!({ "erased": true }),
        Err(other) => return Err(other.into()),
    };
    let journal = store.journal(id).await?;
    let lifecycle = store.workflow_events(id).await?;
    let waits = store.waits(id).await?;
    let events = store.matched_events(id).await?;
    let requests = store
        .command_requests(&RequestFilter {
            workflow_id: Some(id),
            limit: 50,
            ..RequestFilter::default()
        })
        .await?;
    // The linked onboarding (a loan's borrower) or loans (an onboarding's borrower).
    let mut linked = Vec::new();
    if let Some(key) = workflow
        .input
        .pointer("/borrower/onboarding")
        .and_then(|v| v.as_str())
        && let Some(onboarding) = store.find_by_business_key("onboard-borrower", key).await?
    {
        linked.push(onboarding);
    }
    if workflow.kind == "onboard-borrower"
        && let Some(user_id) = workflow.facts.get("user_id").and_then(|v| v.as_str())
    {
        let filter = WorkflowFilter {
            kind: Some("originate-loan".to_owned()),
            user_id: Some(user_id.to_owned()),
            ..WorkflowFilter::default()
        };
        linked.extend(store.list_workflows(&filter, None, 20).await?.0);
    }
    // The actions it accepts now, by the same check the CLI makes.
    operate::load_definition(state.store(), state.engine(), &workflow).await?;
    let actions: Vec<pages::Action> = [Command::retry(), Command::Resolve(None), Command::Cancel]
        .into_iter()
        .map(|command| {
            let verdict = operate::check(
                state.store(),
                state.engine(),
                &workflow,
                &command,
                &user.name,
                "-",
            );
            pages::Action {
                command,
                verdict: verdict.map_err(|e| e.to_string()),
                four_eyes: state.operators().four_eyes,
            }
        })
        .collect();
    Ok(pages::workflow(&pages::OneWorkflow {
        user: &user,
        notice: notice.notice.as_deref(),
        workflow: &workflow,
        journal: &journal,
        waits: &waits,
        events: &events,
        lifecycle: &lifecycle,
        requests: &requests,
        linked: &linked,
        actions: &actions,
        revealed: revealed.as_ref(),
    })
    .into_response())
}

#[derive(Debug, Deserialize)]
struct CommandForm {
    action: String,
    #[serde(default)]
    reason: String,
    /// A resolve's data, JSON.
    #[serde(default)]
    data: String,
    #[serde(default)]
    csrf: String,
}

fn parse_command(action: &str, data: &str) -> Result<Command, String> {
    match action {
        "cancel" => Ok(Command::Cancel),
        "retry" => Ok(Command::retry()),
        "resolve" if data.trim().is_empty() => Ok(Command::Resolve(None)),
        "resolve" => match serde_json::from_str::<serde_json::Value>(data) {
            Ok(v @ serde_json::Value::Object(_)) => Ok(Command::Resolve(Some(v))),
            _ => Err("the resolve's data must be a JSON object, e.g. {\"retry\": true}".to_owned()),
        },
        other => Err(format!("unknown action {other:?}")),
    }
}

async fn command(
    State(state): State<AppState>,
    Authed(user): Authed,
    Path(id): Path<Uuid>,
    Form(form): Form<CommandForm>,
) -> Result<Response, Failure> {
    if let Some(refused) = guard(&user, &form.csrf, Role::Operator, "a command") {
        return Ok(refused);
    }
    let page = format!("/workflows/{id}");
    let command = match parse_command(&form.action, &form.data) {
        Ok(c) => c,
        Err(why) => return Ok(back(&page, &format!("refused: {why}"))),
    };
    let Some(workflow) = state.store().get(id).await? else {
        return Ok(back("/workflows", &format!("refused: no workflow {id}")));
    };
    let outcome = operate::request(
        state.store(),
        state.engine(),
        state.operators(),
        &workflow,
        &command,
        &user.name,
        form.reason.trim(),
    )
    .await;
    Ok(match outcome {
        Ok(queued) => back(&page, &queued_notice(&command, &queued)),
        Err(OperateError::Refused(why)) => back(&page, &format!("refused: {why}")),
        Err(other) => return Err(Failure(other.to_string())),
    })
}

fn queued_notice(command: &Command, queued: &Queued) -> String {
    match queued {
        Queued::CancelledAtOnce => "cancelled at once: it had not started".to_owned(),
        Queued::Queued { inbox_id } => format!(
            "{} queued (inbox event {inbox_id}): a running worker applies it",
            command.label()
        ),
        Queued::PendingApproval { request_id, why } => format!(
            "{} is pending approval as command request {request_id}: {why}; a second person with the approver role must approve it",
            command.label()
        ),
    }
}

#[derive(Debug, Deserialize)]
struct BulkForm {
    action: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    csrf: String,
    /// The filter, as the table's query string.
    #[serde(default)]
    filter: String,
    /// The ids picked in the table; empty: everything the filter matches.
    #[serde(default)]
    ids: String,
    /// How many the person saw and confirmed; the command is queued only when it matches.
    #[serde(default)]
    confirmed: Option<usize>,
}

/// Rows a bulk action takes at most.
const BULK_MAX: u32 = 500;

async fn bulk(
    State(state): State<AppState>,
    Authed(user): Authed,
    Form(form): Form<BulkForm>,
) -> Result<Response, Failure> {
    if let Some(refused) = guard(&user, &form.csrf, Role::Operator, "a command") {
        return Ok(refused);
    }
    let query: FilterQuery = serde_urlencoded::from_str(&form.filter).unwrap_or_default();
    let list = format!("/workflows?{}", query.with_after(""));
    let command = match parse_command(&form.action, "") {
        Ok(c) => c,
        Err(why) => return Ok(back(&list, &format!("refused: {why}"))),
    };
    let picked: Vec<Uuid> = form
        .ids
        .split([',', ' ', '\n'])
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let targets = if picked.is_empty() {
        let Ok((filter, _)) = query.to_filter() else {
            return Ok(back(&list, "refused: the filter is malformed"));
        };
        let (rows, more) = state
            .store()
            .list_workflows(&filter, None, BULK_MAX)
            .await?;
        if more.is_some() {
            return Ok(back(
                &list,
                &format!("refused: the filter matches more than {BULK_MAX} workflows; narrow it"),
            ));
        }
        rows
    } else {
        let mut rows = Vec::new();
        for id in picked.iter().take(BULK_MAX as usize) {
            if let Some(w) = state.store().get(*id).await? {
                rows.push(w);
            }
        }
        rows
    };
    let Some(confirmed) = form.confirmed else {
        // First the count, to confirm.
        return Ok(pages::bulk_confirm(
            &user,
            &command,
            form.reason.trim(),
            &form.filter,
            &form.ids,
            &targets,
        )
        .into_response());
    };
    if confirmed != targets.len() {
        return Ok(back(
            &list,
            &format!(
                "refused: {} workflows match now, not the {confirmed} confirmed; look again",
                targets.len()
            ),
        ));
    }
    let (mut queued, mut pending, mut refused) = (0, 0, 0);
    for w in &targets {
        match operate::request(
            state.store(),
            state.engine(),
            state.operators(),
            w,
            &command,
            &user.name,
            form.reason.trim(),
        )
        .await
        {
            Ok(Queued::PendingApproval { .. }) => pending += 1,
            Ok(_) => queued += 1,
            Err(OperateError::Refused(_)) => refused += 1,
            Err(other) => return Err(Failure(other.to_string())),
        }
    }
    Ok(back(
        &list,
        &format!(
            "{}: {queued} queued, {pending} pending approval, {refused} refused by their workflows",
            command.label()
        ),
    ))
}

async fn commands(
    State(state): State<AppState>,
    Authed(user): Authed,
    Query(notice): Query<Notice>,
) -> Result<Response, Failure> {
    let store = state.store();
    store.expire_command_requests().await?;
    // Commands that reached a finished workflow are answered here too, not only by a worker
    // (those of the last day: a worker looks at all of them when it starts, and hourly).
    store
        .answer_late_commands(
            "console",
            Some(chrono::Utc::now() - store::LATE_COMMANDS_WINDOW),
        )
        .await?;
    let requests = store
        .command_requests(&RequestFilter {
            limit: 100,
            ..RequestFilter::default()
        })
        .await?;
    let queued = store.operator_commands(None, None, 100).await?;
    Ok(pages::commands(&user, notice.notice.as_deref(), &requests, &queued).into_response())
}

#[derive(Debug, Deserialize)]
struct DecideForm {
    #[serde(default)]
    reason: String,
    #[serde(default)]
    csrf: String,
}

async fn approve(
    State(state): State<AppState>,
    Authed(user): Authed,
    Path(id): Path<i64>,
    Form(form): Form<DecideForm>,
) -> Result<Response, Failure> {
    if let Some(refused) = guard(&user, &form.csrf, Role::Approver, "an approval") {
        return Ok(refused);
    }
    Ok(
        match operate::approve(
            state.store(),
            state.engine(),
            id,
            &user.name,
            form.reason.trim(),
        )
        .await
        {
            Ok(request) => back(
                "/commands",
                &format!(
                    "approved command request {id}: {} queued for a running worker (inbox event {})",
                    request.title,
                    request.inbox_id.unwrap_or_default()
                ),
            ),
            Err(OperateError::Refused(why)) => back("/commands", &format!("refused: {why}")),
            Err(other) => return Err(Failure(other.to_string())),
        },
    )
}

async fn reject(
    State(state): State<AppState>,
    Authed(user): Authed,
    Path(id): Path<i64>,
    Form(form): Form<DecideForm>,
) -> Result<Response, Failure> {
    if let Some(refused) = guard(&user, &form.csrf, Role::Approver, "a rejection") {
        return Ok(refused);
    }
    Ok(
        match operate::reject(state.store(), id, &user.name, form.reason.trim()).await {
            Ok(_) => back(
                "/commands",
                &format!("rejected command request {id}: nothing was queued"),
            ),
            Err(OperateError::Refused(why)) => back("/commands", &format!("refused: {why}")),
            Err(other) => return Err(Failure(other.to_string())),
        },
    )
}

// ---------------------------------------------------------------- reconciliation, events, webhooks

/// Reconciliation runs listed.
const RUNS_LISTED: u32 = 20;

/// A keyset cursor (`?before=ID`): none when empty, or what is wrong with it.
fn before_id(s: &str) -> Result<Option<i64>, String> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(None);
    }
    s.parse()
        .map(Some)
        .map_err(|_| "the page cursor is malformed".to_owned())
}

/// The Reconciliation page's query.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct FindingsQuery {
    /// `1`: resolved findings too.
    #[serde(default)]
    pub all: String,
    /// Keyset cursor: the id of the last finding of the previous page.
    #[serde(default)]
    pub before: String,
    #[serde(default)]
    pub notice: Option<String>,
}

impl FindingsQuery {
    /// Resolved findings too.
    #[must_use]
    pub fn all(&self) -> bool {
        matches!(self.all.trim(), "1" | "true" | "yes" | "on")
    }
}

async fn reconciliation(
    State(state): State<AppState>,
    Authed(user): Authed,
    RawQuery(raw): RawQuery,
) -> Result<Response, Failure> {
    let query: FindingsQuery =
        serde_urlencoded::from_str(&raw.unwrap_or_default()).unwrap_or_default();
    let store = state.store();
    let runs = store.latest(store::RECONCILE_KIND, RUNS_LISTED).await?;
    let mut by_kind = store.open_findings_by_kind().await?;
    // The money ones first.
    by_kind.sort_by(|a, b| (b.2 > 0).cmp(&(a.2 > 0)).then_with(|| a.0.cmp(&b.0)));
    let (findings, next, why) = match before_id(&query.before) {
        Ok(before) => {
            let mut rows = store
                .findings_before(!query.all(), before, PAGE_SIZE + 1)
                .await?;
            let next = (rows.len() > PAGE_SIZE as usize).then(|| {
                rows.truncate(PAGE_SIZE as usize);
                rows.last().map_or(0, |f| f.id)
            });
            (rows, next, None)
        }
        Err(why) => (Vec::new(), None, Some(why)),
    };
    let page = pages::reconciliation(&pages::Reconciliation {
        user: &user,
        notice: why.as_deref().or(query.notice.as_deref()),
        all: query.all(),
        runs: &runs,
        by_kind: &by_kind,
        findings: &findings,
        next,
    });
    Ok(if why.is_some() {
        (StatusCode::BAD_REQUEST, page).into_response()
    } else {
        page.into_response()
    })
}

#[derive(Debug, Deserialize)]
struct RunForm {
    /// Loans created from this day (YYYY-MM-DD), optional.
    #[serde(default)]
    from: String,
    /// Loans created up to this day, inclusive, optional.
    #[serde(default)]
    to: String,
    #[serde(default)]
    csrf: String,
}

/// The input of a run started from the form, or what is wrong with it.
fn run_input(form: &RunForm) -> Result<serde_json::Value, String> {
    let mut input = serde_json::Map::new();
    for (name, value) in [("from", &form.from), ("to", &form.to)] {
        let value = value.trim();
        if value.is_empty() {
            continue;
        }
        let day = NaiveDate::parse_from_str(value, "%Y-%m-%d")
            .map_err(|_| format!("{name}: {value:?} is not a date (YYYY-MM-DD)"))?;
        input.insert(name.to_owned(), serde_json::json!(day));
    }
    Ok(serde_json::Value::Object(input))
}

async fn start_reconciliation(
    State(state): State<AppState>,
    Authed(user): Authed,
    Form(form): Form<RunForm>,
) -> Result<Response, Failure> {
    if let Some(refused) = guard(
        &user,
        &form.csrf,
        Role::Operator,
        "starting a reconciliation run",
    ) {
        return Ok(refused);
    }
    let page = "/reconciliation";
    let input = match run_input(&form) {
        Ok(input) => input,
        Err(why) => return Ok(back(page, &format!("refused: {why}"))),
    };
    let key = format!(
        "manual/{}/{}",
        Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ"),
        user.name
    );
    if let Err(why) = store::check_business_key(&key) {
        return Ok(back(page, &format!("refused: {why}")));
    }
    match crate::reconcile::start_run(state.store(), state.engine(), &key, input).await {
        Ok(run) => {
            tracing::info!(workflow.id = %run.id, business_key = %key, user = %user.name, "reconciliation run started from the console");
            Ok(back(
                page,
                &format!("reconciliation run {key} queued: a running worker carries it out"),
            ))
        }
        Err(crate::reconcile::StartRunError::Invalid(why)) => {
            Ok(back(page, &format!("refused: {why}")))
        }
        Err(crate::reconcile::StartRunError::Store(e)) => Err(e.into()),
    }
}

/// The Events page's query: filters and cursor, as they stand in the URL.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize, PartialEq, Eq)]
pub struct EventsQuery {
    /// One event type (`loan.disbursed`); empty: all.
    #[serde(default, rename = "type")]
    pub event_type: String,
    /// The business key starts with this.
    #[serde(default)]
    pub key: String,
    /// Keyset cursor: the id of the last event of the previous page.
    #[serde(default)]
    pub before: String,
}

impl EventsQuery {
    /// This filter as a query string, with `before` replaced.
    #[must_use]
    pub fn with_before(&self, before: &str) -> String {
        let mut q = self.clone();
        q.before = before.to_owned();
        serde_urlencoded::to_string(&q).unwrap_or_default()
    }
}

async fn events(
    State(state): State<AppState>,
    Authed(user): Authed,
    RawQuery(raw): RawQuery,
) -> Result<Response, Failure> {
    let raw = raw.unwrap_or_default();
    let query: EventsQuery = serde_urlencoded::from_str(&raw).unwrap_or_default();
    let notice: Notice = serde_urlencoded::from_str(&raw).unwrap_or_default();
    let before = match before_id(&query.before) {
        Ok(before) => before,
        Err(why) => {
            return Ok((
                StatusCode::BAD_REQUEST,
                pages::events(&user, &query, &[], None, Some(&why)),
            )
                .into_response());
        }
    };
    let mut rows = state
        .store()
        .events_before(
            before,
            opt(&query.event_type).as_deref(),
            opt(&query.key).as_deref(),
            i64::from(PAGE_SIZE) + 1,
        )
        .await?;
    let next = (rows.len() > PAGE_SIZE as usize).then(|| {
        rows.truncate(PAGE_SIZE as usize);
        rows.last().map_or(0, |e| e.id)
    });
    Ok(pages::events(&user, &query, &rows, next, notice.notice.as_deref()).into_response())
}

/// Deliveries listed on the Webhooks page.
const DELIVERIES_LISTED: i64 = 200;

#[derive(Debug, Deserialize, Default)]
struct WebhooksQuery {
    /// `1`: only the deliveries given up.
    #[serde(default)]
    failed: String,
    notice: Option<String>,
}

async fn webhooks(
    State(state): State<AppState>,
    Authed(user): Authed,
    Query(query): Query<WebhooksQuery>,
) -> Result<Response, Failure> {
    let failed = matches!(query.failed.trim(), "1" | "true" | "yes" | "on");
    let rows = state.store().deliveries(failed, DELIVERIES_LISTED).await?;
    Ok(pages::webhooks(&user, query.notice.as_deref(), failed, &rows).into_response())
}

#[derive(Debug, Deserialize)]
struct ReplayForm {
    /// The delivery's id (`<webhook>-<event id>`).
    #[serde(default)]
    id: String,
    #[serde(default)]
    csrf: String,
}

async fn replay(
    State(state): State<AppState>,
    Authed(user): Authed,
    Form(form): Form<ReplayForm>,
) -> Result<Response, Failure> {
    if let Some(refused) = guard(&user, &form.csrf, Role::Operator, "a replay") {
        return Ok(refused);
    }
    let id = form.id.trim();
    Ok(if state.store().replay_delivery(id).await? {
        tracing::info!(delivery.id = %id, user = %user.name, "webhook delivery replayed from the console");
        back(
            "/webhooks",
            &format!("delivery {id} is due again: a running worker sends it"),
        )
    } else {
        back("/webhooks", &format!("refused: no webhook delivery {id:?}"))
    })
}
