//! Embeds the ready configurations of `examples/config/` into `nsagent-ctl`.
//!
//! Every directory `examples/config/<example>/` holds a one-line `README` and files
//! `<kind>-<name>.json`, each the value of the short key `<kind>/<name>`. Generates
//! `$OUT_DIR/examples.rs` with `EXAMPLES: &[Example]`, sorted by name.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

const DIR: &str = "examples/config";
const KINDS: [&str; 3] = ["interface", "arp", "route"];

fn main() {
    println!("cargo:rerun-if-changed={DIR}");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join(DIR);
    let mut code = String::from(
        "/// The ready configurations, sorted by name.\nconst EXAMPLES: &[Example] = &[\n",
    );
    for dir in sorted_entries(&root).into_iter().filter(|p| p.is_dir()) {
        let name = file_name(&dir);
        let readme = dir.join("README");
        let description =
            fs::read_to_string(&readme).unwrap_or_else(|e| panic!("{}: {e}", readme.display()));
        let description = description.lines().next().unwrap_or_default().trim();
        writeln!(
            code,
            "    Example {{ name: {name:?}, description: {description:?}, items: &["
        )
        .unwrap();
        for file in sorted_entries(&dir) {
            let file_name = file_name(&file);
            if file_name == "README" || file_name.starts_with('.') {
                continue;
            }
            let key = short_key(&file_name).unwrap_or_else(|| {
                panic!(
                    "{}: expected <kind>-<name>.json with kind one of {KINDS:?}",
                    file.display()
                )
            });
            writeln!(
                code,
                "        ({key:?}, include_str!({:?})),",
                file.display().to_string()
            )
            .unwrap();
        }
        code.push_str("    ] },\n");
    }
    code.push_str("];\n");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR")).join("examples.rs");
    fs::write(&out, code).unwrap_or_else(|e| panic!("{}: {e}", out.display()));
}

/// `interface-veth1.json` -> `interface/veth1`.
fn short_key(file_name: &str) -> Option<String> {
    let (kind, name) = file_name.strip_suffix(".json")?.split_once('-')?;
    (KINDS.contains(&kind) && !name.is_empty()).then(|| format!("{kind}/{name}"))
}

fn sorted_entries(dir: &Path) -> Vec<PathBuf> {
    let entries = fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mut paths: Vec<PathBuf> = entries
        .map(|e| e.expect("directory entry").path())
        .collect();
    paths.sort();
    paths
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned()
}
