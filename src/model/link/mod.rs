//! Link kinds: what an interface is, beyond the fields every interface has. One file per
//! kind decodes, checks and encodes the kind's own data and says how the agent handles it
//! ([`Lifecycle`]), so that the scheduler reasons about lifecycles, not kinds. Adding a kind
//! is its file and one line in the list below.

pub mod auto_tap;
pub mod dummy;
pub mod existing;
pub mod loopback;
pub mod tap;
pub mod veth;
pub mod vrf;

use super::fields::Object;
use super::ModelError;
use serde_json::{Map, Value};

/// What one kind of link provides (implemented in its own file).
pub(in crate::model) trait Kind: Sized {
    /// Its `type` name (`VETH`).
    const NAME: &'static str;
    /// The fields of the interface value that are its own (`veth`).
    const FIELDS: &'static [&'static str];
    /// The host name every link of the kind has (`lo`), if it is fixed.
    const HOST_NAME: Option<&'static str> = None;
    /// The first of its own fields that `obj` sets to something other than a zero value
    /// (a value of another kind must not), if any.
    fn given(obj: &Object) -> Result<Option<&'static str>, ModelError>;
    /// Decodes and checks its data.
    fn decode(obj: &Object, cx: &KindContext) -> Result<Self, ModelError>;
    /// Writes its data into a canonical JSON object.
    fn encode(&self, out: &mut Map<String, Value>);
    /// How the agent handles it.
    fn lifecycle(&self) -> Lifecycle<'_>;
}

/// Defines [`LinkKind`] and its dispatch from one list: `Variant(Type)`, in `type` number
/// order (the first is 0, the default).
macro_rules! link_kinds {
    ($($variant:ident($ty:ty)),* $(,)?) => {
        /// What kind of link an interface is, with the kind's own data.
        #[derive(Clone, Debug, PartialEq, Eq, Hash)]
        pub enum LinkKind {
            $(
                #[doc = concat!("`", stringify!($variant), "` (see its module).")]
                $variant($ty),
            )*
        }

        /// `type` names; the index is the number (VETH 0 and AUTO_TAP 1, as in the v1 model;
        /// LOOPBACK 3, EXISTING 4, VRF_DEVICE 5 and DUMMY 6 as in the Go agent's v3 model).
        pub const INTERFACE_TYPES: &[&str] = &[$(<$ty as Kind>::NAME),*];

        /// The fields of the interface value that belong to one kind or another.
        pub const KIND_FIELDS: &[&[&str]] = &[$(<$ty as Kind>::FIELDS),*];

        /// For each kind (by number): its fixed host name, if it has one.
        pub const FIXED_HOST_NAMES: &[Option<&str>] = &[$(<$ty as Kind>::HOST_NAME),*];

        /// For each kind (by number): the first of its fields `obj` sets, if any.
        const GIVEN: &[fn(&Object) -> Result<Option<&'static str>, ModelError>] =
            &[$(<$ty as Kind>::given),*];

        impl LinkKind {
            /// The `type` number of the kind.
            pub fn type_number(&self) -> usize {
                let mut n = 0;
                $(
                    if matches!(self, LinkKind::$variant(_)) {
                        return n;
                    }
                    n += 1;
                )*
                n
            }

            /// Decodes the data of kind number `n`.
            fn decode_kind(n: usize, obj: &Object, cx: &KindContext) -> Result<LinkKind, ModelError> {
                let mut i = 0;
                $(
                    if i == n {
                        return Ok(LinkKind::$variant(<$ty as Kind>::decode(obj, cx)?));
                    }
                    i += 1;
                )*
                let _ = i;
                unreachable!("kind number {n} out of range")
            }

            /// Writes the kind's own data.
            fn encode_kind(&self, out: &mut Map<String, Value>) {
                match self {
                    $(LinkKind::$variant(k) => k.encode(out),)*
                }
            }

            /// How the agent handles it.
            pub fn lifecycle(&self) -> Lifecycle<'_> {
                match self {
                    $(LinkKind::$variant(k) => k.lifecycle(),)*
                }
            }
        }
    };
}

link_kinds! {
    Veth(veth::Veth),
    AutoTap(auto_tap::AutoTap),
    Tap(tap::Tap),
    Loopback(loopback::Loopback),
    Existing(existing::Existing),
    VrfDevice(vrf::Vrf),
    Dummy(dummy::Dummy),
}

/// How the agent handles a link of some kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lifecycle<'a> {
    /// One end of a VETH pair, created with its peer (the logical name of the other end) in
    /// one request and deleted with it.
    Pair {
        /// The other end's logical name.
        peer: &'a str,
    },
    /// A single link the agent creates, marks as its own and deletes with its item.
    Owned(OwnedLink),
    /// A link another program creates under `temp_name` in the agent's own namespace; the
    /// agent takes it over and gives it back when the item goes.
    Adopted {
        /// Its name before the agent takes it over.
        temp_name: &'a str,
    },
    /// A link someone else made, found by its host name in the item's namespace; never
    /// created or deleted by the agent, which removes only the addresses it added.
    Existing {
        /// Only wait for it; change nothing on it.
        link_only: bool,
    },
}

/// What the agent creates for a [`Lifecycle::Owned`] link, as plain data: the executor
/// makes any kind the kernel knows by its name alone (a kind with data of its own, a VRF's
/// table, has it here too), so a new kind without data needs no executor code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct OwnedLink {
    /// The kernel's name of the link kind (`IFLA_INFO_KIND`): `dummy`, `tun`, `vrf`, ...
    pub kind: &'static str,
    /// The routing table a VRF is bound to.
    pub table: Option<u32>,
    /// The MTU the kernel gives a new link of the kind.
    pub default_mtu: u32,
}

impl OwnedLink {
    /// A kind without data of its own whose new links get an MTU of 1500.
    pub const fn plain(kind: &'static str) -> OwnedLink {
        OwnedLink {
            kind,
            table: None,
            default_mtu: 1500,
        }
    }

    /// The kernel's name of the link kind (`IFLA_INFO_KIND`).
    pub fn kernel_kind(&self) -> &'static str {
        self.kind
    }
}

/// Context for decoding a kind's data: the value's key, logical name and host name.
pub(in crate::model) struct KindContext<'a> {
    pub key: &'a str,
    pub name: &'a str,
    pub host_if_name: &'a str,
}

impl LinkKind {
    /// The `type` name of the kind (`VETH`, ...).
    pub fn type_name(&self) -> &'static str {
        INTERFACE_TYPES[self.type_number()]
    }

    /// The routing table of a VRF device.
    pub fn vrf_table(&self) -> Option<u32> {
        match self.lifecycle() {
            Lifecycle::Owned(owned) => owned.table,
            _ => None,
        }
    }

    /// True when the agent creates and deletes the link (a VETH end or an owned single
    /// link); false for links it finds (EXISTING, LOOPBACK, AUTO_TAP).
    pub fn created_by_agent(&self) -> bool {
        matches!(
            self.lifecycle(),
            Lifecycle::Pair { .. } | Lifecycle::Owned(_)
        )
    }

    /// The host name every link of this kind has (`lo`), if it is fixed.
    pub fn fixed_host_name(&self) -> Option<&'static str> {
        FIXED_HOST_NAMES[self.type_number()]
    }

    /// The logical name of the other end of a VETH pair.
    pub fn peer(&self) -> Option<&str> {
        match self.lifecycle() {
            Lifecycle::Pair { peer } => Some(peer),
            _ => None,
        }
    }

    /// Decodes the kind of number `type_number` and its own fields of `obj`; the fields of
    /// other kinds must be absent (or zero values).
    pub(super) fn decode(
        type_number: usize,
        obj: &Object,
        cx: &KindContext,
    ) -> Result<LinkKind, ModelError> {
        for (other, given) in GIVEN.iter().enumerate().filter(|(n, _)| *n != type_number) {
            if let Some(field) = given(obj)? {
                return Err(obj.error(
                    field,
                    format!(
                        "is set but `type` is {} ({type_number}); set `type` to {} ({other})",
                        INTERFACE_TYPES[type_number], INTERFACE_TYPES[other]
                    ),
                ));
            }
        }
        LinkKind::decode_kind(type_number, obj, cx)
    }

    /// Writes the kind's data into a canonical JSON object (`type` included unless it is
    /// the default, VETH).
    pub(super) fn encode(&self, out: &mut Map<String, Value>) {
        if self.type_number() != 0 {
            out.insert("type".into(), Value::from(self.type_name()));
        }
        self.encode_kind(out);
    }
}
