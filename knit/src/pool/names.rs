//! A per-thread cache of function ids resolved by name (FN-2), so that a call does not lock a
//! worker's function table and search it every time. An entry is keyed by the worker slot's
//! process-unique id and the generation of its table (bumped by every HELLO, MBX-2): an id
//! found in one table stays right for as long as that table is the worker's, and a new HELLO
//! makes every older entry miss.

use std::cell::RefCell;

/// Entries kept per thread; the oldest goes first.
const ENTRIES: usize = 8;

struct Entry {
    slot: u64,
    generation: u64,
    name: Box<str>,
    id: u32,
}

thread_local! {
    static CACHE: RefCell<Vec<Entry>> = const { RefCell::new(Vec::new()) };
}

/// The id of `name` in generation `generation` of slot `slot`'s table, if this thread
/// resolved it before.
pub(crate) fn get(slot: u64, generation: u64, name: &str) -> Option<u32> {
    CACHE
        .try_with(|cache| {
            let cache = cache.try_borrow().ok()?;
            cache
                .iter()
                .find(|e| e.slot == slot && e.generation == generation && &*e.name == name)
                .map(|e| e.id)
        })
        .ok()
        .flatten()
}

/// Remembers that `name` is `id` in generation `generation` of slot `slot`'s table.
pub(crate) fn put(slot: u64, generation: u64, name: &str, id: u32) {
    let _ = CACHE.try_with(|cache| {
        let Ok(mut cache) = cache.try_borrow_mut() else {
            return;
        };
        // Older generations of this slot's table never hit again.
        cache.retain(|e| e.slot != slot || e.generation == generation);
        if cache.len() >= ENTRIES {
            cache.remove(0);
        }
        cache.push(Entry {
            slot,
            generation,
            name: name.into(),
            id,
        });
    });
}

#[cfg(test)]
mod tests {
    use super::{get, put, ENTRIES};

    #[test]
    fn a_name_is_found_only_for_its_slot_and_generation() {
        put(1_000, 3, "echo", 7);
        assert_eq!(get(1_000, 3, "echo"), Some(7));
        assert_eq!(get(1_000, 4, "echo"), None, "another HELLO");
        assert_eq!(get(1_001, 3, "echo"), None, "another worker");
        assert_eq!(get(1_000, 3, "echo2"), None, "another name");
    }

    #[test]
    fn a_new_generation_replaces_the_old_and_the_cache_stays_bounded() {
        put(2_000, 1, "f", 1);
        put(2_000, 2, "f", 2);
        assert_eq!(get(2_000, 1, "f"), None);
        assert_eq!(get(2_000, 2, "f"), Some(2));
        for i in 0..2 * ENTRIES as u64 {
            put(3_000 + i, 1, "g", 9);
        }
        assert_eq!(get(2_000, 2, "f"), None, "the oldest entries went");
        assert_eq!(get(3_000 + 2 * ENTRIES as u64 - 1, 1, "g"), Some(9));
    }
}
