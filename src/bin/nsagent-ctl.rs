//! `nsagent-ctl`: reads and writes nsagent configuration in etcd.
//!
//! Keys are full (`/vnf-agent/...`) or short (`interface/veth1`, taken relative to
//! `/vnf-agent/<label>/linux/config/v1/`). Values written under the configuration tree are
//! validated with the agent's own decoder first. Exit code 0 on success, 1 on any error
//! (one line on stderr).

use anyhow::{anyhow, bail, Context};
use clap::{Parser, Subcommand};
use etcd_client::{DeleteOptions, GetOptions, Txn, TxnOp};
use nsagent::keys::KeyTree;
use nsagent::{model, store};
use std::io::{Read, Write};
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

#[derive(Parser)]
#[command(
    name = "nsagent-ctl",
    version,
    about = "Reads and writes nsagent configuration in etcd"
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
        /// Full key or short key (`interface/veth1`).
        key: String,
        /// JSON file, or `-` for stdin.
        file: String,
        /// Write even if the value does not validate.
        #[arg(long)]
        force: bool,
    },
    /// Print the raw value of a key.
    Get {
        /// Full key or short key.
        key: String,
    },
    /// Delete one key (or, with --prefix, every key under it).
    Del {
        /// Full key or short key.
        key: String,
        /// Delete every key starting with KEY.
        #[arg(long)]
        prefix: bool,
    },
    /// List keys under PREFIX (default: the agent's config prefix).
    List {
        /// Full or short key prefix.
        prefix: Option<String>,
        /// Print values too (each after its key, followed by a blank line).
        #[arg(long)]
        values: bool,
    },
    /// Show what the agent reports for each item: state (applied, pending, failed, invalid)
    /// and why; NAME limits it to items of that name (`veth1` or `interface/veth1`).
    Status {
        /// Item name or short key.
        name: Option<String>,
    },
    /// List the ready configurations, print one, or write one in a single transaction.
    Example {
        /// Name of the example.
        name: Option<String>,
        /// Write all its keys at once.
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
        Err(e) => {
            eprintln!("nsagent-ctl: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let tree = KeyTree::new(&cli.label);
    let etcd = cli.etcd.resolve(None, store::EtcdOptions::default())?;
    if let Some(warning) = &etcd.warning {
        eprintln!("nsagent-ctl: warning: {warning}");
    }
    let settings = etcd.settings;
    match cli.command {
        Command::Put { key, file, force } => {
            let key = full_key(&tree, &key)?;
            let value = read_input(&file)?;
            check_value(&tree, &key, &value, force)?;
            let mut etcd = store::connect(&settings).await?.client;
            timed(etcd.put(key, value, None)).await?;
            println!("OK");
        }
        Command::Get { key } => {
            let key = full_key(&tree, &key)?;
            let mut etcd = store::connect(&settings).await?.client;
            let resp = timed(etcd.get(key.as_str(), None)).await?;
            let kv = resp
                .kvs()
                .first()
                .ok_or_else(|| anyhow!("{key}: not found"))?;
            print_value(kv.value())?;
        }
        Command::Del { key, prefix } => {
            let key = full_key(&tree, &key)?;
            let options = prefix.then(|| DeleteOptions::new().with_prefix());
            let mut etcd = store::connect(&settings).await?.client;
            let resp = timed(etcd.delete(key, options)).await?;
            println!("deleted {}", resp.deleted());
        }
        Command::List { prefix, values } => {
            let prefix = match prefix {
                Some(p) => full_key(&tree, &p)?,
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
                println!("{}", String::from_utf8_lossy(kv.key()));
                if values {
                    print_value(kv.value())?;
                    println!();
                }
            }
        }
        Command::Status { name } => {
            let prefix = nsagent::status::status_prefix(&tree);
            let mut etcd = store::connect(&settings).await?.client;
            let resp =
                timed(etcd.get(prefix.as_str(), Some(GetOptions::new().with_prefix()))).await?;
            let mut shown = 0;
            for kv in resp.kvs() {
                let short = String::from_utf8_lossy(kv.key())
                    .trim_start_matches(prefix.as_str())
                    .to_string();
                let wanted = name
                    .as_deref()
                    .is_none_or(|n| short == n || short.rsplit('/').next() == Some(n));
                if !wanted {
                    continue;
                }
                let v: serde_json::Value = serde_json::from_slice(kv.value())
                    .map_err(|e| anyhow!("{short}: unreadable status: {e}"))?;
                let state = v["state"].as_str().unwrap_or("?");
                match v["detail"].as_str().filter(|d| !d.is_empty()) {
                    Some(detail) => println!("{short:30} {state:8} {detail}"),
                    None => println!("{short:30} {state}"),
                }
                shown += 1;
            }
            if shown == 0 {
                bail!(
                    "no status found (is the agent with label {} running?)",
                    tree.label()
                );
            }
        }
        Command::Example { name: None, .. } => {
            let width = EXAMPLES.iter().map(|e| e.name.len()).max().unwrap_or(0);
            for e in EXAMPLES {
                println!("{:width$}  {}", e.name, e.description);
            }
        }
        Command::Example {
            name: Some(name),
            put,
        } => {
            let example = find_example(&name)?;
            let items: Vec<(String, &str)> = example
                .items
                .iter()
                .map(|(key, value)| (tree.expand(key), *value))
                .collect();
            if !put {
                for (key, value) in &items {
                    println!("{key}");
                    print_value(value.as_bytes())?;
                }
                return Ok(());
            }
            let ops: Vec<TxnOp> = items
                .iter()
                .map(|(key, value)| TxnOp::put(key.as_str(), *value, None))
                .collect();
            let mut etcd = store::connect(&settings).await?.client;
            timed(etcd.txn(Txn::new().and_then(ops))).await?;
            for (key, _) in &items {
                println!("{key}");
            }
            println!("OK");
        }
    }
    Ok(())
}

/// Awaits one etcd request for at most [`ETCD_TIMEOUT`].
async fn timed<T>(
    request: impl std::future::Future<Output = Result<T, etcd_client::Error>>,
) -> anyhow::Result<T> {
    tokio::time::timeout(ETCD_TIMEOUT, request)
        .await
        .map_err(|_| anyhow!("etcd did not answer within {ETCD_TIMEOUT:?}"))?
        .context("etcd request failed")
}

/// Expands a short key; refuses an empty one.
fn full_key(tree: &KeyTree, key: &str) -> anyhow::Result<String> {
    if key.is_empty() {
        bail!("empty key");
    }
    Ok(tree.expand(key))
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

/// Validates a value for `key` with the agent's decoder when `key` is a configuration item;
/// warns about keys outside the configuration tree. With `force`, problems are only warnings.
fn check_value(tree: &KeyTree, key: &str, value: &[u8], force: bool) -> anyhow::Result<()> {
    let Some((kind, _)) = tree.parse(key) else {
        eprintln!(
            "warning: {key} is not an interface, arp or route key under {}; writing it unchecked",
            tree.config_prefix()
        );
        return Ok(());
    };
    let problem = match serde_json::from_slice::<serde_json::Value>(value) {
        Err(e) => format!("{key}: not valid JSON: {e}"),
        Ok(_) => match model::decode_value(kind, key, value) {
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
