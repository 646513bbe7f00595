//! TAP: a persistent TAP created (through `/dev/net/tun`, inside its namespace), owned and
//! deleted by the agent.

use super::{Kind, KindContext, Lifecycle, OwnedLink};
use crate::model::fields::Object;
use crate::model::ModelError;
use serde_json::{Map, Value};

/// What the agent creates for a TAP (the kernel's kind of a TAP is `tun`).
pub const TAP_LINK: OwnedLink = OwnedLink::plain("tun");

/// A TAP made by the agent (no data of its own; `tap.temp_if_name` belongs to AUTO_TAP).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Tap;

impl Kind for Tap {
    const NAME: &'static str = "TAP";
    const FIELDS: &'static [&'static str] = &[];

    fn given(_: &Object) -> Result<Option<&'static str>, ModelError> {
        Ok(None)
    }

    fn decode(_: &Object, _: &KindContext) -> Result<Tap, ModelError> {
        Ok(Tap)
    }

    fn encode(&self, _: &mut Map<String, Value>) {}

    fn lifecycle(&self) -> Lifecycle<'_> {
        Lifecycle::Owned(TAP_LINK)
    }
}
