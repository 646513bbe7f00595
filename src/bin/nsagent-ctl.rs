//! `nsagent-ctl`: reads and writes nsagent configuration in etcd, and shows what the agent
//! made of it.
//!
//! Keys are short (`interface/veth1`, taken relative to `/vnf-agent/<label>/linux/config/v1/`)
//! or full keys inside the agent's own tree (`/vnf-agent/<label>/...`); other keys need
//! `--any-key`, and a prefix delete beyond the agent's tree also `--yes-delete-all`. Values
//! written under the configuration tree are validated with the agent's own rules first.
//! Exit code 0 on success, 1 on any error (one line on stderr); a closed stdout (`| head`)
//! ends the program quietly.

use anyhow::{anyhow, bail, Context};
use clap::{Parser, Subcommand};
use etcd_client::{Client, DeleteOptions, GetOptions};
use nsagent::ctl::progress::Progress;
use nsagent::ctl::view::{self, AgentView, NotApplied};
use nsagent::ctl::{files, scope, txn};
use nsagent::keys::KeyTree;
use nsagent::{graph, model, store};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Longest wait for the answer to one etcd request.
const ETCD_TIMEOUT: Duration = Duration::from_secs(10);

/// A ready configuration from `examples/config/<name>/`.
struct Example {
    /// Directory name.
    name: &'static str,
    /// First line of its README.
    description: &'static str,
    /// (short key, JSON value) pairs.
    items: &'static [(&'static str, &'static str)],
}

include!(concat!(env!("OUT_DIR"), "/examples.rs"));

/// Writes one line to stdout; a write error (such as a closed pipe) is returned.
macro_rules! outln {
    ($($arg:tt)*) => {
        writeln!(std::io::stdout().lock(), $($arg)*)?
    };
}

#[derive(Parser)]
#[command(
    name = "nsagent-ctl",
    version,
    about = "Reads and writes nsagent configuration in etcd, and shows what the agent made of it"
)]
struct Cli {
    /// How to reach etcd.
    #[command(flatten)]
    etcd: store::EtcdArgs,
    /// Microservice label of the agent; short keys are taken relative to its config prefix.
    #[arg(
        long,
        env = "MICROSERVICE_LABEL",
        default_value = "vpp1",
        global = true
    )]
    label: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write a value read from FILE (or stdin for `-`); config values are validated first.
    Put {
        /// Short key (`interface/veth1`) or full key.
        key: String,
        /// JSON file, or `-` for stdin.
        file: String,
        /// Write even if the value does not validate.
        #[arg(long)]
        force: bool,
        /// Allow a key outside the agent's tree /vnf-agent/<label>/.
        #[arg(long)]
        any_key: bool,
    },
    /// Print the raw value of a key.
    Get {
        /// Short key or full key.
        key: String,
        /// Allow a key outside the agent's tree /vnf-agent/<label>/.
        #[arg(long)]
        any_key: bool,
    },
    /// Delete one key (or, with --prefix, every key under it); fails when nothing matched.
    Del {
        /// Short key or full key.
        key: String,
        /// Delete every key starting with KEY.
        #[arg(long)]
        prefix: bool,
        /// Allow a key outside the agent's tree /vnf-agent/<label>/.
        #[arg(long)]
        any_key: bool,
        /// Confirm a --prefix delete that reaches beyond the agent's tree (such as `/`).
        #[arg(long)]
        yes_delete_all: bool,
    },
    /// List keys under PREFIX (default: the agent's config prefix).
    List {
        /// Short or full key prefix.
        prefix: Option<String>,
        /// Print values too (each after its key, followed by a blank line).
        #[arg(long)]
        values: bool,
        /// Allow a prefix outside the agent's tree /vnf-agent/<label>/.
        #[arg(long)]
        any_key: bool,
    },
    /// Show what the agent reports for each configured item: state (applied, pending,
    /// failed, invalid) and why; NAME limits it to items of that name (`veth1` or
    /// `interface/veth1`).
    Status {
        /// Item name or short key.
        name: Option<String>,
        /// Print a JSON array of {"key", "kind", "name", "state", "detail", "since"}.
        #[arg(long)]
        json: bool,
    },
    /// Wait until the named items (every configured item when none is named) are applied;
    /// at the timeout, print those that are not and fail.
    Wait {
        /// Item names or short keys (`veth1`, `route/r1`).
        names: Vec<String>,
        /// Seconds to wait.
        #[arg(long, default_value_t = 30)]
        timeout: u64,
    },
    /// Validate files or directories of JSON values (kind from the folder interface/,
    /// route/, arp/ or from the value), write all of them, and show progress until they are
    /// applied.
    Apply {
        /// Files, or directories searched for *.json files.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Do not wait for the agent to apply them.
        #[arg(long)]
        no_wait: bool,
        /// Seconds to wait for them to be applied.
        #[arg(long, default_value_t = 30)]
        timeout: u64,
    },
    /// Print the configuration and its state as a Graphviz DOT graph.
    Graph {
        /// Print SVG rendered by Graphviz `dot` instead.
        #[arg(long)]
        svg: bool,
    },
    /// List the ready configurations, print one, or write one in a single transaction.
    Example {
        /// Name of the example.
        name: Option<String>,
        /// Write all its keys at once (only examples the agent accepts).
        #[arg(long, requires = "name")]
        put: bool,
    },
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("nsagent-ctl: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// True when the error is a write to a closed stdout (`nsagent-ctl list | head -1`).
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let tree = KeyTree::new(&cli.label);
    let etcd = cli.etcd.resolve(None, store::EtcdOptions::default())?;
    if let Some(warning) = &etcd.warning {
        eprintln!("nsagent-ctl: warning: {warning}");
    }
    let settings = etcd.settings;
    match cli.command {
        Command::Put {
            key,
            file,
            force,
            any_key,
        } => {
            let key = scope::resolve(&tree, &key, any_key).map_err(|e| anyhow!(e))?;
            let value = read_input(&file)?;
            check_value(&tree, &key, &value, force)?;
            let mut etcd = store::connect(&settings).await?.client;
            timed(etcd.put(key, value, None)).await?;
            outln!("OK");
        }
        Command::Get { key, any_key } => {
            let key = scope::resolve(&tree, &key, any_key).map_err(|e| anyhow!(e))?;
            let mut etcd = store::connect(&settings).await?.client;
            let resp = timed(etcd.get(key.as_str(), None)).await?;
            let kv = resp
                .kvs()
                .first()
                .ok_or_else(|| anyhow!("{key}: not found"))?;
            print_value(kv.value())?;
        }
        Command::Del {
            key,
            prefix,
            any_key,
            yes_delete_all,
        } => {
            if prefix {
                let wide = any_key && yes_delete_all;
                scope::check_prefix_delete(&tree, &tree.expand(&key), wide)
                    .map_err(|e| anyhow!(e))?;
            }
            let key = scope::resolve(&tree, &key, any_key).map_err(|e| anyhow!(e))?;
            let options = prefix.then(|| DeleteOptions::new().with_prefix());
            let mut etcd = store::connect(&settings).await?.client;
            let resp = timed(etcd.delete(key.as_str(), options)).await?;
            match (resp.deleted(), prefix) {
                (0, false) => bail!("{key}: not found, nothing deleted"),
                (0, true) => bail!("no key starts with {key}, nothing deleted"),
                (n, _) => outln!("deleted {n}"),
            }
        }
        Command::List {
            prefix,
            values,
            any_key,
        } => {
            let prefix = match prefix {
                Some(p) => scope::resolve(&tree, &p, any_key).map_err(|e| anyhow!(e))?,
                None => tree.config_prefix(),
            };
            let options = GetOptions::new().with_prefix();
            let options = if values {
                options
            } else {
                options.with_keys_only()
            };
            let mut etcd = store::connect(&settings).await?.client;
            let resp = timed(etcd.get(prefix, Some(options))).await?;
            for kv in resp.kvs() {
                outln!("{}", String::from_utf8_lossy(kv.key()));
                if values {
                    print_value(kv.value())?;
                    outln!();
                }
            }
        }
        Command::Status { name, json } => {
            let mut etcd = store::connect(&settings).await?.client;
            let (view, _) = within(view::read(&mut etcd, &tree)).await?;
            status(&view, name.as_deref(), json)?;
        }
        Command::Wait { names, timeout } => {
            let mut etcd = store::connect(&settings).await?.client;
            let timeout = Duration::from_secs(timeout);
            wait_applied(&mut etcd, &tree, &names, timeout, None).await?;
        }
        Command::Apply {
            paths,
            no_wait,
            timeout,
        } => {
            let loaded = load_files(&tree, &paths)?;
            let kvs: Vec<(String, Vec<u8>)> = loaded
                .iter()
                .map(|l| (tree.key(l.kind, &l.name), l.value.clone()))
                .collect();
            let mut etcd = store::connect(&settings).await?.client;
            let transactions = within(txn::put_all(&mut etcd, &kvs)).await?;
            outln!(
                "wrote {} keys in {transactions} transaction{}",
                kvs.len(),
                if transactions == 1 { "" } else { "s" }
            );
            if !no_wait {
                let names: Vec<String> = loaded
                    .iter()
                    .map(|l| format!("{}/{}", l.kind, l.name))
                    .collect();
                let timeout = Duration::from_secs(timeout);
                let mut progress = Progress::new();
                wait_applied(&mut etcd, &tree, &names, timeout, Some(&mut progress)).await?;
            }
        }
        Command::Graph { svg } => {
            let mut etcd = store::connect(&settings).await?.client;
            let (view, _) = within(view::read(&mut etcd, &tree)).await?;
            let dot = graph::to_dot(&view.graph_items());
            if svg {
                let svg = graph::svg(&dot).await?;
                std::io::stdout().lock().write_all(&svg)?;
            } else {
                std::io::stdout().lock().write_all(dot.as_bytes())?;
            }
        }
        Command::Example { name: None, .. } => {
            let width = EXAMPLES.iter().map(|e| e.name.len()).max().unwrap_or(0);
            for e in EXAMPLES {
                match refusal(&tree, e) {
                    None => outln!("{:width$}  {}", e.name, e.description),
                    Some(why) => outln!(
                        "{:width$}  (not accepted by the agent: {why}) {}",
                        e.name,
                        e.description
                    ),
                }
            }
        }
        Command::Example {
            name: Some(name),
            put,
        } => {
            let example = find_example(&name)?;
            let items: Vec<(String, Vec<u8>)> = example
                .items
                .iter()
                .map(|(key, value)| (tree.expand(key), value.as_bytes().to_vec()))
                .collect();
            let refused = refusal(&tree, example);
            if !put {
                if let Some(why) = refused {
                    eprintln!("warning: the agent does not accept this example: {why}");
                }
                for (key, value) in &items {
                    outln!("{key}");
                    print_value(value)?;
                }
                return Ok(());
            }
            if let Some(why) = refused {
                bail!("example {name} is not accepted by the agent: {why} (nothing written)");
            }
            let mut etcd = store::connect(&settings).await?.client;
            within(txn::put_all(&mut etcd, &items)).await?;
            for (key, _) in &items {
                outln!("{key}");
            }
            outln!("OK");
        }
    }
    Ok(())
}

/// Prints the status of the items `name` means (every configured item when `None`).
fn status(view: &AgentView, name: Option<&str>, json: bool) -> anyhow::Result<()> {
    if !view.agent_running() {
        bail!(view.not_running());
    }
    let records = match name {
        None => view.records(),
        Some(name) => {
            let ids = view.matching(name);
            if ids.is_empty() {
                bail!("no item named {name} is configured");
            }
            ids.iter().map(|id| view.record(id)).collect()
        }
    };
    if json {
        outln!("{}", serde_json::to_string_pretty(&records)?);
        return Ok(());
    }
    for r in records {
        let short = format!("{}/{}", r.kind, r.name);
        match r.detail.as_str() {
            "" => outln!("{short:30} {}", r.state),
            detail => outln!("{short:30} {:8} {detail}", r.state),
        }
    }
    Ok(())
}

/// Waits until the items `names` mean (every configured item when empty) are applied by a
/// running agent, showing `progress` if given (and finishing it); at `timeout`, prints those
/// that are not and fails.
async fn wait_applied(
    etcd: &mut Client,
    tree: &KeyTree,
    names: &[String],
    timeout: Duration,
    mut progress: Option<&mut Progress>,
) -> anyhow::Result<()> {
    let (mut view, revision) = within(view::read(etcd, tree)).await?;
    let mut check = |view: &AgentView| {
        let (not, total) = view.not_applied(names);
        if let Some(p) = progress.as_deref_mut() {
            let _ = p.update(total - not.len(), total);
        }
        view.agent_running() && not.is_empty()
    };
    let done = check(&view)
        || match tokio::time::timeout(
            timeout,
            view::follow(etcd, &mut view, revision + 1, &mut check),
        )
        .await
        {
            Ok(followed) => followed.map(|()| true)?,
            Err(_) => false,
        };
    if let Some(p) = progress {
        p.finish();
    }
    let (not, total) = view.not_applied(names);
    if done {
        outln!("applied: {total} item{}", if total == 1 { "" } else { "s" });
        return Ok(());
    }
    print_not_applied(&not)?;
    let secs = timeout.as_secs();
    if !view.agent_running() {
        bail!("timed out after {secs} s: {}", view.not_running());
    }
    bail!(
        "timed out after {secs} s: {} of {total} items are not applied",
        not.len()
    )
}

fn print_not_applied(not: &[NotApplied]) -> anyhow::Result<()> {
    for n in not {
        match n.detail.as_str() {
            "" => outln!("{:30} {}", n.what, n.state),
            detail => outln!("{:30} {:8} {detail}", n.what, n.state),
        }
    }
    Ok(())
}

/// Reads and validates every file of `paths`; refuses the whole set on any problem.
fn load_files(tree: &KeyTree, paths: &[PathBuf]) -> anyhow::Result<Vec<files::Loaded>> {
    let found = files::collect(paths).map_err(|e| anyhow!(e))?;
    if found.is_empty() {
        bail!("no JSON files found in the paths given");
    }
    files::load(tree, &found).map_err(|errors| {
        for e in &errors {
            eprintln!("{e}");
        }
        anyhow!(
            "nothing written: {} problem{} in {} files",
            errors.len(),
            if errors.len() == 1 { "" } else { "s" },
            found.len()
        )
    })
}

/// Why the agent would refuse an example (its first refused value), if it would.
fn refusal(tree: &KeyTree, example: &Example) -> Option<String> {
    example.items.iter().find_map(|(key, value)| {
        let key = tree.expand(key);
        let (kind, _) = tree.parse(&key)?;
        model::accept_value(kind, &key, value.as_bytes())
            .err()
            .map(|e| e.message)
    })
}

/// Awaits one etcd request for at most [`ETCD_TIMEOUT`].
async fn timed<T>(
    request: impl std::future::Future<Output = Result<T, etcd_client::Error>>,
) -> anyhow::Result<T> {
    within(async { request.await.context("etcd request failed") }).await
}

/// Awaits etcd work for at most [`ETCD_TIMEOUT`].
async fn within<T>(
    work: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    tokio::time::timeout(ETCD_TIMEOUT, work)
        .await
        .map_err(|_| anyhow!("etcd did not answer within {ETCD_TIMEOUT:?}"))?
}

/// Reads a file, or stdin for `-`.
fn read_input(file: &str) -> anyhow::Result<Vec<u8>> {
    let mut value = Vec::new();
    if file == "-" {
        std::io::stdin()
            .read_to_end(&mut value)
            .context("cannot read stdin")?;
    } else {
        value = std::fs::read(file).with_context(|| format!("cannot read {file}"))?;
    }
    Ok(value)
}

/// Validates a value for `key` with the agent's rules when `key` is a configuration item
/// (refusing malformed item keys); warns about keys outside the configuration tree. With
/// `force`, a value the agent refuses is only a warning.
fn check_value(tree: &KeyTree, key: &str, value: &[u8], force: bool) -> anyhow::Result<()> {
    if !scope::is_item_key(tree, key).map_err(|e| anyhow!("{e} (nothing written)"))? {
        eprintln!(
            "warning: {key} is not an interface, arp or route key under {}; writing it unchecked",
            tree.config_prefix()
        );
        return Ok(());
    }
    let (kind, _) = tree.parse(key).expect("an item key");
    let problem = match serde_json::from_slice::<serde_json::Value>(value) {
        Err(e) => format!("{key}: not valid JSON: {e}"),
        Ok(_) => match model::accept_value(kind, key, value) {
            Ok(_) => return Ok(()),
            Err(e) => e.to_string(),
        },
    };
    if !force {
        bail!("{problem} (nothing written; --force writes it anyway)");
    }
    eprintln!("warning: {problem}; writing it anyway (--force)");
    Ok(())
}

/// Prints a value, ending it with a newline if it has none.
fn print_value(value: &[u8]) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(value)?;
    if !value.ends_with(b"\n") {
        out.write_all(b"\n")?;
    }
    Ok(())
}

fn find_example(name: &str) -> anyhow::Result<&'static Example> {
    EXAMPLES.iter().find(|e| e.name == name).ok_or_else(|| {
        let known: Vec<&str> = EXAMPLES.iter().map(|e| e.name).collect();
        anyhow!("unknown example {name} (known: {})", known.join(", "))
    })
}
