//! AUTO_TAP: a TAP another program creates; `tap.temp_if_name` is its name until the agent
//! takes it over (default: `host_if_name`).

use super::{Kind, KindContext, Lifecycle};
use crate::model::decode::{link_name_problem, quote_name};
use crate::model::fields::Object;
use crate::model::ModelError;
use serde_json::{json, Map, Value};

const TAP_FIELDS: &[&str] = &["temp_if_name"];

/// The data of an AUTO_TAP.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AutoTap {
    /// The TAP's name before the agent takes it over (defaulted to the host name).
    pub temp_name: String,
}

impl AutoTap {
    /// `tap.temp_if_name`; "" when absent.
    fn temp(obj: &Object) -> Result<String, ModelError> {
        match obj.object("tap", TAP_FIELDS)? {
            Some(tap) => tap.string("temp_if_name"),
            None => Ok(String::new()),
        }
    }
}

impl Kind for AutoTap {
    const NAME: &'static str = "AUTO_TAP";
    const FIELDS: &'static [&'static str] = &["tap"];

    fn given(obj: &Object) -> Result<Option<&'static str>, ModelError> {
        Ok((!AutoTap::temp(obj)?.is_empty()).then_some("tap.temp_if_name"))
    }

    fn decode(obj: &Object, cx: &KindContext) -> Result<AutoTap, ModelError> {
        let temp = AutoTap::temp(obj)?;
        if temp.is_empty() {
            return Ok(AutoTap {
                temp_name: cx.host_if_name.to_string(),
            });
        }
        match link_name_problem(&temp) {
            Some(problem) => Err(obj.error(
                "tap.temp_if_name",
                format!("{} {problem}", quote_name(&temp)),
            )),
            None => Ok(AutoTap { temp_name: temp }),
        }
    }

    fn encode(&self, out: &mut Map<String, Value>) {
        out.insert("tap".into(), json!({ "temp_if_name": self.temp_name }));
    }

    fn lifecycle(&self) -> Lifecycle<'_> {
        Lifecycle::Adopted {
            temp_name: &self.temp_name,
        }
    }
}
