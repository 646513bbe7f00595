//! Which keys `nsagent-ctl` may touch: short keys are relative to the agent's configuration
//! prefix, full keys inside the agent's own tree (`/vnf-agent/<label>/`) are allowed, and
//! anything else needs `--any-key`; a prefix delete that reaches beyond the agent's own tree
//! also needs `--yes-delete-all`.

use crate::keys::KeyTree;

/// Flag that allows keys outside the agent's own tree.
pub const ANY_KEY_FLAG: &str = "--any-key";
/// Flag that confirms a prefix delete reaching beyond the agent's own tree.
pub const DELETE_ALL_FLAG: &str = "--yes-delete-all";

/// The full key for `key` (short keys are expanded under the configuration prefix);
/// refuses an empty key, and a key outside the agent's own tree unless `any_key`.
pub fn resolve(tree: &KeyTree, key: &str, any_key: bool) -> Result<String, String> {
    if key.is_empty() {
        return Err("empty key".to_string());
    }
    let full = tree.expand(key);
    if !any_key && !full.starts_with(&tree.agent_prefix()) {
        return Err(format!(
            "{full} is outside the keys of agent {} ({}); add {ANY_KEY_FLAG} to use it",
            tree.label(),
            tree.agent_prefix()
        ));
    }
    Ok(full)
}

/// Checks a delete of every key starting with `prefix` (a full key): one that reaches
/// beyond the agent's own tree (`/`, `/vnf-agent/`, another label's tree, any other tree)
/// needs `delete_all` on top of the `any_key` that [`resolve`] asked for.
pub fn check_prefix_delete(tree: &KeyTree, prefix: &str, delete_all: bool) -> Result<(), String> {
    if prefix.starts_with(&tree.agent_prefix()) || delete_all {
        return Ok(());
    }
    Err(format!(
        "deleting every key under {prefix:?} reaches beyond the keys of agent {} ({}); add {ANY_KEY_FLAG} {DELETE_ALL_FLAG} to delete them",
        tree.label(),
        tree.agent_prefix()
    ))
}

/// A key that `put` may write: an item key (`interface/NAME`, `route/NAME`, `arp/NAME`
/// with a non-empty name) when it is under the configuration prefix. `Ok(false)` for keys
/// elsewhere (written unchecked); an error for malformed keys under the prefix.
pub fn is_item_key(tree: &KeyTree, full: &str) -> Result<bool, String> {
    let Some(rest) = full.strip_prefix(&tree.config_prefix()) else {
        return Ok(false);
    };
    if tree.parse(full).is_some() {
        return Ok(true);
    }
    Err(match rest.split_once('/') {
        Some((kind, "")) if matches!(kind, "interface" | "route" | "arp") => {
            format!("{full}: the item name is empty (expected {kind}/NAME)")
        }
        Some((kind, name)) if matches!(kind, "interface" | "route" | "arp") => {
            format!("{full}: the item name {name:?} contains '/' (expected {kind}/NAME)")
        }
        _ => format!(
            "{full}: not an item key; expected interface/NAME, route/NAME or arp/NAME under {}",
            tree.config_prefix()
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_and_own_keys_pass_others_need_the_flag() {
        let t = KeyTree::new("vpp1");
        assert_eq!(
            resolve(&t, "interface/a", false).unwrap(),
            "/vnf-agent/vpp1/linux/config/v1/interface/a"
        );
        assert_eq!(
            resolve(&t, "/vnf-agent/vpp1/x", false).unwrap(),
            "/vnf-agent/vpp1/x"
        );
        for outside in [
            "/",
            "/vnf-agent/",
            "/vnf-agent/vpp1",
            "/vnf-agent/vpp2/x",
            "/other",
        ] {
            let e = resolve(&t, outside, false).unwrap_err();
            assert!(e.contains(ANY_KEY_FLAG), "{e}");
            assert_eq!(resolve(&t, outside, true).unwrap(), outside);
        }
        assert_eq!(resolve(&t, "", true).unwrap_err(), "empty key");
    }

    #[test]
    fn prefix_deletes_beyond_the_own_tree_need_confirmation() {
        let t = KeyTree::new("vpp1");
        assert!(check_prefix_delete(&t, "/vnf-agent/vpp1/linux/", false).is_ok());
        for wide in [
            "/",
            "/vnf-agent/",
            "/vnf-agent/vpp1",
            "/vnf-agent/vpp2/",
            "/x",
        ] {
            let e = check_prefix_delete(&t, wide, false).unwrap_err();
            assert!(e.contains("--any-key --yes-delete-all"), "{e}");
            assert!(check_prefix_delete(&t, wide, true).is_ok());
        }
    }

    #[test]
    fn item_keys_under_the_config_prefix_must_be_well_formed() {
        let t = KeyTree::new("vpp1");
        let k = |s: &str| t.expand(s);
        assert_eq!(is_item_key(&t, &k("interface/a")), Ok(true));
        assert_eq!(is_item_key(&t, "/vnf-agent/vpp1/other"), Ok(false));
        let e = is_item_key(&t, &k("interface/")).unwrap_err();
        assert!(e.contains("the item name is empty"), "{e}");
        let e = is_item_key(&t, &k("interface/x/veth1")).unwrap_err();
        assert!(e.contains("the item name \"x/veth1\" contains '/'"), "{e}");
        let e = is_item_key(&t, &k("bogus/x")).unwrap_err();
        assert!(e.contains("not an item key"), "{e}");
        assert!(is_item_key(&t, &k("route")).is_err());
    }
}
