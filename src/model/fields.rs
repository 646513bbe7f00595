//! Reading one JSON object of the model: field spellings, unknown and duplicate fields, and
//! typed access with errors that name the field.

use super::json::Json;
use super::ModelError;

/// The members of one JSON object, matched to the canonical snake_case names they spell.
/// `null` members are dropped (null = absent).
pub(super) struct Object<'a> {
    key: &'a str,
    /// Path of this object (`""` for the value itself, `namespace`, ...).
    path: String,
    fields: Vec<(&'static str, &'a Json)>,
}

impl<'a> Object<'a> {
    /// Matches the members of `value` to the `known` canonical names. `path` is the object's
    /// own field path, empty for the whole value.
    pub(super) fn new(
        key: &'a str,
        path: &str,
        value: &'a Json,
        known: &[&'static str],
    ) -> Result<Self, ModelError> {
        let error = |message: String| ModelError {
            key: key.to_string(),
            field: path.to_string(),
            message,
        };
        let Json::Object(members) = value else {
            let what = if path.is_empty() {
                "one JSON object"
            } else {
                "an object"
            };
            return Err(error(format!(
                "expected {what}, found {}",
                value.describe()
            )));
        };
        let mut matched: Vec<(&'static str, &str, &Json)> = Vec::new();
        for (given, member) in members {
            let at = join(path, given);
            let Some(&canonical) = known.iter().find(|k| spells(given, k)) else {
                return Err(ModelError {
                    key: key.to_string(),
                    field: at,
                    message: unknown_field(given, known),
                });
            };
            if let Some((_, first, _)) = matched.iter().find(|(c, _, _)| *c == canonical) {
                let how = if *first == given.as_str() {
                    String::new()
                } else {
                    format!(" (as `{first}` and as `{given}`)")
                };
                return Err(ModelError {
                    key: key.to_string(),
                    field: join(path, canonical),
                    message: format!("field is given twice{how}"),
                });
            }
            matched.push((canonical, given, member));
        }
        let fields = matched
            .into_iter()
            .filter(|(_, _, v)| **v != Json::Null)
            .map(|(c, _, v)| (c, v))
            .collect();
        Ok(Object {
            key,
            path: path.to_string(),
            fields,
        })
    }

    /// True when the (canonical) field is present and not null.
    pub(super) fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// An error about `name` (relative to this object; empty = the object itself).
    pub(super) fn error(&self, name: &str, message: String) -> ModelError {
        ModelError {
            key: self.key.to_string(),
            field: join(&self.path, name),
            message,
        }
    }

    /// A string field; absent = "".
    pub(super) fn string(&self, name: &str) -> Result<String, ModelError> {
        match self.get(name) {
            None => Ok(String::new()),
            Some(Json::String(s)) => Ok(s.clone()),
            Some(other) => Err(self.type_error(name, "a string", other)),
        }
    }

    /// A boolean field; absent = false.
    pub(super) fn bool(&self, name: &str) -> Result<bool, ModelError> {
        match self.get(name) {
            None => Ok(false),
            Some(Json::Bool(b)) => Ok(*b),
            Some(other) => Err(self.type_error(name, "true or false", other)),
        }
    }

    /// An unsigned 32-bit integer field; absent = 0.
    pub(super) fn u32(&self, name: &str) -> Result<u32, ModelError> {
        match self.get(name) {
            None => Ok(0),
            Some(Json::Number(n)) => match n.as_u64().map(u32::try_from) {
                Some(Ok(v)) => Ok(v),
                Some(Err(_)) => {
                    Err(self.error(name, format!("{n} is out of range (at most {})", u32::MAX)))
                }
                None => Err(self.type_error(name, "an unsigned integer", &Json::Number(n.clone()))),
            },
            Some(other) => Err(self.type_error(name, "an unsigned integer", other)),
        }
    }

    /// An enum field given as its number or its exact name; returns the number (the index
    /// into `names`). Absent = 0.
    pub(super) fn enumeration(&self, name: &str, names: &[&str]) -> Result<usize, ModelError> {
        let found = match self.get(name) {
            None => return Ok(0),
            Some(Json::Number(n)) => n
                .as_u64()
                .and_then(|n| usize::try_from(n).ok())
                .filter(|&n| n < names.len()),
            Some(Json::String(s)) => names.iter().position(|n| n == s),
            Some(_) => None,
        };
        found.ok_or_else(|| {
            let valid: Vec<String> = names
                .iter()
                .enumerate()
                .map(|(i, n)| format!("{n} ({i})"))
                .collect();
            let value = self.get(name).map(Json::describe).unwrap_or_default();
            self.error(
                name,
                format!(
                    "expected one of {} (by name or number), found {value}",
                    valid.join(", ")
                ),
            )
        })
    }

    /// An array of strings; absent = empty. Element errors name `field[i]`.
    pub(super) fn strings(&self, name: &str) -> Result<Vec<String>, ModelError> {
        match self.get(name) {
            None => Ok(Vec::new()),
            Some(Json::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, item)| match item {
                    Json::String(s) => Ok(s.clone()),
                    other => Err(self.type_error(&format!("{name}[{i}]"), "a string", other)),
                })
                .collect(),
            Some(other) => Err(self.type_error(name, "an array of strings", other)),
        }
    }

    /// A nested object with its own known fields; `None` when absent.
    pub(super) fn object(
        &self,
        name: &str,
        known: &[&'static str],
    ) -> Result<Option<Object<'a>>, ModelError> {
        self.get(name)
            .map(|value| Object::new(self.key, &join(&self.path, name), value, known))
            .transpose()
    }

    fn get(&self, name: &str) -> Option<&'a Json> {
        self.fields
            .iter()
            .find(|(c, _)| *c == name)
            .map(|(_, v)| *v)
    }

    fn type_error(&self, name: &str, expected: &str, found: &Json) -> ModelError {
        self.error(
            name,
            format!("expected {expected}, found {}", found.describe()),
        )
    }
}

/// `path.name`, or `name` at the top level.
fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}

/// True when `given` is an accepted spelling of the snake_case name `canonical`: itself,
/// lowerCamelCase, kebab-case, or snake_case in any letter case (as Go's encoding/json).
fn spells(given: &str, canonical: &str) -> bool {
    given.eq_ignore_ascii_case(canonical)
        || given == canonical.replace('_', "-")
        || given == lower_camel(canonical)
}

fn lower_camel(snake: &str) -> String {
    let mut out = String::with_capacity(snake.len());
    let mut upper = false;
    for c in snake.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.push(c.to_ascii_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// "unknown field `x`; did you mean `y`?" with the closest known name, compared without
/// case, word separators and other punctuation (`host if name` is `host_if_name`). A known
/// name one typo away (a letter added, dropped, replaced, or two letters swapped) is the
/// closest; after it, a known name containing the given one (`peer` for `peer_if_name`) or
/// contained in it (`gw_addr` in `gw_address`); then the fewest typos. Lists all known
/// names when nothing is close.
fn unknown_field(given: &str, known: &[&str]) -> String {
    let plain = |s: &str| -> Vec<char> {
        s.chars()
            .filter(|c| c.is_alphanumeric())
            .flat_map(char::to_lowercase)
            .collect()
    };
    let given_plain = plain(given);
    let contains = |outer: &[char], inner: &[char]| {
        inner.len() >= 3 && outer.windows(inner.len()).any(|w| w == inner)
    };
    let closest = known
        .iter()
        .map(|k| (plain(k), *k))
        .map(|(p, k)| {
            let related = contains(&p, &given_plain) || contains(&given_plain, &p);
            let typos = typo_distance(&given_plain, &p);
            (typos > 1, !related, typos, p, k)
        })
        .filter(|(_, unrelated, typos, p, _)| !unrelated || *typos <= (p.len() / 3).max(2))
        .min();
    match closest {
        Some((_, _, _, _, name)) => format!("unknown field `{given}`; did you mean `{name}`?"),
        None => {
            let all: Vec<String> = known.iter().map(|k| format!("`{k}`")).collect();
            format!("unknown field `{given}`; known fields: {}", all.join(", "))
        }
    }
}

/// Typos between two character strings: insertions, deletions, substitutions and swaps of
/// two adjacent characters (the optimal string alignment distance).
fn typo_distance(a: &[char], b: &[char]) -> usize {
    // d[i][j]: typos between a[..i] and b[..j].
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let substitute = d[i - 1][j - 1] + usize::from(a[i - 1] != b[j - 1]);
            let mut best = substitute.min(d[i - 1][j] + 1).min(d[i][j - 1] + 1);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chars(s: &str) -> Vec<char> {
        s.chars().collect()
    }

    #[test]
    fn typo_distance_counts_edits_and_swaps() {
        assert_eq!(typo_distance(&chars(""), &chars("abc")), 3);
        assert_eq!(typo_distance(&chars("abc"), &chars("abc")), 0);
        assert_eq!(typo_distance(&chars("kitten"), &chars("sitting")), 3);
        assert_eq!(typo_distance(&chars("nmae"), &chars("name")), 1);
        assert_eq!(typo_distance(&chars("ca"), &chars("abc")), 3);
    }

    /// Found by `tests_fuzz`: the containment rule suggested `name` for every typo of a
    /// field whose name contains `name`.
    #[test]
    fn one_typo_beats_containing_a_known_name() {
        let known = ["name", "host_if_name", "namespace"];
        for given in [
            "host if name",
            "host.if.name",
            "hostq_if_name",
            "hsot_if_name",
        ] {
            assert_eq!(
                unknown_field(given, &known),
                format!("unknown field `{given}`; did you mean `host_if_name`?")
            );
        }
    }

    #[test]
    fn spellings() {
        for given in [
            "host_if_name",
            "hostIfName",
            "host-if-name",
            "HOST_IF_NAME",
            "Host_If_Name",
        ] {
            assert!(spells(given, "host_if_name"), "{given}");
        }
        for given in ["hostifname", "HostIfName", "host-If-name", "host_ifname"] {
            assert!(!spells(given, "host_if_name"), "{given}");
        }
    }

    #[test]
    fn names_containing_a_known_one_are_close() {
        let m = unknown_field("gw_address", &["gw_addr", "src_ip_addr"]);
        assert_eq!(m, "unknown field `gw_address`; did you mean `gw_addr`?");
        let m = unknown_field("peer", &["name", "peer_if_name"]);
        assert_eq!(m, "unknown field `peer`; did you mean `peer_if_name`?");
        // Short known names do not match inside anything.
        let m = unknown_field("oops_ip", &["ip"]);
        assert_eq!(m, "unknown field `oops_ip`; known fields: `ip`");
    }

    #[test]
    fn containing_beats_fewer_edits() {
        // `hwaddr` is 2 edits from `ipaddr` but the start of `hwaddress`.
        let m = unknown_field("hw_addr", &["ip_addr", "hw_address"]);
        assert_eq!(m, "unknown field `hw_addr`; did you mean `hw_address`?");
    }

    #[test]
    fn far_names_list_all_known_fields() {
        let m = unknown_field("zzzzzz", &["pid", "name"]);
        assert_eq!(m, "unknown field `zzzzzz`; known fields: `pid`, `name`");
    }
}
