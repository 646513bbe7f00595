//! Kernel events of one namespace waiting for the agent to take them. While the agent is
//! busy (a bulk creation makes dozens of events per link: creation, alias, up, carrier,
//! addresses, the routes the kernel adds for them), only the latest event of each object is
//! kept, which is all the agent looks at. So the events waiting take memory in proportion
//! to the objects that changed, not to the changes, and the agent folds fewer of them.

use crate::kernel::{EventSubject, KernelEvent};
use std::collections::hash_map::Entry;
use std::collections::HashMap;

/// Events not taken yet: at most one per object, in the order each object first changed.
#[derive(Debug, Default)]
pub(crate) struct EventBacklog {
    events: Vec<KernelEvent>,
    /// Where each object's event is in `events`.
    positions: HashMap<EventSubject, usize>,
}

impl EventBacklog {
    /// Adds `event`, replacing the waiting event about the same object. Lost events
    /// ([`KernelEvent::Overrun`]) make the namespace be read in full, which covers every
    /// other event until the agent takes them; those are dropped.
    pub(crate) fn push(&mut self, event: KernelEvent) {
        if self.overrun() {
            return;
        }
        if event == KernelEvent::Overrun {
            self.positions.clear();
            self.events.clear();
            self.events.push(event);
            return;
        }
        match self.positions.entry(event.subject()) {
            Entry::Occupied(at) => self.events[*at.get()] = event,
            Entry::Vacant(slot) => {
                slot.insert(self.events.len());
                self.events.push(event);
            }
        }
    }

    /// True when events were lost since the agent last took them.
    pub(crate) fn overrun(&self) -> bool {
        self.events.first() == Some(&KernelEvent::Overrun)
    }

    /// True when nothing waits.
    pub(crate) fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// Takes the waiting events, leaving the backlog empty (and its memory freed).
    pub(crate) fn take(&mut self) -> Vec<KernelEvent> {
        self.positions = HashMap::new();
        std::mem::take(&mut self.events)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::KernelLink;
    use proptest::prelude::*;

    fn link(ifindex: u32, mtu: u32) -> KernelEvent {
        KernelEvent::Link(KernelLink {
            mtu,
            ..KernelLink::veth(ifindex, &format!("l{ifindex}"))
        })
    }

    fn address(ifindex: u32, last: u8, added: bool) -> KernelEvent {
        KernelEvent::Address {
            ifindex,
            net: format!("10.0.0.{last}/24").parse().unwrap(),
            added,
        }
    }

    fn backlog_of(events: impl IntoIterator<Item = KernelEvent>) -> Vec<KernelEvent> {
        let mut b = EventBacklog::default();
        events.into_iter().for_each(|e| b.push(e));
        b.take()
    }

    #[test]
    fn keeps_the_latest_event_of_each_object_where_it_first_changed() {
        let got = backlog_of([
            link(1, 1500),
            address(1, 1, true),
            link(2, 1500),
            link(1, 9000),
            address(1, 1, false),
            KernelEvent::LinkGone { ifindex: 2 },
        ]);
        assert_eq!(
            got,
            vec![
                link(1, 9000),
                address(1, 1, false),
                KernelEvent::LinkGone { ifindex: 2 }
            ]
        );
    }

    #[test]
    fn lost_events_replace_everything_until_taken() {
        let mut b = EventBacklog::default();
        b.push(link(1, 1500));
        b.push(KernelEvent::Overrun);
        b.push(link(2, 1500));
        assert!(b.overrun());
        assert_eq!(b.take(), vec![KernelEvent::Overrun]);
        assert!(b.is_empty() && !b.overrun());
        b.push(link(2, 1500));
        assert_eq!(b.take(), vec![link(2, 1500)]);
    }

    fn any_event() -> impl Strategy<Value = KernelEvent> {
        prop_oneof![
            8 => (1u32..4, 1u32..3).prop_map(|(i, m)| link(i, m)),
            2 => (1u32..4).prop_map(|ifindex| KernelEvent::LinkGone { ifindex }),
            6 => (1u32..4, 1u8..3, any::<bool>()).prop_map(|(i, a, add)| address(i, a, add)),
            1 => Just(KernelEvent::Overrun),
        ]
    }

    proptest! {
        /// What the agent reads from a backlog (the latest event of each object, or that
        /// events were lost) is what it would read from every event in order.
        #[test]
        fn a_backlog_tells_what_the_whole_sequence_tells(
            events in proptest::collection::vec(any_event(), 0..40),
        ) {
            let got = backlog_of(events.clone());
            if events.contains(&KernelEvent::Overrun) {
                prop_assert_eq!(got, vec![KernelEvent::Overrun]);
            } else {
                let mut latest: HashMap<EventSubject, &KernelEvent> = HashMap::new();
                for e in &events {
                    latest.insert(e.subject(), e);
                }
                prop_assert_eq!(got.len(), latest.len());
                for e in &got {
                    prop_assert_eq!(Some(&e), latest.get(&e.subject()));
                }
            }
        }
    }
}
