//! The HTTP server (axum): a thin adapter from requests to the [`Observer`] and, for what
//! needs the agent loop, to [`Command`]s.

use super::hooks::{Command, ResyncReply};
use super::metrics::{CONTENT_TYPE as METRICS_CONTENT_TYPE, KINDS, STATES};
use super::observer::Observer;
use crate::graph::{self, SvgError};
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Longest wait for the agent loop to answer `GET /graph`.
const GRAPH_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait for the rounds that follow `POST /resync`.
const RESYNC_TIMEOUT: Duration = Duration::from_secs(120);

/// What the handlers share.
#[derive(Clone)]
struct Shared {
    observer: Arc<Observer>,
    commands: mpsc::Sender<Command>,
}

/// The routes of the API.
pub fn router(observer: Arc<Observer>, commands: mpsc::Sender<Command>) -> Router {
    Router::new()
        .route("/healthz", get(liveness))
        .route("/liveness", get(liveness))
        .route("/readyz", get(readiness))
        .route("/readiness", get(readiness))
        .route("/status", get(statuses))
        .route("/status/{kind}/{*name}", get(status))
        .route("/graph", get(graph))
        .route("/metrics", get(metrics))
        .route("/resync", post(resync))
        .fallback(not_found)
        .with_state(Shared { observer, commands })
}

fn error(code: StatusCode, message: impl Into<String>) -> Response {
    (code, Json(json!({"error": message.into()}))).into_response()
}

async fn not_found() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "no such endpoint; try /healthz, /readyz, /status, /graph, /metrics or POST /resync",
    )
}

async fn liveness(State(s): State<Shared>) -> Response {
    match s.observer.liveness() {
        Ok(()) => Json(json!({"status": "ok"})).into_response(),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "stalled", "reason": reason})),
        )
            .into_response(),
    }
}

async fn readiness(State(s): State<Shared>) -> Response {
    match s.observer.readiness() {
        Ok(()) => Json(json!({"ready": true})).into_response(),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"ready": false, "reason": reason})),
        )
            .into_response(),
    }
}

#[derive(Deserialize)]
struct StatusQuery {
    state: Option<String>,
}

async fn statuses(State(s): State<Shared>, Query(q): Query<StatusQuery>) -> Response {
    if let Some(state) = q.state.as_deref() {
        if !STATES.contains(&state) {
            return error(
                StatusCode::BAD_REQUEST,
                format!(
                    "unknown state {state:?}; expected one of {}",
                    STATES.join(", ")
                ),
            );
        }
    }
    Json(s.observer.statuses(q.state.as_deref())).into_response()
}

async fn status(State(s): State<Shared>, Path((kind, name)): Path<(String, String)>) -> Response {
    let Some(item_kind) = KINDS.into_iter().find(|k| k.segment() == kind) else {
        return error(
            StatusCode::NOT_FOUND,
            format!("unknown kind {kind:?}; expected interface, route or arp"),
        );
    };
    match s.observer.status(item_kind, &name) {
        Some(record) => Json(record).into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            format!("no item {kind}/{name} is configured (or it has no status yet)"),
        ),
    }
}

#[derive(Deserialize)]
struct GraphQuery {
    format: Option<String>,
}

async fn graph(State(s): State<Shared>, Query(q): Query<GraphQuery>) -> Response {
    let svg = match q.format.as_deref() {
        None | Some("dot") => false,
        Some("svg") => true,
        Some(other) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("unknown format {other:?}; expected dot or svg"),
            )
        }
    };
    let items = match ask(&s.commands, Command::Graph, GRAPH_TIMEOUT).await {
        Ok(items) => items,
        Err(response) => return response,
    };
    let dot = graph::to_dot(&items);
    if !svg {
        return (
            [(header::CONTENT_TYPE, "text/vnd.graphviz; charset=utf-8")],
            dot,
        )
            .into_response();
    }
    match graph::svg(&dot).await {
        Ok(svg) => ([(header::CONTENT_TYPE, "image/svg+xml")], svg).into_response(),
        Err(e @ SvgError::NotInstalled) => error(StatusCode::NOT_IMPLEMENTED, e.to_string()),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn metrics(State(s): State<Shared>) -> Response {
    (
        [(header::CONTENT_TYPE, METRICS_CONTENT_TYPE)],
        s.observer.render_metrics(),
    )
        .into_response()
}

async fn resync(State(s): State<Shared>) -> Response {
    match ask::<ResyncReply>(&s.commands, Command::Resync, RESYNC_TIMEOUT).await {
        Ok(Ok(tally)) => Json(tally).into_response(),
        Ok(Err(reason)) => error(StatusCode::SERVICE_UNAVAILABLE, reason),
        Err(response) => response,
    }
}

/// Sends a request to the agent loop and waits for its answer.
async fn ask<T>(
    commands: &mpsc::Sender<Command>,
    command: impl FnOnce(oneshot::Sender<T>) -> Command,
    timeout: Duration,
) -> Result<T, Response> {
    let (tx, rx) = oneshot::channel();
    let unavailable = |what: &str| error(StatusCode::SERVICE_UNAVAILABLE, what);
    commands
        .send(command(tx))
        .await
        .map_err(|_| unavailable("the agent loop has stopped"))?;
    match tokio::time::timeout(timeout, rx).await {
        Ok(Ok(answer)) => Ok(answer),
        Ok(Err(_)) => Err(unavailable("the agent loop has stopped")),
        Err(_) => Err(error(
            StatusCode::GATEWAY_TIMEOUT,
            format!(
                "the agent loop did not answer within {} s",
                timeout.as_secs()
            ),
        )),
    }
}
