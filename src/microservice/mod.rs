//! Microservices: Docker containers whose environment holds a non-empty
//! `MICROSERVICE_LABEL=<label>`. Configuration items may refer to such a container's network
//! namespace by label.
//!
//! Two parts:
//! * [`track`] follows a Docker engine (event-driven, reconnecting on its own) and sends
//!   [`TrackerEvent`]s: a [`TrackerEvent::Snapshot`] after every (re)connect, then
//!   [`TrackerEvent::Started`] / [`TrackerEvent::Stopped`].
//! * [`Registry`] (pure) turns those events into [`Change`]s of the effective container per
//!   label: `Up { label, id, pid }` (namespace `/proc/<pid>/ns/net`) and `Down { label }`.
//!   The newest created container wins; see [`registry`] for the exact rules.
//!
//! ```no_run
//! # async fn demo() {
//! use nsagent::microservice::{track, Registry};
//! let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
//! tokio::spawn(track(std::env::var("DOCKER_HOST").ok(), tx));
//! let mut registry = Registry::new();
//! while let Some(event) = rx.recv().await {
//!     for change in registry.apply(event) {
//!         println!("{change:?}");
//!     }
//! }
//! # }
//! ```

pub mod registry;
pub mod tracker;

pub use registry::{Change, Container, Registry, TrackerEvent};
pub use tracker::{
    socket_path, track, track_reporting, TrackerError, DEFAULT_DOCKER_HOST, LABEL_ENV,
};
