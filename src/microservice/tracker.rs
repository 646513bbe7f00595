//! Follows Docker's event stream and reports running containers that carry a microservice
//! label, as [`TrackerEvent`]s. Event-driven, no polling.
//!
//! One session: connect and negotiate the API version, subscribe to container events
//! (`start`, `restart`, `die`, `stop`, `kill`, `destroy`), list and inspect the running
//! containers ([`TrackerEvent::Snapshot`]), then handle events one by one. Every event only
//! triggers an inspect of its container, and the tracker reports what the inspect shows:
//! running with a label → [`TrackerEvent::Started`], anything else (stopped, gone, no
//! label) → [`TrackerEvent::Stopped`]. So a `kill` that does not stop a container reports
//! it as still started, and a replayed or late event never reports a stale state.
//!
//! The subscription asks for events `since` one second before it is made. Docker replays
//! its buffered events from then on, so no event between the subscription and the listing
//! is lost, even if the daemon registers the subscription only after the listing. Replayed
//! events are harmless: each one is answered by a fresh inspect.
//!
//! When Docker is unreachable or the connection breaks, the tracker logs one warning, retries
//! with a backoff from 100 ms to 5 s, and starts a new session (with a new snapshot).

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::backoff::Retry;
use bollard::errors::Error as DockerError;
use bollard::models::{ContainerInspectResponse, EventMessage};
use bollard::query_parameters::{EventsOptions, ListContainersOptions};
use bollard::Docker;
use futures::StreamExt;
use tokio::sync::mpsc::{self, UnboundedSender};
use tokio::sync::watch;
use tracing::{debug, info, warn};

use super::registry::{Container, TrackerEvent};

/// The environment variable whose non-empty value is a container's microservice label.
pub const LABEL_ENV: &str = "MICROSERVICE_LABEL";

/// Docker host used when none is given.
pub const DEFAULT_DOCKER_HOST: &str = "unix:///var/run/docker.sock";

/// First retry delay after Docker became unreachable.
pub const RETRY_FIRST: Duration = Duration::from_millis(100);

/// Longest retry delay.
pub const RETRY_MAX: Duration = Duration::from_secs(5);

/// Container events that make the tracker inspect the container.
const EVENTS: [&str; 6] = ["start", "restart", "die", "stop", "kill", "destroy"];

/// How far back the event subscription starts (see the module docs).
const SINCE_MARGIN: Duration = Duration::from_secs(1);

/// Timeout of one Docker request (not of the event stream, which stays open).
const REQUEST_TIMEOUT_SECS: u64 = 30;

/// Why [`track`] cannot run at all.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TrackerError {
    /// The Docker host is not a unix socket. Container pids are only meaningful on the local
    /// host, so remote engines (`tcp://`, `ssh://`) are not supported.
    #[error("unsupported Docker host {0:?}: expected unix:///path or an absolute socket path")]
    UnsupportedHost(String),
}

/// The unix socket path of a `DOCKER_HOST`-style value: `unix:///path` or an absolute path;
/// `None` or an empty value means [`DEFAULT_DOCKER_HOST`].
pub fn socket_path(docker_host: Option<&str>) -> Result<PathBuf, TrackerError> {
    let host = match docker_host {
        None | Some("") => DEFAULT_DOCKER_HOST,
        Some(h) => h,
    };
    let path = host.strip_prefix("unix://").unwrap_or(host);
    if path.starts_with('/') {
        Ok(PathBuf::from(path))
    } else {
        Err(TrackerError::UnsupportedHost(host.to_string()))
    }
}

/// Tracks labelled containers of the Docker engine at `docker_host` (see [`socket_path`])
/// and sends what it sees to `tx`: a [`TrackerEvent::Snapshot`] after every (re)connect,
/// then [`TrackerEvent::Started`] / [`TrackerEvent::Stopped`] as events arrive.
///
/// Runs until `tx`'s receiver is dropped (then returns `Ok`); reconnects by itself when
/// Docker is unreachable. Fails at once only for an unsupported host.
pub async fn track(
    docker_host: Option<String>,
    tx: UnboundedSender<TrackerEvent>,
) -> Result<(), TrackerError> {
    track_reporting(docker_host, tx, watch::Sender::new(false)).await
}

/// Like [`track`], and sets `connection` to true while a session with Docker stands (from
/// its snapshot on) and to false when it is lost.
pub async fn track_reporting(
    docker_host: Option<String>,
    tx: UnboundedSender<TrackerEvent>,
    connection: watch::Sender<bool>,
) -> Result<(), TrackerError> {
    let socket = socket_path(docker_host.as_deref())?;
    let mut retry = Retry::new(RETRY_FIRST, RETRY_MAX);
    loop {
        let mut connected = false;
        let end = tokio::select! {
            end = session(&socket, &tx, &mut connected, &connection) => end,
            () = tx.closed() => End::ReceiverGone,
        };
        connection.send_replace(false);
        let End::Lost(why) = end else {
            return Ok(());
        };
        if connected {
            retry.reset();
        }
        let failures = retry.failures();
        if failures == 0 {
            warn!(socket = %socket.display(), "Docker unreachable, retrying: {why}");
        } else {
            debug!(socket = %socket.display(), failures, "Docker still unreachable: {why}");
        }
        let delay = retry.failed();
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = tx.closed() => return Ok(()),
        }
    }
}

/// How a session ended.
enum End {
    /// The receiver was dropped: stop tracking.
    ReceiverGone,
    /// Docker failed or went away: retry.
    Lost(String),
}

impl From<DockerError> for End {
    fn from(e: DockerError) -> End {
        End::Lost(e.to_string())
    }
}

/// Aborts the event forwarding task when the session ends.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One connection to Docker; returns how it ended. Sets `connected` once the snapshot is
/// sent.
async fn session(
    socket: &Path,
    tx: &UnboundedSender<TrackerEvent>,
    connected: &mut bool,
    connection: &watch::Sender<bool>,
) -> End {
    match session_inner(socket, tx, connected, connection).await {
        Ok(never) => match never {},
        Err(end) => end,
    }
}

async fn session_inner(
    socket: &Path,
    tx: &UnboundedSender<TrackerEvent>,
    connected: &mut bool,
    connection: &watch::Sender<bool>,
) -> Result<std::convert::Infallible, End> {
    let socket = socket
        .to_str()
        .ok_or_else(|| End::Lost("socket path is not UTF-8".into()))?;
    let docker =
        Docker::connect_with_unix(socket, REQUEST_TIMEOUT_SECS, bollard::API_DEFAULT_VERSION)?
            .negotiate_version()
            .await?;

    // Subscribe first; a task forwards the stream so it is read while we list.
    let filters = [
        ("type".to_string(), vec!["container".to_string()]),
        (
            "event".to_string(),
            EVENTS.iter().map(|e| e.to_string()).collect(),
        ),
    ];
    let options = EventsOptions {
        since: Some(since_param(SystemTime::now() - SINCE_MARGIN)),
        until: None,
        filters: Some(filters.into_iter().collect()),
    };
    let mut stream = docker.events(Some(options));
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let _forwarder = AbortOnDrop(tokio::spawn(async move {
        while let Some(item) = stream.next().await {
            let failed = item.is_err();
            if events_tx.send(item).is_err() || failed {
                break;
            }
        }
    }));

    let snapshot = list(&docker).await?;
    debug!(containers = snapshot.len(), "Docker snapshot");
    tx.send(TrackerEvent::Snapshot(snapshot))
        .map_err(|_| End::ReceiverGone)?;
    if !*connected {
        info!(socket, "Docker connected, following container events");
    }
    *connected = true;
    connection.send_replace(true);

    loop {
        let message: EventMessage = match events.recv().await {
            Some(item) => item?,
            None => return Err(End::Lost("Docker event stream ended".into())),
        };
        let Some(id) = message.actor.and_then(|a| a.id) else {
            continue;
        };
        let event = match inspect(&docker, &id).await? {
            Some(container) => TrackerEvent::Started(container),
            None => TrackerEvent::Stopped { id },
        };
        debug!(action = ?message.action, ?event, "Docker event");
        tx.send(event).map_err(|_| End::ReceiverGone)?;
    }
}

/// Every running labelled container.
async fn list(docker: &Docker) -> Result<Vec<Container>, DockerError> {
    let options = ListContainersOptions {
        all: false, // running ones only
        ..Default::default()
    };
    let mut found = Vec::new();
    for summary in docker.list_containers(Some(options)).await? {
        if let Some(id) = summary.id {
            if let Some(c) = inspect(docker, &id).await? {
                found.push(c);
            }
        }
    }
    Ok(found)
}

/// The container `id` if it runs and has a label; `None` if it does not (or is gone).
async fn inspect(docker: &Docker, id: &str) -> Result<Option<Container>, DockerError> {
    match docker.inspect_container(id, None).await {
        Ok(response) => Ok(labelled_container(&response)),
        Err(DockerError::DockerResponseServerError {
            status_code: 404, ..
        }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The [`Container`] an inspect response describes, if it runs (pid > 0) and carries a
/// non-empty [`LABEL_ENV`].
fn labelled_container(response: &ContainerInspectResponse) -> Option<Container> {
    let id = response.id.clone()?;
    let state = response.state.as_ref()?;
    if state.running != Some(true) {
        return None;
    }
    let pid = u32::try_from(state.pid?).ok().filter(|&p| p > 0)?;
    let env = response.config.as_ref()?.env.as_ref()?;
    let label = label_from_env(env)?;
    let created = response.created.as_deref().and_then(parse_rfc3339_nanos);
    let created = created.unwrap_or_else(|| {
        warn!(id, created = ?response.created, "unreadable container creation time, using 0");
        0
    });
    Some(Container {
        id,
        label: label.to_string(),
        pid,
        created,
    })
}

/// The non-empty value of the last `MICROSERVICE_LABEL=` entry of a container environment.
fn label_from_env(env: &[String]) -> Option<&str> {
    env.iter()
        .rev()
        .find_map(|e| e.strip_prefix(LABEL_ENV)?.strip_prefix('='))
        .filter(|v| !v.is_empty())
}

/// Docker's `since` parameter for `t`: Unix seconds with nanoseconds.
fn since_param(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    format!("{}.{:09}", d.as_secs(), d.subsec_nanos())
}

/// Nanoseconds since the Unix epoch of an RFC 3339 time as Docker writes it
/// (`2024-05-01T12:34:56.123456789Z`, fraction optional, `Z` or `±hh:mm`).
pub(crate) fn parse_rfc3339_nanos(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = s.get(r)?;
        if part.bytes().all(|c| c.is_ascii_digit()) {
            part.parse().ok()
        } else {
            None
        }
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    if second > 60 {
        return None;
    }
    let mut rest = &s[19..];
    let mut nanos = 0i64;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        for (i, c) in frac[..digits].bytes().enumerate() {
            if i < 9 {
                nanos = nanos * 10 + i64::from(c - b'0');
            }
        }
        for _ in digits..9 {
            nanos *= 10;
        }
        rest = &frac[digits..];
    }
    let offset_secs = match rest.as_bytes() {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let h = num_str(&rest[1..3])?;
            let m = num_str(&rest[4..6])?;
            if h > 23 || m > 59 {
                return None;
            }
            let off = h * 3600 + m * 60;
            if *sign == b'+' {
                off
            } else {
                -off
            }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset_secs;
    secs.checked_mul(1_000_000_000)?.checked_add(nanos)
}

fn num_str(s: &str) -> Option<i64> {
    if s.bytes().all(|c| c.is_ascii_digit()) {
        s.parse().ok()
    } else {
        None
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::{ContainerConfig, ContainerState};

    #[test]
    fn socket_paths() {
        let p = |h: Option<&str>| socket_path(h).map(|p| p.display().to_string());
        assert_eq!(p(None), Ok("/var/run/docker.sock".into()));
        assert_eq!(p(Some("")), Ok("/var/run/docker.sock".into()));
        assert_eq!(p(Some("unix:///tmp/d.sock")), Ok("/tmp/d.sock".into()));
        assert_eq!(p(Some("/tmp/d.sock")), Ok("/tmp/d.sock".into()));
        for bad in [
            "tcp://127.0.0.1:2375",
            "ssh://host",
            "relative.sock",
            "unix://rel",
        ] {
            assert_eq!(
                socket_path(Some(bad)),
                Err(TrackerError::UnsupportedHost(bad.into()))
            );
        }
    }

    #[test]
    fn rfc3339_times() {
        assert_eq!(parse_rfc3339_nanos("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_rfc3339_nanos("2026-11-22T12:55:13.625111928Z"),
            Some(1_795_352_113_625_111_928)
        );
        assert_eq!(
            parse_rfc3339_nanos("2026-11-22T12:55:13.6Z"),
            Some(1_795_352_113_600_000_000)
        );
        // More than nine fraction digits are truncated.
        assert_eq!(
            parse_rfc3339_nanos("2026-11-22T12:55:13.6251119289Z"),
            Some(1_795_352_113_625_111_928)
        );
        assert_eq!(
            parse_rfc3339_nanos("2026-11-22T14:55:13.625111928+02:00"),
            parse_rfc3339_nanos("2026-11-22T12:55:13.625111928Z")
        );
        assert_eq!(
            parse_rfc3339_nanos("2000-02-29T00:00:00-01:30"),
            Some((951_782_400 + 5_400) * 1_000_000_000)
        );
        assert_eq!(
            parse_rfc3339_nanos("1969-12-31T23:59:59.5Z"),
            Some(-500_000_000)
        );
        // Outside the i64 nanosecond range (before 1678), e.g. Go's zero time.
        assert!(parse_rfc3339_nanos("0001-01-01T00:00:00Z").is_none());
        for bad in [
            "",
            "2026-11-22",
            "2026-11-22T12:55:13",
            "2026-11-22T12:55:13.Z",
            "2026-13-22T12:55:13Z",
            "2026-11-22T25:55:13Z",
            "2026-11-22T12:55:13+0200",
            "2026-11-22T12:55:13Zjunk",
            "2026/11/22T12:55:13Z",
            "+026-11-22T12:55:13Z",
        ] {
            assert_eq!(parse_rfc3339_nanos(bad), None, "{bad}");
        }
    }

    #[test]
    fn rfc3339_order_follows_time() {
        let a = parse_rfc3339_nanos("2026-11-22T12:55:13.000000001Z").unwrap();
        let b = parse_rfc3339_nanos("2026-11-22T12:55:13.00000001Z").unwrap();
        let c = parse_rfc3339_nanos("2026-12-31T23:59:59.999999999Z").unwrap();
        let d = parse_rfc3339_nanos("2027-01-01T00:00:00Z").unwrap();
        assert!(a < b && b < c && c < d);
        assert_eq!(d - c, 1);
    }

    #[test]
    fn since_parameter_has_nanoseconds() {
        let t = UNIX_EPOCH + Duration::new(1_700_000_000, 5);
        assert_eq!(since_param(t), "1700000000.000000005");
    }

    #[test]
    fn labels_from_the_environment() {
        let env = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            label_from_env(&env(&["A=1", "MICROSERVICE_LABEL=web"])),
            Some("web")
        );
        assert_eq!(
            label_from_env(&env(&["MICROSERVICE_LABEL=a=b"])),
            Some("a=b")
        );
        // The last entry wins, as in the process environment.
        let e = env(&["MICROSERVICE_LABEL=a", "MICROSERVICE_LABEL=b"]);
        assert_eq!(label_from_env(&e), Some("b"));
        assert_eq!(label_from_env(&env(&["MICROSERVICE_LABEL="])), None);
        assert_eq!(label_from_env(&env(&["MICROSERVICE_LABEL"])), None);
        assert_eq!(label_from_env(&env(&["MICROSERVICE_LABELX=web"])), None);
        assert_eq!(label_from_env(&env(&["X_MICROSERVICE_LABEL=web"])), None);
        assert_eq!(label_from_env(&[]), None);
    }

    fn response(running: bool, pid: i64, env: &[&str]) -> ContainerInspectResponse {
        ContainerInspectResponse {
            id: Some("abc".into()),
            created: Some("2026-11-22T12:55:13.625111928Z".into()),
            state: Some(ContainerState {
                running: Some(running),
                pid: Some(pid),
                ..Default::default()
            }),
            config: Some(ContainerConfig {
                env: Some(env.iter().map(|s| s.to_string()).collect()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn inspect_responses_to_containers() {
        assert_eq!(
            labelled_container(&response(true, 42, &["MICROSERVICE_LABEL=web"])),
            Some(Container {
                id: "abc".into(),
                label: "web".into(),
                pid: 42,
                created: 1_795_352_113_625_111_928,
            })
        );
        assert_eq!(
            labelled_container(&response(false, 0, &["MICROSERVICE_LABEL=web"])),
            None
        );
        // Running but without a process yet (restarting): not usable.
        assert_eq!(
            labelled_container(&response(true, 0, &["MICROSERVICE_LABEL=web"])),
            None
        );
        assert_eq!(labelled_container(&response(true, 42, &["X=1"])), None);
        let mut r = response(true, 42, &["MICROSERVICE_LABEL=web"]);
        r.created = Some("garbage".into());
        assert_eq!(labelled_container(&r).map(|c| c.created), Some(0));
    }
}
