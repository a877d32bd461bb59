//! The calls outstanding on one worker, by request id, without hashing: CALL-2 keeps the ids
//! of outstanding calls distinct modulo `inflight_max`, so a table of `inflight_max` entries
//! indexed by `id mod inflight_max` holds them all. Each entry keeps its id and is only found
//! by that exact id. An id whose entry is taken all the same (one the table still holds from
//! an earlier epoch of the worker, whose ids start again at 1) goes to a small overflow list,
//! so the table behaves as a map whatever ids it is given.

use super::inner::Pending;

/// Outstanding calls by request id.
#[derive(Debug, Default)]
pub(crate) struct PendingTable {
    /// `id mod len` → the call with that id; `len` is a power of two (or 0 before
    /// [`PendingTable::new`]: everything then goes to `overflow`).
    slots: Vec<Option<(u64, Pending)>>,
    /// Calls whose entry was taken by another id (rare: see the module's comment).
    overflow: Vec<(u64, Pending)>,
    /// `slots.len() - 1` (0 for an empty table).
    mask: u64,
}

impl PendingTable {
    /// A table with one entry per possible outstanding call (`inflight_max`, HDR-6: a power
    /// of two; any other value is rounded up).
    pub(crate) fn new(inflight_max: u32) -> Self {
        let len = inflight_max
            .max(1)
            .checked_next_power_of_two()
            .unwrap_or(1 << 16);
        PendingTable {
            slots: (0..len).map(|_| None).collect(),
            overflow: Vec::new(),
            mask: u64::from(len - 1),
        }
    }

    fn index(&self, id: u64) -> usize {
        // Below `slots.len()` (or 0 for an empty table, where `get` finds nothing).
        usize::try_from(id & self.mask).unwrap_or(usize::MAX)
    }

    /// Adds call `id`, returning the call it replaces (the same id registered twice).
    pub(crate) fn insert(&mut self, id: u64, call: Pending) -> Option<Pending> {
        let index = self.index(id);
        match self.slots.get_mut(index) {
            Some(entry @ None) => {
                *entry = Some((id, call));
                None
            }
            Some(Some((held, old))) if *held == id => Some(std::mem::replace(old, call)),
            _ => {
                let old = self.remove_overflow(id);
                self.overflow.push((id, call));
                old
            }
        }
    }

    /// Removes and returns call `id`.
    pub(crate) fn remove(&mut self, id: u64) -> Option<Pending> {
        let index = self.index(id);
        if let Some(entry) = self.slots.get_mut(index) {
            if entry.as_ref().is_some_and(|(held, _)| *held == id) {
                return entry.take().map(|(_, call)| call);
            }
        }
        self.remove_overflow(id)
    }

    fn remove_overflow(&mut self, id: u64) -> Option<Pending> {
        let at = self.overflow.iter().position(|(held, _)| *held == id)?;
        Some(self.overflow.swap_remove(at).1)
    }

    /// Call `id`, if outstanding.
    pub(crate) fn get(&self, id: u64) -> Option<&Pending> {
        match self.slots.get(self.index(id)) {
            Some(Some((held, call))) if *held == id => Some(call),
            _ => self
                .overflow
                .iter()
                .find(|(held, _)| *held == id)
                .map(|(_, call)| call),
        }
    }

    /// True when call `id` is outstanding.
    pub(crate) fn contains_key(&self, id: u64) -> bool {
        self.get(id).is_some()
    }

    /// Every outstanding call with its id, in no particular order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&u64, &Pending)> {
        self.slots
            .iter()
            .filter_map(|entry| entry.as_ref().map(|(id, call)| (id, call)))
            .chain(self.overflow.iter().map(|(id, call)| (id, call)))
    }

    /// The ids of every outstanding call.
    pub(crate) fn ids(&self) -> Vec<u64> {
        self.iter().map(|(id, _)| *id).collect()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::{Pending, PendingTable};
    use crate::pool::slot::CallSlot;

    fn call(deadline_ns: u64) -> Pending {
        Pending {
            slot: Arc::new(CallSlot::new()),
            deadline_ns,
            is_async: false,
        }
    }

    #[test]
    fn ids_that_share_an_entry_are_kept_apart() {
        let mut table = PendingTable::new(4);
        assert!(table.insert(1, call(10)).is_none());
        // 5 mod 4 = 1: the entry is taken, so it overflows, and both stay findable.
        assert!(table.insert(5, call(50)).is_none());
        assert_eq!(table.get(1).map(|p| p.deadline_ns), Some(10));
        assert_eq!(table.get(5).map(|p| p.deadline_ns), Some(50));
        assert!(!table.contains_key(9));
        let mut ids = table.ids();
        ids.sort_unstable();
        assert_eq!(ids, [1, 5]);
        assert_eq!(table.remove(1).map(|p| p.deadline_ns), Some(10));
        assert!(table.remove(1).is_none());
        assert_eq!(table.remove(5).map(|p| p.deadline_ns), Some(50));
        assert!(table.ids().is_empty());
    }

    #[test]
    fn an_id_registered_again_replaces_its_call() {
        let mut table = PendingTable::new(2);
        assert!(table.insert(3, call(1)).is_none());
        assert_eq!(table.insert(3, call(2)).map(|p| p.deadline_ns), Some(1));
        assert!(table.insert(5, call(3)).is_none());
        assert_eq!(table.insert(5, call(4)).map(|p| p.deadline_ns), Some(3));
        assert_eq!(table.ids().len(), 2);
        assert_eq!(table.get(5).map(|p| p.deadline_ns), Some(4));
    }

    #[test]
    fn a_default_table_still_holds_calls() {
        // `std::mem::take` leaves a default table behind: it must work as a map too.
        let mut table = PendingTable::default();
        assert!(table.insert(7, call(7)).is_none());
        assert!(table.contains_key(7));
        assert_eq!(table.remove(7).map(|p| p.deadline_ns), Some(7));
        assert!(!table.contains_key(7));
    }
}
