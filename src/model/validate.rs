//! Validation rules that look at more than one value.
use super::Interface;

/// Returns true when two different interfaces would have the same host name in the same
/// namespace reference (references are normalised by decoding, so `{"type":2,"name":""}` and
/// no namespace are equal; the scheduler also compares resolved namespaces).
pub fn host_name_conflict(a: &Interface, b: &Interface) -> bool {
    a.name != b.name && a.host_if_name == b.host_if_name && a.namespace == b.namespace
}
