//! AUTO_TAP: a TAP another program makes in the agent's own namespace under a temporary name.
//! The agent takes it over ([`Op::AdoptLink`]: marked with the alias
//! `/vnf-agent/<label>/<name>/<temporary name>`, moved into the item's namespace and renamed),
//! configures it like a link of its own, and gives it back ([`Op::ReturnLink`]) wherever it
//! would delete one: the TAP goes back to the agent's namespace under its temporary name,
//! without addresses or alias. It never carries the agent's link group, so no group deletion
//! can take it along.

use super::ops::{EndSpec, Op};
use super::state::{Claim, IfaceState, RefState, Work};
use super::{ItemStatus, Scheduler};
use crate::kernel::{KernelLink, NsId};
use crate::model::{Interface, NamespaceRef};
use rustc_hash::FxHashMap as HashMap;
use std::time::Duration;

/// The kernel's kind of a TAP (`IFLA_INFO_KIND`).
const TAP_KIND: &str = "tun";

impl Scheduler {
    /// The temporary name of a link the agent took over (a TAP whose alias carries a second
    /// part), if it is one.
    pub(super) fn adopted_temp_name<'l>(&self, link: &'l KernelLink) -> Option<&'l str> {
        let (_, temp) = self.keys.split_link_alias(link.alias.as_deref()?)?;
        (link.kind == TAP_KIND && !temp.is_empty()).then_some(temp)
    }

    /// The AUTO_TAP `name` (`i`, to be in namespace `ns`) as configured: its TAP changed in
    /// place when the agent holds it there, taken over when it waits under its temporary
    /// name, else pending; a TAP it holds elsewhere is given back first.
    pub(super) fn plan_adopted<'a>(
        &'a self,
        (name, ns, i): (&'a str, NsId, &'a Interface),
        temp_name: &str,
        master: u32,
        claims: &HashMap<&'a str, Vec<Claim<'a>>>,
        work: &mut Work<'a>,
    ) -> ItemStatus {
        let claimed = claims.get(name).map(Vec::as_slice).unwrap_or_default();
        let (mut fit, stale): (Vec<&Claim>, Vec<&Claim>) = claimed.iter().partition(|c| {
            c.ns == ns && c.link.kind == TAP_KIND && c.alias_peer == Some(temp_name)
        });
        work.deletes.extend(stale.iter().map(|c| (c.ns, c.link)));
        work.deletes
            .extend(fit.iter().skip(1).map(|c| (c.ns, c.link)));
        fit.truncate(1);
        if let Some(kept) = fit.first() {
            return self.plan_held(name, kept, i, master, work);
        }
        if !stale.is_empty() {
            work.ifaces.insert(name, IfaceState::Busy);
            return ItemStatus::Pending {
                reason: format!("giving its TAP back as `{temp_name}` before taking it over again"),
            };
        }
        let waiting = |reason: String, work: &mut Work<'a>| {
            work.ifaces.insert(name, IfaceState::Absent(reason.clone()));
            ItemStatus::Pending { reason }
        };
        let Some((own, tap)) = self.waiting_tap(temp_name) else {
            return waiting(
                format!("waiting for a TAP named `{temp_name}` in the agent's own namespace"),
                work,
            );
        };
        if tap.kind != TAP_KIND {
            let kind = if tap.kind.is_empty() {
                "link of unknown kind"
            } else {
                &tap.kind
            };
            return waiting(
                format!("`{temp_name}` in the agent's own namespace is a {kind}, not a TAP"),
                work,
            );
        }
        let end = EndSpec {
            ns,
            name: i.host_if_name.clone(),
            alias: self.keys.link_alias(&i.name, temp_name),
            mtu: i.mtu,
            mac: i.phys_address,
            up: i.enabled,
            addresses: i.ip_addresses.clone(),
            master,
        };
        work.creates.push(Op::AdoptLink {
            from: own,
            ifindex: tap.ifindex,
            end,
        });
        ItemStatus::Applying
    }

    /// The TAP the agent holds for `name`, changed in place to match `i` if it differs.
    fn plan_held<'a>(
        &'a self,
        name: &'a str,
        kept: &Claim<'a>,
        i: &'a Interface,
        master: u32,
        work: &mut Work<'a>,
    ) -> ItemStatus {
        match self.link_changes(kept.link, i, master) {
            Some(changes) => {
                work.link_writes
                    .insert((kept.ns, kept.link.ifindex), i.name.clone());
                work.updates.push(Op::UpdateLink {
                    ns: kept.ns,
                    ifindex: kept.link.ifindex,
                    changes,
                });
                ItemStatus::Applying
            }
            None => {
                let usable = IfaceState::Usable {
                    ns: kept.ns,
                    link: kept.link,
                };
                work.ifaces.insert(name, usable);
                ItemStatus::Applied
            }
        }
    }

    /// The link named `temp_name` in the agent's own namespace that no one has taken over,
    /// with that namespace, if it is there.
    fn waiting_tap(&self, temp_name: &str) -> Option<(NsId, &KernelLink)> {
        let Some(RefState::Resolved(own)) = self.refs.get(&NamespaceRef::Default) else {
            return None;
        };
        let found = self.foreign.get(own)?;
        let tap = found.links.values().find(|l| l.name == temp_name)?;
        Some((*own, tap))
    }

    /// Splits the links a plan removes into those to delete and the operations that give
    /// back the links the agent took over (none while a give-back waits for its retry, or
    /// while the agent's own namespace is not resolved).
    pub(super) fn return_ops<'a>(
        &self,
        mut links: Vec<(NsId, &'a KernelLink)>,
        now: Duration,
    ) -> (Vec<(NsId, &'a KernelLink)>, Vec<Op>) {
        let own = match self.refs.get(&NamespaceRef::Default) {
            Some(RefState::Resolved(own)) => Some(*own),
            _ => None,
        };
        links.sort_by_key(|(ns, l)| (*ns, l.ifindex));
        links.dedup_by_key(|(ns, l)| (*ns, l.ifindex));
        let mut deletes = Vec::with_capacity(links.len());
        let mut returns: Vec<Op> = Vec::new();
        for (ns, link) in links {
            let Some(temp_name) = self.adopted_temp_name(link) else {
                deletes.push((ns, link));
                continue;
            };
            let Some(to) = own else { continue };
            if self.link_waiting(ns, link.ifindex, now) {
                continue;
            }
            returns.push(Op::ReturnLink {
                ns,
                ifindex: link.ifindex,
                name: link.name.clone(),
                temp_name: temp_name.to_string(),
                to,
                addresses: link.addresses.clone(),
            });
        }
        (deletes, returns)
    }
}
