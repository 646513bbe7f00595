//! Validation rules that look at more than one value.
use super::Interface;

/// Returns true when two interfaces would have the same host name in the same namespace
/// reference (same reference spelling; the scheduler also compares resolved namespaces).
pub fn host_name_conflict(a: &Interface, b: &Interface) -> bool {
    a.name != b.name && a.host_if_name == b.host_if_name && a.namespace == b.namespace
}
