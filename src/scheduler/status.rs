//! The state of one configured item, as users see it in logs and status queries.

use std::fmt;

/// Where an item stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ItemStatus {
    /// The kernel holds the item as configured.
    Applied,
    /// Operations for it are under way.
    Applying,
    /// A requirement is missing; applied on its own once it holds.
    Pending {
        /// Which requirement is missing.
        reason: String,
    },
    /// Applying it failed; it is retried with backoff.
    Failed {
        /// The last error.
        error: String,
    },
    /// The value is bad; fixing the value applies it.
    Invalid {
        /// What is wrong, naming key and field.
        error: String,
    },
}

impl ItemStatus {
    /// Short state name: `applied`, `applying`, `pending`, `failed`, `invalid`.
    pub fn state(&self) -> &'static str {
        match self {
            ItemStatus::Applied => "applied",
            ItemStatus::Applying => "applying",
            ItemStatus::Pending { .. } => "pending",
            ItemStatus::Failed { .. } => "failed",
            ItemStatus::Invalid { .. } => "invalid",
        }
    }

    /// The reason or error, empty for applied items.
    pub fn detail(&self) -> &str {
        match self {
            ItemStatus::Applied | ItemStatus::Applying => "",
            ItemStatus::Pending { reason } => reason,
            ItemStatus::Failed { error } | ItemStatus::Invalid { error } => error,
        }
    }
}

impl fmt::Display for ItemStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.detail() {
            "" => f.write_str(self.state()),
            d => write!(f, "{}: {}", self.state(), d),
        }
    }
}
