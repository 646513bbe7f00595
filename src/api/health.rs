//! Liveness and readiness judgements (pure; the observer passes in what it knows).

use std::time::Duration;

/// How long the main loop may go without turning before the agent counts as not alive. The
/// loop turns at least once a second when idle, and at every round of a busy apply.
pub const LIVENESS_STALE: Duration = Duration::from_secs(30);

/// Alive while the main loop turned less than [`LIVENESS_STALE`] ago; otherwise why not.
pub fn liveness(since_last_turn: Duration) -> Result<(), String> {
    if since_last_turn < LIVENESS_STALE {
        Ok(())
    } else {
        Err(format!(
            "the main loop has not turned for {} s (limit {} s)",
            since_last_turn.as_secs(),
            LIVENESS_STALE.as_secs()
        ))
    }
}

/// Ready once the first etcd snapshot is in the kernel and while etcd is connected;
/// otherwise why not.
pub fn readiness(snapshot_applied: bool, etcd_connected: bool) -> Result<(), String> {
    match (snapshot_applied, etcd_connected) {
        (_, false) => Err("etcd is not connected".to_string()),
        (false, true) => {
            Err("the first etcd snapshot is not applied to the kernel yet".to_string())
        }
        (true, true) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn liveness_turns_stale() {
        assert!(liveness(Duration::from_secs(1)).is_ok());
        let e = liveness(Duration::from_secs(31)).unwrap_err();
        assert!(e.contains("31 s"), "{e}");
    }

    #[test]
    fn readiness_needs_both_facts() {
        assert!(readiness(true, true).is_ok());
        assert_eq!(readiness(true, false).unwrap_err(), "etcd is not connected");
        assert!(readiness(false, true).unwrap_err().contains("snapshot"));
        assert!(readiness(false, false).is_err());
    }
}
