//! A real etcd cluster of several members on loopback, each with its own ports and data
//! directory, all killed on drop.

use super::{Etcd, EtcdSetup, ETCD_START_TIMEOUT};

/// Members of one etcd cluster.
pub struct EtcdCluster {
    members: Vec<Etcd>,
}

impl EtcdCluster {
    /// Starts `size` members (`m0`, `m1`, ...) that form a new cluster and waits until each
    /// is healthy (which needs a leader). Retries with other ports if some were taken
    /// meanwhile; panics with the last error after five attempts.
    pub fn start(size: usize) -> EtcdCluster {
        let mut last_error = String::new();
        for _ in 0..5 {
            let mut members: Vec<Etcd> = (0..size)
                .map(|i| Etcd::new(&format!("m{i}"), EtcdSetup::default()))
                .collect();
            let initial = members
                .iter()
                .map(|m| format!("{}={}", m.name, m.peer_url()))
                .collect::<Vec<_>>()
                .join(",");
            let token = members[0].cluster_token.clone();
            for m in &mut members {
                m.initial_cluster = initial.clone();
                m.cluster_token = token.clone();
            }
            let started = members
                .iter_mut()
                .try_for_each(|m| m.spawn())
                .and_then(|()| members.iter_mut().try_for_each(|m| m.wait_ready()));
            match started {
                Ok(()) => return EtcdCluster { members },
                Err(e) => last_error = e,
            }
        }
        panic!(
            "etcd cluster does not start within {ETCD_START_TIMEOUT:?} per member: {last_error}"
        );
    }

    /// The member `i`.
    pub fn member(&self, i: usize) -> &Etcd {
        &self.members[i]
    }

    /// The member `i`, to stop or start it.
    pub fn member_mut(&mut self, i: usize) -> &mut Etcd {
        &mut self.members[i]
    }

    /// The members.
    pub fn members(&self) -> &[Etcd] {
        &self.members
    }

    /// The client URLs of all members, comma-separated, in member order.
    pub fn endpoints(&self) -> String {
        self.members
            .iter()
            .map(Etcd::url)
            .collect::<Vec<_>>()
            .join(",")
    }
}
