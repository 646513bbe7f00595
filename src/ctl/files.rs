//! `nsagent-ctl apply`: reads files and directories of JSON values, tells each value's kind
//! (from its folder `interface/`, `route/`, `arp/`, or from its fields) and name, and
//! validates all of them with the agent's own rules before anything is written.

use crate::keys::{ItemKind, KeyTree};
use crate::model;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One value ready to be written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Loaded {
    /// The file it came from.
    pub path: PathBuf,
    /// Its kind.
    pub kind: ItemKind,
    /// Its name (the value's `name`).
    pub name: String,
    /// The value as read.
    pub value: Vec<u8>,
}

/// The files named by `paths`: files as given, directories searched (recursively, in name
/// order) for `*.json` files; hidden entries are skipped.
pub fn collect(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut files = Vec::new();
    for path in paths {
        let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
        if meta.is_dir() {
            walk(path, &mut files)?;
        } else {
            files.push(path.clone());
        }
    }
    Ok(files)
}

fn walk(dir: &Path, files: &mut Vec<PathBuf>) -> Result<(), String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut paths: Vec<PathBuf> = entries
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    paths.sort();
    for path in paths {
        let hidden = path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'));
        if hidden {
            continue;
        }
        if path.is_dir() {
            walk(&path, files)?;
        } else if path.extension().is_some_and(|e| e == "json") {
            files.push(path);
        }
    }
    Ok(())
}

/// A field name as the decoder matches it: any letter case, `_` and `-` ignored.
fn normalised(field: &str) -> String {
    field
        .chars()
        .filter(|c| *c != '_' && *c != '-')
        .flat_map(char::to_lowercase)
        .collect()
}

/// The kind of a value found at `path`: from its folder (`.../interface/x.json`) when that
/// names a kind, else from its fields: `veth`, `type` or `host_if_name` make an interface,
/// `dst_ip_addr`, `gw_addr` or `default` a route, `ip_addr` with `hw_address` an ARP entry.
pub fn kind_of(path: &Path, value: &serde_json::Value) -> Result<ItemKind, String> {
    let folder = path
        .parent()
        .and_then(|p| p.file_name())
        .map(|n| n.to_string_lossy().into_owned());
    match folder.as_deref() {
        Some("interface") => return Ok(ItemKind::Interface),
        Some("route") => return Ok(ItemKind::Route),
        Some("arp") => return Ok(ItemKind::Arp),
        _ => {}
    }
    let fields: Vec<String> = value
        .as_object()
        .ok_or_else(|| format!("{}: not a JSON object", path.display()))?
        .keys()
        .map(|k| normalised(k))
        .collect();
    let has = |f: &str| fields.iter().any(|x| x == f);
    let mut kinds = Vec::new();
    if has("veth") || has("type") || has("hostifname") {
        kinds.push(ItemKind::Interface);
    }
    if has("dstipaddr") || has("gwaddr") || has("default") {
        kinds.push(ItemKind::Route);
    }
    if has("ipaddr") && has("hwaddress") {
        kinds.push(ItemKind::Arp);
    }
    match kinds.as_slice() {
        [kind] => Ok(*kind),
        [] => Err(format!(
            "{}: cannot tell the kind of the value; put it in a folder named interface, route or arp",
            path.display()
        )),
        _ => Err(format!(
            "{}: ambiguous value, it has fields of {}; put it in a folder named after its kind",
            path.display(),
            kinds
                .iter()
                .map(|k| k.segment())
                .collect::<Vec<_>>()
                .join(" and ")
        )),
    }
}

/// Reads and validates every file: the values, or every problem found (naming the file,
/// and the key and field for values the agent would refuse). Two files with the same item
/// are an error.
pub fn load(tree: &KeyTree, files: &[PathBuf]) -> Result<Vec<Loaded>, Vec<String>> {
    let mut loaded = Vec::new();
    let mut errors = Vec::new();
    let mut seen: BTreeMap<(ItemKind, String), PathBuf> = BTreeMap::new();
    for path in files {
        match load_one(tree, path) {
            Ok(item) => {
                let id = (item.kind, item.name.clone());
                if let Some(first) = seen.insert(id, path.clone()) {
                    errors.push(format!(
                        "{}: {}/{} is also in {}",
                        path.display(),
                        item.kind,
                        item.name,
                        first.display()
                    ));
                }
                loaded.push(item);
            }
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(loaded)
    } else {
        Err(errors)
    }
}

fn load_one(tree: &KeyTree, path: &Path) -> Result<Loaded, String> {
    let value = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let json: serde_json::Value = serde_json::from_slice(&value)
        .map_err(|e| format!("{}: not valid JSON: {e}", path.display()))?;
    let kind = kind_of(path, &json)?;
    let name = json
        .as_object()
        .and_then(|o| o.iter().find(|(k, _)| normalised(k) == "name"))
        .and_then(|(_, v)| v.as_str())
        .filter(|n| !n.is_empty())
        .ok_or_else(|| format!("{}: the value has no `name`", path.display()))?
        .to_string();
    let key = tree.key(kind, &name);
    model::accept_value(kind, &key, &value).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(Loaded {
        path: path.to_path_buf(),
        kind,
        name,
        value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn kind(path: &str, v: serde_json::Value) -> Result<ItemKind, String> {
        kind_of(Path::new(path), &v)
    }

    #[test]
    fn kinds_come_from_the_folder_or_the_fields() {
        assert_eq!(kind("cfg/route/x.json", json!({})), Ok(ItemKind::Route));
        assert_eq!(kind("x.json", json!({"veth": {}})), Ok(ItemKind::Interface));
        assert_eq!(
            kind("x.json", json!({"hostIfName": "a"})),
            Ok(ItemKind::Interface)
        );
        assert_eq!(
            kind("x.json", json!({"dst-ip-addr": "10.0.0.0/8"})),
            Ok(ItemKind::Route)
        );
        assert_eq!(
            kind("x.json", json!({"ip_addr": "1.2.3.4", "hw_address": "x"})),
            Ok(ItemKind::Arp)
        );
        let e = kind("a/x.json", json!({"ip_addr": "1.2.3.4"})).unwrap_err();
        assert!(e.starts_with("a/x.json: cannot tell the kind"), "{e}");
        let e = kind("x.json", json!({"type": "VETH", "gw_addr": "1.2.3.4"})).unwrap_err();
        assert!(
            e.contains("ambiguous") && e.contains("interface and route"),
            "{e}"
        );
        assert!(kind("x.json", json!([1])).is_err());
    }

    #[test]
    fn loading_validates_everything_and_finds_duplicates() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("interface");
        std::fs::create_dir(&sub).unwrap();
        let write = |p: &Path, v: serde_json::Value| std::fs::write(p, v.to_string()).unwrap();
        write(
            &sub.join("a.json"),
            json!({"name": "a", "veth": {"peer_if_name": "b"}}),
        );
        write(
            &dir.path().join("b.json"),
            json!({"name": "b", "veth": {"peer_if_name": "a"}}),
        );
        std::fs::write(dir.path().join("README"), "not json").unwrap();
        std::fs::write(dir.path().join(".hidden.json"), "{").unwrap();
        let tree = KeyTree::new("vpp1");
        let files = collect(&[dir.path().to_path_buf()]).unwrap();
        assert_eq!(files.len(), 2, "{files:?}");
        let loaded = load(&tree, &files).unwrap();
        let names: Vec<_> = loaded.iter().map(|l| (l.kind, l.name.as_str())).collect();
        assert_eq!(
            names,
            [(ItemKind::Interface, "b"), (ItemKind::Interface, "a")]
        );

        write(
            &dir.path().join("c.json"),
            json!({"name": "a", "veth": {"peer_if_name": "b"}}),
        );
        write(
            &dir.path().join("d.json"),
            json!({"name": "t", "type": "AUTO_TAP", "veth": {"peer_if_name": "u"}}),
        );
        write(&dir.path().join("e.json"), json!({"veth": {}}));
        write(
            &dir.path().join("f.json"),
            json!({"name": "f", "veth": {}, "mtu": "big"}),
        );
        let errors = load(&tree, &collect(&[dir.path().to_path_buf()]).unwrap()).unwrap_err();
        assert_eq!(errors.len(), 4, "{errors:#?}");
        assert!(
            errors[0].contains("d.json")
                && errors[0].contains("field `veth.peer_if_name`: is set but `type` is AUTO_TAP"),
            "{errors:#?}"
        );
        assert!(errors[1].contains("e.json: the value has no `name`"));
        assert!(
            errors[2].contains("f.json") && errors[2].contains("interface/f: field `mtu`"),
            "{errors:#?}"
        );
        assert!(
            errors[3].contains("interface/a.json: interface/a is also in")
                && errors[3].contains("c.json"),
            "{errors:#?}"
        );
    }
}
