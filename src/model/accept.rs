//! Whether the agent accepts a value: it decodes, validates, and is of a kind the agent can
//! apply today. The agent, `nsagent-ctl put`, `apply` and `example` all ask here, so that
//! support for a new kind is added in this one place.

use super::link::LinkKind;
use super::{decode_value, ConfigItem, ModelError};
use crate::keys::ItemKind;

/// Decodes `value` of `key` (of `kind`) like [`decode_value`] and refuses what the agent
/// cannot apply yet (AUTO_TAP interfaces), with an error naming the key and the field.
pub fn accept_value(kind: ItemKind, key: &str, value: &[u8]) -> Result<ConfigItem, ModelError> {
    let item = decode_value(kind, key, value)?;
    if let ConfigItem::Interface(i) = &item {
        if matches!(i.link, LinkKind::AutoTap(_)) {
            return Err(ModelError {
                key: key.to_string(),
                field: "type".to_string(),
                message: format!("{} interfaces are not supported yet", i.link.type_name()),
            });
        }
    }
    Ok(item)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "/vnf-agent/vpp1/linux/config/v1/interface/t";

    #[test]
    fn auto_tap_is_refused_naming_key_and_field() {
        let value = br#"{"name": "t", "type": "AUTO_TAP", "host_if_name": "t"}"#;
        assert!(decode_value(ItemKind::Interface, KEY, value).is_ok());
        let e = accept_value(ItemKind::Interface, KEY, value).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("{KEY}: field `type`: AUTO_TAP interfaces are not supported yet")
        );
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
