//! LOOPBACK: the `lo` of the item's namespace. The agent sets its admin state and addresses
//! and never deletes it; deleting the item removes only the addresses the agent added.

use super::{Kind, KindContext, Lifecycle};
use crate::model::fields::Object;
use crate::model::ModelError;
use serde_json::{Map, Value};

/// The host name of every namespace's loopback link.
pub const LOOPBACK_NAME: &str = "lo";

/// The loopback link of a namespace (no data of its own).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Loopback;

impl Kind for Loopback {
    const NAME: &'static str = "LOOPBACK";
    const FIELDS: &'static [&'static str] = &[];
    const HOST_NAME: Option<&'static str> = Some(LOOPBACK_NAME);

    fn given(_: &Object) -> Result<Option<&'static str>, ModelError> {
        Ok(None)
    }

    fn decode(_: &Object, _: &KindContext) -> Result<Loopback, ModelError> {
        Ok(Loopback)
    }

    fn encode(&self, _: &mut Map<String, Value>) {}

    fn lifecycle(&self) -> Lifecycle<'_> {
        Lifecycle::Existing { link_only: false }
    }
}
