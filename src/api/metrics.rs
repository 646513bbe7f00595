//! The agent's Prometheus metrics (prometheus-client), rendered in the Prometheus text format
//! (version 0.0.4) for `GET /metrics`.

use crate::keys::ItemKind;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};
use std::time::Duration;

/// The `Content-Type` of [`Metrics::render`]'s text.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Every kind, for label values known in advance.
pub const KINDS: [ItemKind; 3] = [ItemKind::Interface, ItemKind::Route, ItemKind::Arp];

/// The published states an item can be counted in.
pub const STATES: [&str; 4] = ["applied", "pending", "failed", "invalid"];

/// Upper bounds (seconds) of the apply latency buckets: 1 ms to 1 min.
const LATENCY_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0, 60.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ItemLabels {
    kind: &'static str,
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    op: &'static str,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

/// The metric families; cheap to update from the agent loop (atomics).
pub struct Metrics {
    registry: Registry,
    items: Family<ItemLabels, Gauge>,
    operations: Family<OperationLabels, Counter>,
    apply_latency: Histogram,
    etcd_connected: Gauge,
    docker_connected: Gauge,
    resyncs: Counter,
    kernel_repairs: Family<KindLabel, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every family; item and repair series start at 0 for every kind and state.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let items = Family::<ItemLabels, Gauge>::default();
        let operations = Family::<OperationLabels, Counter>::default();
        let apply_latency = Histogram::new(LATENCY_BUCKETS);
        let (etcd_connected, docker_connected) = (Gauge::default(), Gauge::default());
        let resyncs = Counter::default();
        let kernel_repairs = Family::<KindLabel, Counter>::default();
        registry.register(
            "nsagent_items",
            "Configured items by kind and published state",
            items.clone(),
        );
        registry.register(
            "nsagent_operations",
            "Kernel operations by operation and result",
            operations.clone(),
        );
        registry.register_with_unit(
            "nsagent_apply_latency",
            "Time from receiving an item's etcd event until the item is applied",
            Unit::Seconds,
            apply_latency.clone(),
        );
        registry.register(
            "nsagent_etcd_connected",
            "1 while the agent is connected to etcd",
            etcd_connected.clone(),
        );
        registry.register(
            "nsagent_docker_connected",
            "1 while the agent is connected to the Docker engine",
            docker_connected.clone(),
        );
        registry.register(
            "nsagent_resyncs",
            "Re-reads of the managed kernel state (etcd snapshots, timer, POST /resync)",
            resyncs.clone(),
        );
        registry.register(
            "nsagent_kernel_repairs",
            "Kernel objects changed behind the agent's back and repaired, by item kind",
            kernel_repairs.clone(),
        );
        registry.register(
            "nsagent_build",
            "Build of the running agent",
            Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]),
        );
        for kind in KINDS {
            for state in STATES {
                let _ = items.get_or_create(&ItemLabels {
                    kind: kind.segment(),
                    state,
                });
            }
            let _ = kernel_repairs.get_or_create(&KindLabel {
                kind: kind.segment(),
            });
        }
        Metrics {
            registry,
            items,
            operations,
            apply_latency,
            etcd_connected,
            docker_connected,
            resyncs,
            kernel_repairs,
        }
    }

    /// Moves one item between states (`None` = not counted: no status, or removed).
    pub fn item_moved(&self, kind: ItemKind, from: Option<&'static str>, to: Option<&'static str>) {
        if from == to {
            return;
        }
        let gauge = |state| {
            self.items.get_or_create(&ItemLabels {
                kind: kind.segment(),
                state,
            })
        };
        if let Some(state) = from {
            gauge(state).dec();
        }
        if let Some(state) = to {
            gauge(state).inc();
        }
    }

    /// Counts one finished kernel operation.
    pub fn operation(&self, op: &'static str, result: &'static str) {
        self.operations
            .get_or_create(&OperationLabels { op, result })
            .inc();
    }

    /// Records the time from an item's etcd event to the item being applied.
    pub fn apply_latency(&self, latency: Duration) {
        self.apply_latency.observe(latency.as_secs_f64());
    }

    /// Counts one re-read of the managed kernel state.
    pub fn resync(&self) {
        self.resyncs.inc();
    }

    /// Counts one kernel object of `kind` that was repaired.
    pub fn kernel_repair(&self, kind: ItemKind) {
        self.kernel_repairs
            .get_or_create(&KindLabel {
                kind: kind.segment(),
            })
            .inc();
    }

    /// The metrics in the Prometheus text format, with the connection gauges set first.
    pub fn render(&self, etcd_connected: bool, docker_connected: bool) -> String {
        self.etcd_connected.set(i64::from(etcd_connected));
        self.docker_connected.set(i64::from(docker_connected));
        let mut text = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample<'a>(text: &'a str, series: &str) -> Option<&'a str> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
    }

    #[test]
    fn families_have_the_contract_names_and_start_at_zero() {
        let m = Metrics::new();
        let text = m.render(true, false);
        for series in [
            "nsagent_items{kind=\"interface\",state=\"applied\"}",
            "nsagent_items{kind=\"arp\",state=\"invalid\"}",
            "nsagent_kernel_repairs_total{kind=\"route\"}",
            "nsagent_resyncs_total",
            "nsagent_apply_latency_seconds_count",
        ] {
            assert_eq!(sample(&text, series), Some("0"), "{series} in\n{text}");
        }
        assert_eq!(sample(&text, "nsagent_etcd_connected"), Some("1"));
        assert_eq!(sample(&text, "nsagent_docker_connected"), Some("0"));
        let build = format!(
            "nsagent_build_info{{version=\"{}\"}}",
            env!("CARGO_PKG_VERSION")
        );
        assert_eq!(sample(&text, &build), Some("1"), "{text}");
    }

    #[test]
    fn updates_show_up() {
        let m = Metrics::new();
        m.item_moved(ItemKind::Interface, None, Some("pending"));
        m.item_moved(ItemKind::Interface, Some("pending"), Some("applied"));
        m.item_moved(ItemKind::Interface, None, Some("applied"));
        m.operation("create_pair", "ok");
        m.apply_latency(Duration::from_millis(30));
        m.resync();
        m.kernel_repair(ItemKind::Route);
        let text = m.render(false, true);
        let get = |s: &str| sample(&text, s).unwrap_or_else(|| panic!("{s} in\n{text}"));
        assert_eq!(
            get("nsagent_items{kind=\"interface\",state=\"applied\"}"),
            "2"
        );
        assert_eq!(
            get("nsagent_items{kind=\"interface\",state=\"pending\"}"),
            "0"
        );
        assert_eq!(
            get("nsagent_operations_total{op=\"create_pair\",result=\"ok\"}"),
            "1"
        );
        assert_eq!(
            get("nsagent_apply_latency_seconds_bucket{le=\"0.025\"}"),
            "0"
        );
        assert_eq!(
            get("nsagent_apply_latency_seconds_bucket{le=\"0.05\"}"),
            "1"
        );
        assert_eq!(get("nsagent_resyncs_total"), "1");
        assert_eq!(get("nsagent_kernel_repairs_total{kind=\"route\"}"), "1");
        assert_eq!(get("nsagent_docker_connected"), "1");
    }
}
