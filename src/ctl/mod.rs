//! The logic behind `nsagent-ctl` that is worth testing on its own: which keys it may touch
//! ([`scope`]), reading configuration files for `apply` ([`files`]), the agent's state as
//! read from etcd ([`view`]), writing many keys in few transactions ([`txn`]), and showing
//! progress ([`progress`]).

pub mod files;
pub mod progress;
pub mod scope;
pub mod txn;
pub mod view;
