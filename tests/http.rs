//! The agent's HTTP API over real HTTP: the `nsagent` binary with `--http-listen` on a free
//! port, a real etcd (behind a proxy that can cut it), real namespaces and links.

mod agent_support;
mod common;
mod docker_support;

use agent_support::*;
use common::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::Duration;

/// An HTTP answer: status code, content type, body.
#[derive(Debug)]
struct Answer {
    code: u16,
    content_type: String,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        assert!(
            self.content_type.starts_with("application/json"),
            "{self:?}"
        );
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

async fn request(method: reqwest::Method, url: &str) -> Result<Answer, reqwest::Error> {
    let response = reqwest::Client::new()
        .request(method, url)
        .timeout(Duration::from_secs(30))
        .send()
        .await?;
    let code = response.status().as_u16();
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    Ok(Answer {
        code,
        content_type,
        body: response.text().await?,
    })
}

/// The base URL of an API on a free loopback port.
struct Api {
    base: String,
}

impl Api {
    fn new() -> Api {
        Api {
            base: format!("127.0.0.1:{}", free_port()),
        }
    }

    fn listen(&self) -> &str {
        &self.base
    }

    async fn get(&self, path: &str) -> Answer {
        request(reqwest::Method::GET, &format!("http://{}{path}", self.base))
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    async fn post(&self, path: &str) -> Answer {
        request(
            reqwest::Method::POST,
            &format!("http://{}{path}", self.base),
        )
        .await
        .unwrap_or_else(|e| panic!("POST {path}: {e}"))
    }

    /// Polls `GET path` until `cond` holds; returns that answer.
    async fn wait(&self, path: &str, mut cond: impl FnMut(&Answer) -> bool) -> Answer {
        let url = format!("http://{}{path}", self.base);
        let mut last = None;
        for _ in 0..500 {
            if let Ok(a) = request(reqwest::Method::GET, &url).await {
                if cond(&a) {
                    return a;
                }
                last = Some(a);
            }
            tokio::time::sleep(Duration::from_millis(40)).await;
        }
        panic!("GET {path} never matched; last answer {last:?}");
    }

    async fn metrics(&self) -> Metrics {
        let a = self.get("/metrics").await;
        assert_eq!(a.code, 200);
        assert!(a.content_type.starts_with("text/plain"), "{a:?}");
        Metrics::parse(&a.body)
    }
}

/// A parsed Prometheus text exposition: series (`name{labels}` as printed) to value, and
/// the declared type of every family.
struct Metrics {
    samples: BTreeMap<String, f64>,
    types: BTreeMap<String, String>,
    text: String,
}

impl Metrics {
    /// Parses the text, checking that every line is a comment or `series value`.
    fn parse(text: &str) -> Metrics {
        let mut samples = BTreeMap::new();
        let mut types = BTreeMap::new();
        for line in text.lines().filter(|l| !l.is_empty()) {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').expect("TYPE line");
                types.insert(name.to_string(), kind.to_string());
                continue;
            }
            if line.starts_with('#') {
                continue;
            }
            let (series, value) = line
                .rsplit_once(' ')
                .unwrap_or_else(|| panic!("bad sample line {line:?}"));
            let name_end = series.find('{').unwrap_or(series.len());
            let name = &series[..name_end];
            assert!(
                !name.is_empty()
                    && name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
                "bad metric name in {line:?}"
            );
            assert!(
                name_end == series.len() || series.ends_with('}'),
                "bad labels in {line:?}"
            );
            let value: f64 = match value {
                "+Inf" => f64::INFINITY,
                v => v
                    .parse()
                    .unwrap_or_else(|_| panic!("bad value in {line:?}")),
            };
            samples.insert(series.to_string(), value);
        }
        Metrics {
            samples,
            types,
            text: text.to_string(),
        }
    }

    fn get(&self, series: &str) -> f64 {
        *self
            .samples
            .get(series)
            .unwrap_or_else(|| panic!("no {series} in\n{}", self.text))
    }

    fn kind(&self, family: &str) -> &str {
        self.types
            .get(family)
            .unwrap_or_else(|| panic!("no TYPE of {family} in\n{}", self.text))
    }
}

fn veth(name: &str, host: &str, peer: &str, ns: &str, address: &str) -> String {
    veth_json(
        name,
        host,
        peer,
        json!({"type": "NAMED_NS", "name": ns}),
        &[address],
    )
}

/// The kernel reports every step of the agent's own writes (a pair is created down and
/// without alias, then configured); those echoes must not be taken for changes behind its
/// back, which would make it read the namespaces again (and plan in full) after every write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_writes_are_not_read_back_as_changes() {
    let Some(env) = TestEnv::new("hw") else {
        return;
    };
    let (nsx, nsy) = (env.ns("x"), env.ns("y"));
    let api = Api::new();
    let _agent = AgentProcess::start(
        &env.etcd.endpoint(),
        &env.label,
        &[
            "--http-listen",
            api.listen(),
            "--kernel-resync-interval-s",
            "0",
        ],
    );
    api.wait("/readyz", |a| a.code == 200).await;
    let reads = |m: &Metrics| m.get(r#"nsagent_operations_total{op="read_links",result="ok"}"#);
    let pair = |i: usize| {
        let (a, b) = (format!("a{i}"), format!("b{i}"));
        let (ha, hb) = (env.host(&a), env.host(&b));
        let va = veth(&a, &ha, &b, &nsx, &format!("10.232.{i}.1/24"));
        let vb = veth(&b, &hb, &a, &nsy, &format!("10.232.{i}.2/24"));
        ((a, ha, va), (b, hb, vb))
    };
    // The first pair makes the agent read both namespaces.
    let mut before = None;
    const PAIRS: usize = 10;
    for i in 0..PAIRS {
        let ((a, _, va), (b, _, vb)) = pair(i);
        env.put("interface", &a, va).await;
        env.put("interface", &b, vb).await;
        env.wait_status("interface", &a, "applied", "").await;
        env.wait_status("interface", &b, "applied", "").await;
        if i == 0 {
            before = Some(reads(&api.metrics().await));
        }
    }
    for i in 0..PAIRS {
        let ((a, ha, _), (b, hb, _)) = pair(i);
        env.del("interface", &a).await;
        env.del("interface", &b).await;
        wait_for("the pair gone", || {
            (link(Some(&nsx), &ha).is_none() && link(Some(&nsy), &hb).is_none()).then_some(())
        })
        .await;
    }
    // Let the last echoes arrive.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let extra = reads(&api.metrics().await) - before.unwrap();
    // Without echo handling every create and delete reads both namespaces again (about 40
    // reads). The agent takes a namespace's events together with all the kernel has queued
    // until then, so it never sees one of its own writes half-way.
    assert!(
        extra == 0.0,
        "{extra} namespace reads after {PAIRS} pairs made and deleted"
    );
}

/// Every endpoint against a running agent: readiness before and after etcd is reachable,
/// statuses, the graph (DOT and SVG), the metrics, and a resync that repairs what was changed
/// behind the agent's back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_over_real_http() {
    let Some(env) = TestEnv::new("h") else { return };
    let (nsx, nsy) = (env.ns("x"), env.ns("y"));
    let proxy = TcpProxy::new(&env.etcd.endpoint());
    proxy.cut();
    let api = Api::new();
    let no_docker = tempfile::tempdir().unwrap();
    let docker_host = format!("unix://{}/none.sock", no_docker.path().display());
    // etcd is unreachable at start: only a delayed start keeps the agent up.
    let etcd_file = no_docker.path().join("etcd.conf");
    std::fs::write(&etcd_file, "allow-delayed-start: true\n").unwrap();
    let _agent = AgentProcess::start(
        &proxy.endpoint(),
        &env.label,
        &[
            "--http-listen",
            api.listen(),
            "--kernel-resync-interval-s",
            "0",
            "--docker-host",
            &docker_host,
            "--etcd-config",
            etcd_file.to_str().unwrap(),
        ],
    );

    // Alive without etcd; not ready, saying why.
    let live = api.wait("/healthz", |a| a.code == 200).await;
    assert_eq!(live.json()["status"], "ok");
    assert_eq!(api.get("/liveness").await.code, 200);
    let not_ready = api.get("/readyz").await;
    assert_eq!(not_ready.code, 503, "{not_ready:?}");
    assert_eq!(not_ready.json()["ready"], false);
    assert!(
        not_ready.json()["reason"]
            .as_str()
            .unwrap()
            .contains("etcd"),
        "{not_ready:?}"
    );
    assert_eq!(api.get("/readiness").await.code, 503);
    let early = api.post("/resync").await;
    assert_eq!(early.code, 503, "{early:?}");

    proxy.restore();
    let ready = api.wait("/readyz", |a| a.code == 200).await;
    assert_eq!(ready.json(), json!({"ready": true}));
    assert_eq!(api.get("/readiness").await.code, 200);

    let (h1, h2) = (env.host("1"), env.host("2"));
    env.put(
        "interface",
        "e1",
        veth("e1", &h1, "e2", &nsx, "10.230.0.1/24"),
    )
    .await;
    env.put(
        "interface",
        "e2",
        veth("e2", &h2, "e1", &nsy, "10.230.0.2/24"),
    )
    .await;
    let route = json!({"name": "r1", "namespace": {"type": "NAMED_NS", "name": nsx},
        "interface": "e1", "dst_ip_addr": "10.231.0.0/24", "gw_addr": "10.230.0.2"});
    env.put("route", "r1", route.to_string()).await;
    for (kind, name) in [("interface", "e1"), ("interface", "e2"), ("route", "r1")] {
        env.wait_status(kind, name, "applied", "").await;
    }

    // GET /status and its filter.
    let all = api.get("/status").await.json();
    let all = all.as_array().expect("array");
    assert_eq!(all.len(), 3, "{all:?}");
    let e1 = all.iter().find(|s| s["name"] == "e1").expect("e1");
    assert_eq!(e1["key"], env.key("interface", "e1"));
    assert_eq!(e1["kind"], "interface");
    assert_eq!(e1["state"], "applied");
    assert_eq!(e1["detail"], "");
    let since = e1["since"].as_str().expect("since");
    assert!(since.ends_with('Z') && since.contains('T'), "{since}");
    let applied = api.get("/status?state=applied").await.json();
    assert_eq!(applied.as_array().unwrap().len(), 3);
    let pending = api.get("/status?state=pending").await.json();
    assert_eq!(pending, json!([]));
    assert_eq!(api.get("/status?state=bogus").await.code, 400);

    // GET /status/{kind}/{name}.
    let one = api.get("/status/route/r1").await;
    assert_eq!(one.code, 200);
    assert_eq!(one.json()["key"], env.key("route", "r1"));
    assert_eq!(one.json()["state"], "applied");
    for missing in ["/status/interface/nope", "/status/bogus/e1"] {
        let a = api.get(missing).await;
        assert_eq!(a.code, 404, "{a:?}");
        assert!(a.json()["error"].is_string());
    }

    // GET /graph: DOT, and SVG through Graphviz.
    let graph = api.get("/graph").await;
    assert_eq!(graph.code, 200);
    assert!(
        graph.content_type.starts_with("text/vnd.graphviz"),
        "{graph:?}"
    );
    for line in [
        "digraph nsagent {",
        r#""interface/e1" -> "interface/e2" [label="peer"];"#,
        r#""route/r1" -> "interface/e1" [label="interface"];"#,
        r#"[label="gateway"];"#,
        &format!(r#""interface/e1" -> "namespace:named namespace {nsx}" [label="namespace"];"#),
        r#"fillcolor="palegreen", label="route/r1\napplied"]"#,
    ] {
        assert!(graph.body.contains(line), "no {line} in\n{}", graph.body);
    }
    let svg = api.get("/graph?format=svg").await;
    if graphviz_installed() {
        assert_eq!(svg.code, 200, "{svg:?}");
        assert_eq!(svg.content_type, "image/svg+xml");
        assert!(svg.body.contains("<svg") && svg.body.contains("interface/e1"));
    } else {
        assert_eq!(svg.code, 501, "{svg:?}");
    }
    assert_eq!(api.get("/graph?format=png").await.code, 400);

    // GET /metrics.
    let m = api.metrics().await;
    assert_eq!(m.kind("nsagent_items"), "gauge");
    assert_eq!(
        m.get(r#"nsagent_items{kind="interface",state="applied"}"#),
        2.0
    );
    assert_eq!(m.get(r#"nsagent_items{kind="route",state="applied"}"#), 1.0);
    assert_eq!(
        m.get(r#"nsagent_items{kind="interface",state="pending"}"#),
        0.0
    );
    assert_eq!(m.kind("nsagent_operations_total"), "counter");
    assert!(m.get(r#"nsagent_operations_total{op="create_pair",result="ok"}"#) >= 1.0);
    assert!(m.get(r#"nsagent_operations_total{op="add_route",result="ok"}"#) >= 1.0);
    assert_eq!(m.kind("nsagent_apply_latency_seconds"), "histogram");
    let count = m.get("nsagent_apply_latency_seconds_count");
    assert!(count >= 3.0, "one latency per put value: {count}");
    let sum = m.get("nsagent_apply_latency_seconds_sum");
    assert!(sum > 0.0 && sum < 60.0 * count, "{sum}");
    assert_eq!(
        m.get(r#"nsagent_apply_latency_seconds_bucket{le="+Inf"}"#),
        count
    );
    assert_eq!(m.get("nsagent_etcd_connected"), 1.0);
    assert_eq!(
        m.get("nsagent_docker_connected"),
        0.0,
        "no engine at the socket"
    );
    assert_eq!(m.kind("nsagent_resyncs_total"), "counter");
    let resyncs = m.get("nsagent_resyncs_total");
    assert!(resyncs >= 1.0, "the etcd snapshot at start is a resync");
    assert_eq!(m.kind("nsagent_kernel_repairs_total"), "counter");
    assert_eq!(
        m.get(r#"nsagent_kernel_repairs_total{kind="interface"}"#),
        0.0
    );
    let build = format!(
        r#"nsagent_build_info{{version="{}"}}"#,
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(m.get(&build), 1.0);

    // POST /resync: nothing to do, then repairs of what was changed by hand.
    let quiet = api.post("/resync").await;
    assert_eq!(quiet.code, 200, "{quiet:?}");
    assert_eq!(
        quiet.json(),
        json!({"created": 0, "updated": 0, "deleted": 0})
    );
    // Changed by hand: repaired from the kernel's events (issue 10), counted as repairs; a
    // re-read afterwards finds nothing left to do.
    ip(&["-n", &nsx, "link", "set", &h1, "mtu", "1280"]);
    ip(&["-n", &nsx, "route", "del", "10.231.0.0/24"]);
    wait_for("the MTU set back and the route re-added", || {
        let mtu_back = link(Some(&nsx), &h1).is_some_and(|l| l.mtu == 1500);
        let route_back =
            ip(&["-n", &nsx, "route", "show", "10.231.0.0/24"]).contains("via 10.230.0.2");
        (mtu_back && route_back).then_some(())
    })
    .await;
    let repaired = api.post("/resync").await;
    assert_eq!(
        repaired.json(),
        json!({"created": 0, "updated": 0, "deleted": 0}),
        "nothing left for the re-read"
    );
    let after = api.metrics().await;
    assert!(after.get(r#"nsagent_kernel_repairs_total{kind="interface"}"#) >= 1.0);
    assert!(after.get(r#"nsagent_kernel_repairs_total{kind="route"}"#) >= 1.0);
    assert_eq!(after.get("nsagent_resyncs_total"), resyncs + 2.0);
    assert!(
        after.get(r#"nsagent_operations_total{op="update_link",result="ok"}"#) >= 1.0,
        "{}",
        after.text
    );

    // Unknown paths and methods.
    let nowhere = api.get("/nowhere").await;
    assert_eq!(nowhere.code, 404);
    assert!(nowhere.json()["error"]
        .as_str()
        .unwrap()
        .contains("/healthz"));
    assert_eq!(api.get("/resync").await.code, 405);
}

/// `GET /graph?format=svg` without Graphviz on the agent's PATH says so (501, JSON).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn svg_without_graphviz_says_it_is_not_installed() {
    let Some(etcd) = require_etcd() else { return };
    let api = Api::new();
    let label = format!("test-{}", unique_prefix("g"));
    let empty = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_nsagent"))
        .args(["--etcd-endpoints", &etcd.endpoint(), "--label", &label])
        .args(["--http-listen", api.listen()])
        .env("PATH", empty.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nsagent");
    api.wait("/readyz", |a| a.code == 200).await;
    let svg = api.get("/graph?format=svg").await;
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(svg.code, 501, "{svg:?}");
    let error = svg.json()["error"].as_str().unwrap().to_string();
    assert!(error.contains("Graphviz is not installed"), "{error}");
}

/// Runs `nsagent ARGS` with `env` set, expecting it to exit within seconds; returns (code,
/// stderr).
fn start_fails(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_nsagent"));
    cmd.args(args)
        .env_remove("NSAGENT_HTTP_LISTEN")
        // A backtrace would follow the one-line error.
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("nsagent");
    let exited = wait_until(Duration::from_secs(10), Duration::from_millis(20), || {
        matches!(child.try_wait(), Ok(Some(_)))
    });
    if !exited {
        let _ = child.kill();
    }
    let out = child.wait_with_output().expect("nsagent");
    assert!(exited, "nsagent {args:?} kept running");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_or_busy_listen_addresses_stop_the_start_with_one_line() {
    let (code, stderr) = start_fails(&["--http-listen", "nonsense"], &[]);
    assert_ne!(code, Some(0));
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("--http-listen \"nonsense\""), "{stderr}");

    let (code, stderr) = start_fails(&[], &[("NSAGENT_HTTP_LISTEN", "1.2.3.4")]);
    assert_ne!(code, Some(0));
    assert!(stderr.contains("expected IP:PORT"), "{stderr}");

    if !require_root() {
        return;
    }
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = busy.local_addr().unwrap().to_string();
    let label = format!("test-{}", unique_prefix("b"));
    let (code, stderr) = start_fails(
        &[
            "--http-listen",
            &address,
            "--label",
            &label,
            "--etcd-endpoints",
            "127.0.0.1:9",
        ],
        &[("RUST_LOG", "off")],
    );
    assert_ne!(code, Some(0));
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains(&format!("cannot listen on {address} (--http-listen)")),
        "{stderr}"
    );
}

/// `--http-listen off` wins over the environment and starts no server; the environment
/// alone starts one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn off_disables_the_server_and_the_environment_enables_it() {
    let Some(etcd) = require_etcd() else { return };
    let api = Api::new();
    let label = format!("test-{}", unique_prefix("o"));
    let spawn = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_nsagent"))
            .args(["--etcd-endpoints", &etcd.endpoint(), "--label", &label])
            .args(extra)
            .env("NSAGENT_HTTP_LISTEN", api.listen())
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("nsagent")
    };
    let mut off = spawn(&["--http-listen", "off"]);
    // The agent is up once it logs that it watches etcd.
    let stderr = off.stderr.take().unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stderr));
    let started = tokio::task::block_in_place(|| {
        lines.any(|l| l.is_ok_and(|l| l.contains("nsagent started")))
    });
    assert!(started, "the agent did not start");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let refused = request(
        reqwest::Method::GET,
        &format!("http://{}/healthz", api.listen()),
    )
    .await;
    let _ = off.kill();
    let _ = off.wait();
    assert!(refused.is_err(), "something answered: {refused:?}");

    let mut on = spawn(&[]);
    let answer = api.wait("/healthz", |a| a.code == 200).await;
    let _ = on.kill();
    let _ = on.wait();
    assert_eq!(answer.json()["status"], "ok");
}

/// `nsagent_docker_connected` follows the Docker tracker: 1 once it has a session with the
/// engine named by `DOCKER_HOST`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_connected_follows_a_real_engine() {
    let Some(docker) = docker_support::require_docker() else {
        return;
    };
    let Some(etcd) = require_etcd() else { return };
    let api = Api::new();
    let label = format!("test-{}", unique_prefix("d"));
    let _agent = AgentProcess::start(
        &etcd.endpoint(),
        &label,
        &[
            "--http-listen",
            api.listen(),
            "--docker-host",
            docker.host(),
        ],
    );
    let up = api
        .wait("/metrics", |a| {
            a.code == 200 && Metrics::parse(&a.body).get("nsagent_docker_connected") == 1.0
        })
        .await;
    assert!(up.body.contains("nsagent_docker_connected 1"));
}
