//! VRF_DEVICE: a VRF link created, owned and deleted by the agent;
//! `vrf_dev.routing_table` is the routing table it binds (required, not 0 and not one of
//! the kernel's own tables). Other interfaces join it with `vrf_master_interface`.

use super::{Kind, KindContext, Lifecycle, OwnedLink};
use crate::model::fields::Object;
use crate::model::ModelError;
use serde_json::{json, Map, Value};

const VRF_FIELDS: &[&str] = &["routing_table"];

/// The kernel's own routing tables (default, main, local), which a VRF cannot take.
const RESERVED_TABLES: [(u32, &str); 3] = [(253, "default"), (254, "main"), (255, "local")];

/// The data of a VRF device.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Vrf {
    /// Its routing table.
    pub table: u32,
}

impl Vrf {
    /// `vrf_dev.routing_table`; 0 when absent.
    fn table(obj: &Object) -> Result<u32, ModelError> {
        match obj.object("vrf_dev", VRF_FIELDS)? {
            Some(vrf) => vrf.u32("routing_table"),
            None => Ok(0),
        }
    }
}

impl Kind for Vrf {
    const NAME: &'static str = "VRF_DEVICE";
    const FIELDS: &'static [&'static str] = &["vrf_dev"];

    fn given(obj: &Object) -> Result<Option<&'static str>, ModelError> {
        Ok((Vrf::table(obj)? != 0).then_some("vrf_dev.routing_table"))
    }

    fn decode(obj: &Object, _: &KindContext) -> Result<Vrf, ModelError> {
        let table = Vrf::table(obj)?;
        if table == 0 {
            return Err(obj.error(
                "vrf_dev.routing_table",
                "is required for a VRF_DEVICE: the routing table (1 to 4294967295, not 253, 254 or 255) its routes go to".to_string(),
            ));
        }
        if let Some((_, what)) = RESERVED_TABLES.iter().find(|(t, _)| *t == table) {
            return Err(obj.error(
                "vrf_dev.routing_table",
                format!("{table} is the kernel's {what} table; a VRF needs a table of its own"),
            ));
        }
        Ok(Vrf { table })
    }

    fn encode(&self, out: &mut Map<String, Value>) {
        out.insert("vrf_dev".into(), json!({ "routing_table": self.table }));
    }

    fn lifecycle(&self) -> Lifecycle<'_> {
        Lifecycle::Owned(OwnedLink {
            kind: "vrf",
            table: Some(self.table),
            // IP_MAX_MTU, the kernel's default for a VRF since Linux 4.12.
            default_mtu: 65575,
        })
    }
}
