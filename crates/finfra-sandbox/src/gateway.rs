//! The middleware every routed request passes: endpoint identification, the ledger, the
//! rate limiter and its `Retry-After` memory, fault injection, and authentication.
//!
//! Order: rate limit → injected faults (latency, 500, 429) → authentication → handler →
//! ambiguous faults (mark the answer to be dropped, or hold it). A request refused early is
//! still counted in the ledger under its endpoint and status.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::Utc;

use crate::app::App;
use crate::auth;
use crate::error::ApiError;
use crate::faults::Fault;
use crate::ledger::bump;
use crate::rate_limit::InsideWindow;

/// Marks a response whose connection must be closed without sending it (an ambiguous
/// failure: the operation was applied, the client learns nothing). The accept loop in
/// `server.rs` honours it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DropConnection;

/// How an endpoint authenticates (CONTRACT §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Basic,
    Refresh,
    Bearer,
    None,
}

fn scheme(method: &Method, route: &str) -> Scheme {
    match (method, route) {
        (_, "/api/auth/token/v2" | "/api/auth/token") => Scheme::Basic,
        (_, "/api/auth/refresh") => Scheme::Refresh,
        (&Method::POST, "/api/core/users/{userId}/approve" | "/api/core/users/{userId}/block")
        | (&Method::POST, "/api/documents")
        | (&Method::GET, "/api/core/users/{userId}/{reffid}/afpi/credit-report") => Scheme::None,
        (_, r) if r.starts_with("/api/") => Scheme::Bearer,
        _ => Scheme::None,
    }
}

/// The ledger key: `METHOD /template` with the reference's parameter names. Routes that share
/// a segment must share a parameter name in the router, so a few are renamed back here.
fn label(method: &Method, route: Option<&str>) -> String {
    let Some(route) = route else {
        return format!("{method} (unmatched)");
    };
    let reference = match route {
        "/api/core/users/{userId}/credit-history" => {
            "/api/core/users/{identityNumber}/credit-history"
        }
        "/api/core/users/{userId}/{reffid}/afpi/credit-report" => {
            "/api/core/users/{identityNumber}/{reffid}/afpi/credit-report"
        }
        "/api/core/loans/{userId}/disbursement" => "/api/core/loans/{loanUniqueId}/disbursement",
        "/api/core/loans/{userId}/reject" => "/api/core/loans/{loanUniqueId}/reject",
        other => other,
    };
    format!("{method} {reference}")
}

/// Who a request counts against: the client id when the endpoint authenticates one (even
/// with an expired token), else the source address.
fn identity(app: &App, scheme: Scheme, headers: &HeaderMap, peer: Option<SocketAddr>) -> String {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let client = match scheme {
        Scheme::Bearer => auth::bearer(header(header::AUTHORIZATION.as_str()))
            .ok()
            .and_then(|t| app.with_state(|s| s.tokens.owner(t).map(str::to_owned))),
        Scheme::Basic => auth::basic(header(header::AUTHORIZATION.as_str()))
            .map(|(id, _)| id)
            .filter(|id| app.config.clients.iter().any(|c| &c.client_id == id)),
        Scheme::Refresh => header("x-refresh-token")
            .and_then(|t| app.with_state(|s| s.tokens.owner(t).map(str::to_owned))),
        Scheme::None => None,
    };
    client.unwrap_or_else(|| match peer {
        Some(p) => format!("ip:{}", p.ip()),
        None => "ip:unknown".to_owned(),
    })
}

pub(crate) async fn gateway(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    if path.starts_with("/_sandbox") {
        return next.run(req).await;
    }
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned());
    let label = label(&method, route.as_deref());
    let scheme = route
        .as_deref()
        .map_or(Scheme::None, |r| scheme(&method, r));
    let api = path.starts_with("/api/") || path.starts_with("/healthcheck/");
    let faultable = path.starts_with("/api/")
        && (!path.starts_with("/api/auth/") || app.with_state(|s| s.faults.faults.include_auth));
    let record = |response: Response| {
        app.with_state(|s| {
            s.ledger.record_request(&label, response.status().as_u16());
            match scheme {
                Scheme::Basic => s.ledger.token_requests += 1,
                Scheme::Refresh => s.ledger.refresh_requests += 1,
                Scheme::Bearer | Scheme::None => {}
            }
        });
        response
    };

    if api {
        let peer = req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0);
        let who = identity(&app, scheme, req.headers(), peer);
        let now = Instant::now();
        let grace = app.config.retry_after_grace;
        let limited = app.with_state(|s| {
            match s.limiter.inside_window(&who, now, grace) {
                Some(InsideWindow::Violation) => {
                    bump(&mut s.ledger.requests_inside_retry_after, &who);
                    bump(
                        &mut s.ledger.requests_inside_retry_after_by_endpoint,
                        &label,
                    );
                }
                Some(InsideWindow::InFlight) => {
                    bump(&mut s.ledger.requests_in_flight_at_429, &who);
                }
                None => {}
            }
            s.limiter.take(&who, now).err().inspect(|&secs| {
                s.limiter.open_window(&who, now, secs);
                bump(&mut s.ledger.rate_limited, &who);
            })
        });
        if let Some(secs) = limited {
            return record(ApiError::too_many_requests(Some(secs)).into_response());
        }
        let (latency, fault) = if faultable {
            app.with_state(|s| s.faults.draw(&label))
        } else {
            (None, None)
        };
        if let Some(latency) = latency {
            tokio::time::sleep(latency).await;
        }
        if let Some(fault) = fault {
            app.with_state(|s| bump(&mut s.ledger.faults_injected, fault.name()));
        }
        match fault {
            Some(Fault::Error500) => {
                return record(
                    ApiError::new(
                        axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                        "Internal server error (injected fault)",
                    )
                    .into_response(),
                );
            }
            Some(Fault::TooManyRequests(retry_after)) => {
                if let Some(secs) = retry_after {
                    // Told now, after any injected latency: the window and its grace start
                    // when the answer leaves.
                    app.with_state(|s| s.limiter.open_window(&who, Instant::now(), secs));
                }
                return record(ApiError::too_many_requests(retry_after).into_response());
            }
            _ => {}
        }
        if scheme == Scheme::Bearer {
            let token = auth::bearer(
                req.headers()
                    .get(header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok()),
            );
            let checked = token
                .and_then(|t| app.with_state(|s| s.tokens.check_access(t, Utc::now()).map(|_| ())));
            if let Err(refusal) = checked {
                return record(ApiError::unauthorized(refusal.message()).into_response());
            }
        }
        let mut response = next.run(req).await;
        match fault {
            Some(Fault::Ambiguous) => {
                response.extensions_mut().insert(DropConnection);
            }
            Some(Fault::AmbiguousTimeout(hold)) => tokio::time::sleep(hold).await,
            _ => {}
        }
        return record(response);
    }
    record(next.run(req).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes_follow_the_contract() {
        assert_eq!(scheme(&Method::POST, "/api/auth/token/v2"), Scheme::Basic);
        assert_eq!(
            scheme(&Method::POST, "/api/core/users/{userId}/approve"),
            Scheme::None
        );
        assert_eq!(
            scheme(&Method::GET, "/api/core/users/{userId}"),
            Scheme::Bearer
        );
        assert_eq!(scheme(&Method::POST, "/api/documents"), Scheme::None);
        assert_eq!(scheme(&Method::PATCH, "/api/documents"), Scheme::Bearer);
        assert_eq!(
            scheme(&Method::GET, "/api/documents/{documentId}"),
            Scheme::Bearer
        );
        assert_eq!(scheme(&Method::GET, "/healthcheck/readiness"), Scheme::None);
    }

    #[test]
    fn labels_use_the_reference_names() {
        assert_eq!(
            label(&Method::POST, Some("/api/core/loans/{userId}/disbursement")),
            "POST /api/core/loans/{loanUniqueId}/disbursement"
        );
        assert_eq!(label(&Method::GET, None), "GET (unmatched)");
    }
}
