//! JSON decoding with the compatibility rules of the older agents.
use super::{ConfigItem, Interface, ModelError};
use crate::keys::ItemKind;

/// Decodes and validates the value of an interface key.
pub fn decode_interface(key: &str, value: &[u8]) -> Result<Interface, ModelError> {
    let _ = (key, value);
    todo!("model helper")
}

/// Decodes and validates a value of any kind.
pub fn decode_value(kind: ItemKind, key: &str, value: &[u8]) -> Result<ConfigItem, ModelError> {
    match kind {
        ItemKind::Interface => decode_interface(key, value).map(ConfigItem::Interface),
        other => Err(ModelError {
            key: key.to_string(),
            field: String::new(),
            message: format!("{other} values are not supported yet"),
        }),
    }
}
