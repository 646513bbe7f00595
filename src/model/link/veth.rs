//! VETH: one end of a pair; `veth.peer_if_name` names the other end.

use super::{Kind, KindContext, Lifecycle};
use crate::model::decode::quote_name;
use crate::model::fields::Object;
use crate::model::ModelError;
use serde_json::{json, Map, Value};

const VETH_FIELDS: &[&str] = &["peer_if_name"];

/// Longest link alias (`IFALIASZ` - 1): the kernel refuses a longer one with ERANGE.
const MAX_ALIAS: usize = 255;

/// The data of a VETH end.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Veth {
    /// Logical name of the other end (not empty, not the end itself, no `/`).
    pub peer: String,
}

impl Veth {
    /// `veth.peer_if_name`; "" when absent.
    fn peer(obj: &Object) -> Result<String, ModelError> {
        match obj.object("veth", VETH_FIELDS)? {
            Some(veth) => veth.string("peer_if_name"),
            None => Ok(String::new()),
        }
    }
}

impl Kind for Veth {
    const NAME: &'static str = "VETH";
    const FIELDS: &'static [&'static str] = &["veth"];

    fn given(obj: &Object) -> Result<Option<&'static str>, ModelError> {
        Ok((!Veth::peer(obj)?.is_empty()).then_some("veth.peer_if_name"))
    }

    fn decode(obj: &Object, cx: &KindContext) -> Result<Veth, ModelError> {
        let peer = Veth::peer(obj)?;
        if peer.is_empty() {
            return Err(obj.error(
                "veth.peer_if_name",
                "is required for a VETH: the logical `name` of the other end".to_string(),
            ));
        }
        if peer == cx.name {
            return Err(obj.error(
                "veth.peer_if_name",
                format!(
                    "is {}, the interface itself; name the other end of the pair",
                    quote_name(&peer)
                ),
            ));
        }
        if peer.contains('/') {
            return Err(obj.error(
                "veth.peer_if_name",
                format!(
                    "{} contains `/`; it must be the logical `name` of the other end",
                    quote_name(&peer)
                ),
            ));
        }
        check_alias_fits(obj, cx, &peer)?;
        Ok(Veth { peer })
    }

    fn encode(&self, out: &mut Map<String, Value>) {
        out.insert("veth".into(), json!({ "peer_if_name": self.peer }));
    }

    fn lifecycle(&self) -> Lifecycle<'_> {
        Lifecycle::Pair { peer: &self.peer }
    }
}

/// The ownership alias of a VETH end, `/vnf-agent/<label>/<name>/<peer>` (the agent prefix
/// is the start of the key), fits the kernel's limit.
fn check_alias_fits(obj: &Object, cx: &KindContext, peer: &str) -> Result<(), ModelError> {
    let prefix = crate::keys::agent_prefix_of(cx.key).unwrap_or(crate::keys::ROOT);
    let len = prefix.len() + cx.name.len() + 1 + peer.len();
    if len > MAX_ALIAS {
        return Err(obj.error(
            "name",
            format!(
                "`name` ({} bytes) and `veth.peer_if_name` ({} bytes) make the link's ownership alias `{prefix}<name>/<peer>` {len} bytes long; the kernel allows {MAX_ALIAS}: shorten them",
                cx.name.len(),
                peer.len()
            ),
        ));
    }
    Ok(())
}
