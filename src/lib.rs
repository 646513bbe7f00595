//! nsagent: turns network configuration stored in etcd into Linux kernel state inside
//! network namespaces.
//!
//! Data flow: [`store`] (etcd) -> [`scheduler`] (pure state machine) -> [`netlink`]
//! (executor, one netlink socket per namespace from [`netns`]) -> results back into the
//! scheduler. [`microservice`] follows Docker containers that items refer to by label.
//! [`agent`] wires the pieces together.

pub mod agent;
pub mod api;
pub mod backoff;
pub mod config;
pub mod ctl;
pub mod graph;
pub mod kernel;
pub mod keys;
pub mod memory;
pub mod microservice;
pub mod model;
pub mod netlink;
pub mod netns;
pub mod owned;
pub mod scheduler;
pub mod status;
pub mod store;
pub mod tally;
