//! The agent's HTTP API (`--http-listen`, default `127.0.0.1:9191`, `off` disables it):
//! `GET /healthz` (`/liveness`), `GET /readyz` (`/readiness`), `GET /status[?state=S]`,
//! `GET /status/{kind}/{name}`, `GET /graph[?format=svg]`, `GET /metrics` (Prometheus text)
//! and `POST /resync`.
//!
//! The server ([`server`], axum) only reads the shared [`Observer`] that the agent loop
//! updates through its [`AgentHooks`]; what needs the loop itself (`/graph`, `/resync`) goes
//! to it as a [`Command`] over a channel that the loop selects on.

mod health;
mod hooks;
mod latency;
pub mod metrics;
mod observer;
mod server;

pub use hooks::{AgentHooks, Command, ResyncReply};
pub use observer::{rfc3339, Observer, StatusRecord};

use crate::keys::KeyTree;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Default `--http-listen` address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9191";

/// Requests waiting for the loop before senders wait.
const COMMAND_QUEUE: usize = 16;

/// Parses an `--http-listen` value: `IP:PORT` (`[::1]:9191` for IPv6), or `off` (`None`).
pub fn parse_listen(value: &str) -> anyhow::Result<Option<SocketAddr>> {
    let value = value.trim();
    if value.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    value.parse().map(Some).map_err(|_| {
        anyhow::anyhow!(
            "--http-listen {value:?}: expected IP:PORT (such as {DEFAULT_LISTEN} or [::]:9191) or off"
        )
    })
}

/// The running server; stops when dropped.
pub struct Server {
    task: tokio::task::JoinHandle<()>,
    address: SocketAddr,
}

impl Server {
    /// The address it listens on.
    pub fn address(&self) -> SocketAddr {
        self.address
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Creates the observer and hooks of the agent of `keys` and, unless `listen` is `None`,
/// binds and starts the server (a bind failure is an error naming the address).
pub async fn start(
    listen: Option<SocketAddr>,
    keys: &KeyTree,
) -> anyhow::Result<(AgentHooks, Option<Server>)> {
    let observer = Arc::new(Observer::new(keys.clone()));
    let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
    let hooks = AgentHooks::new(observer.clone(), keys.clone(), rx);
    let Some(address) = listen else {
        return Ok((hooks, None));
    };
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {address} (--http-listen): {e}"))?;
    let address = listener.local_addr().unwrap_or(address);
    let app = server::router(observer, tx);
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!("HTTP API on {address} stopped: {e}");
        }
    });
    Ok((hooks, Some(Server { task, address })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses_parse() {
        assert_eq!(
            parse_listen("127.0.0.1:9191").unwrap(),
            Some("127.0.0.1:9191".parse().unwrap())
        );
        assert_eq!(
            parse_listen("[::]:80").unwrap(),
            Some("[::]:80".parse().unwrap())
        );
        assert_eq!(parse_listen("off").unwrap(), None);
        for bad in ["", "9191", "localhost", "1.2.3.4", "1.2.3.4:99999"] {
            let e = parse_listen(bad).unwrap_err().to_string();
            assert!(e.contains("--http-listen"), "{e}");
        }
    }
}
