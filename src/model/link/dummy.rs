//! DUMMY: a link created, owned and deleted by the agent, like a VETH end without a peer.

use super::{Kind, KindContext, Lifecycle, OwnedLink};
use crate::model::fields::Object;
use crate::model::ModelError;
use serde_json::{Map, Value};

/// What the agent creates for a DUMMY.
pub const DUMMY_LINK: OwnedLink = OwnedLink::plain("dummy");

/// A DUMMY link (no data of its own).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Dummy;

impl Kind for Dummy {
    const NAME: &'static str = "DUMMY";
    const FIELDS: &'static [&'static str] = &[];

    fn given(_: &Object) -> Result<Option<&'static str>, ModelError> {
        Ok(None)
    }

    fn decode(_: &Object, _: &KindContext) -> Result<Dummy, ModelError> {
        Ok(Dummy)
    }

    fn encode(&self, _: &mut Map<String, Value>) {}

    fn lifecycle(&self) -> Lifecycle<'_> {
        Lifecycle::Owned(DUMMY_LINK)
    }
}
