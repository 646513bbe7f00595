//! Whether the agent accepts a value: it decodes, validates, and is of a kind the agent can
//! apply today. The agent, `nsagent-ctl put`, `apply` and `example` all ask here, so that
//! support for a new kind is added in this one place.

use super::{decode_value, ConfigItem, ModelError};
use crate::keys::ItemKind;

/// Decodes `value` of `key` (of `kind`) like [`decode_value`]; the place to refuse what
/// decodes but the agent cannot apply (today it applies every kind it decodes).
pub fn accept_value(kind: ItemKind, key: &str, value: &[u8]) -> Result<ConfigItem, ModelError> {
    decode_value(kind, key, value)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "/vnf-agent/vpp1/linux/config/v1/interface/t";

    #[test]
    fn every_kind_is_accepted() {
        for kind in crate::model::link::INTERFACE_TYPES {
            let value =
                format!(r#"{{"name": "t", "type": "{kind}", "veth": {{"peer_if_name": "u"}}}}"#);
            let value = match *kind {
                "VETH" => value,
                "VRF_DEVICE" => format!(
                    r#"{{"name": "t", "type": "{kind}", "vrf_dev": {{"routing_table": 10}}}}"#
                ),
                _ => format!(r#"{{"name": "t", "type": "{kind}"}}"#),
            };
            assert!(
                accept_value(ItemKind::Interface, KEY, value.as_bytes()).is_ok(),
                "{kind}"
            );
        }
    }

    #[test]
    fn veth_and_decode_errors_pass_through() {
        let veth = br#"{"name": "t", "veth": {"peer_if_name": "u"}}"#;
        assert!(matches!(
            accept_value(ItemKind::Interface, KEY, veth),
            Ok(ConfigItem::Interface(_))
        ));
        let bad = br#"{"name": "t", "mtu": "x"}"#;
        assert_eq!(
            accept_value(ItemKind::Interface, KEY, bad).unwrap_err(),
            decode_value(ItemKind::Interface, KEY, bad).unwrap_err()
        );
    }
}
