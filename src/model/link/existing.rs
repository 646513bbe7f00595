//! EXISTING: a link someone else made, in any namespace, found by `host_if_name`. With
//! `link_only` the agent only waits for it (routes and ARP entries can depend on it);
//! otherwise it also applies admin state, MTU, MAC and addresses. Never deleted: deleting the
//! item removes only the addresses the agent added.

use super::{Kind, KindContext, Lifecycle};
use crate::model::fields::Object;
use crate::model::ModelError;
use serde_json::{Map, Value};

/// The data of an EXISTING link.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Existing {
    /// Only wait for the link; change nothing on it.
    pub link_only: bool,
}

impl Kind for Existing {
    const NAME: &'static str = "EXISTING";
    const FIELDS: &'static [&'static str] = &["link_only"];

    fn given(obj: &Object) -> Result<Option<&'static str>, ModelError> {
        Ok(obj.bool("link_only")?.then_some("link_only"))
    }

    fn decode(obj: &Object, _: &KindContext) -> Result<Existing, ModelError> {
        Ok(Existing {
            link_only: obj.bool("link_only")?,
        })
    }

    fn encode(&self, out: &mut Map<String, Value>) {
        if self.link_only {
            out.insert("link_only".into(), Value::Bool(true));
        }
    }

    fn lifecycle(&self) -> Lifecycle<'_> {
        Lifecycle::Existing {
            link_only: self.link_only,
        }
    }
}
