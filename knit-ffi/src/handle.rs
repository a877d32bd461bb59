//! Opaque handles. What C holds is never a pointer to a Rust object: it is a key, an address
//! inside a reserved inaccessible range of address space, looked up in a registry of live
//! objects. So a NULL, forged, freed or wrong-type handle is refused with `INVALID_ARGUMENT`
//! rather than dereferenced, and a handle freed on one thread while another thread uses it
//! stays valid for that use (the registry hands out `Arc`s).
//!
//! Keys are never reused until the range wraps (2^26 handles later), so a stale handle does not
//! silently reach a newer object. They are real, non-dereferenceable addresses, never small
//! integers, which keeps garbage-collected bindings (Go checks pointer values) happy.

use std::any::Any;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, PoisonError, RwLock};

use knit_core::ErrorCode;

use crate::status::{Failure, FfiResult};

/// A Rust object that C holds through a handle of type `*mut Self::Opaque`.
pub(crate) trait Object: Any + Send + Sync {
    /// The incomplete C type of the handle.
    type Opaque;
    /// The C type name, for messages.
    const KIND: &'static str;
}

/// Bytes of address space reserved for keys.
const RESERVED_BYTES: usize = 1 << 30;
/// Distance between two keys (keeps them aligned like real allocations).
const KEY_STRIDE: usize = 16;

struct Entry {
    kind: &'static str,
    object: Arc<dyn Any + Send + Sync>,
}

/// Keys are distinct multiples of 16: multiplying by an odd constant spreads them well enough.
#[derive(Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8 | u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_usize(&mut self, key: usize) {
        self.0 = (key as u64 >> 4).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

struct Registry {
    /// Start of the reserved range.
    base: usize,
    /// Count of keys handed out; the next key is `base + (next % slots) * KEY_STRIDE`.
    next: AtomicUsize,
    live: RwLock<HashMap<usize, Entry, BuildHasherDefault<KeyHasher>>>,
}

fn registry() -> FfiResult<&'static Registry> {
    static REGISTRY: OnceLock<Result<Registry, String>> = OnceLock::new();
    REGISTRY
        .get_or_init(|| {
            // PROT_NONE, no reserve: costs address space only. Never unmapped: keys must stay
            // unique for the life of the process.
            // SAFETY: an anonymous mapping at an address the kernel chooses aliases nothing.
            let base = unsafe {
                rustix::mm::mmap_anonymous(
                    std::ptr::null_mut(),
                    RESERVED_BYTES,
                    rustix::mm::ProtFlags::empty(),
                    rustix::mm::MapFlags::PRIVATE | rustix::mm::MapFlags::NORESERVE,
                )
            }
            .map_err(|e| format!("reserving address space for handles: {e}"))?;
            Ok(Registry {
                base: base as usize,
                next: AtomicUsize::new(0),
                live: RwLock::default(),
            })
        })
        .as_ref()
        .map_err(|e| Failure::new(ErrorCode::OsError, e.clone()))
}

/// Registers `object` and returns the handle C will hold.
pub(crate) fn register<T: Object>(object: T) -> FfiResult<*mut T::Opaque> {
    register_arc(Arc::new(object))
}

/// Registers an object that is already shared.
pub(crate) fn register_arc<T: Object>(object: Arc<T>) -> FfiResult<*mut T::Opaque> {
    let reg = registry()?;
    let slots = RESERVED_BYTES / KEY_STRIDE;
    let mut live = reg.live.write().unwrap_or_else(PoisonError::into_inner);
    if live.len() >= slots {
        return Err(Failure::new(
            ErrorCode::OsError,
            "too many live Knit handles",
        ));
    }
    // After a wrap, skip keys that are still live (bounded: fewer than `slots` are).
    let key = loop {
        let n = reg.next.fetch_add(1, Ordering::Relaxed) % slots;
        let key = reg.base + n * KEY_STRIDE;
        if !live.contains_key(&key) {
            break key;
        }
    };
    live.insert(
        key,
        Entry {
            kind: T::KIND,
            object,
        },
    );
    Ok(key as *mut T::Opaque)
}

/// The live object behind `handle`, or `INVALID_ARGUMENT` naming what is wrong.
pub(crate) fn get<T: Object>(handle: *const T::Opaque) -> FfiResult<Arc<T>> {
    let key = check_null::<T>(handle)?;
    let reg = registry()?;
    let live = reg.live.read().unwrap_or_else(PoisonError::into_inner);
    downcast::<T>(key, live.get(&key))
}

/// Removes `handle` from the registry (freeing it) and returns its object; the object itself
/// is dropped when the last user lets go of it.
pub(crate) fn remove<T: Object>(handle: *const T::Opaque) -> FfiResult<Arc<T>> {
    let key = check_null::<T>(handle)?;
    let reg = registry()?;
    let mut live = reg.live.write().unwrap_or_else(PoisonError::into_inner);
    // Checked before removing, so that a wrong-type free leaves the other object alone.
    downcast::<T>(key, live.get(&key))?;
    downcast::<T>(key, live.remove(&key).as_ref())
}

/// Number of live handles of every type.
pub(crate) fn live_count() -> usize {
    registry().map_or(0, |reg| {
        reg.live
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    })
}

fn check_null<T: Object>(handle: *const T::Opaque) -> FfiResult<usize> {
    if handle.is_null() {
        return Err(Failure::invalid(format!("the {} handle is NULL", T::KIND)));
    }
    Ok(handle as usize)
}

fn downcast<T: Object>(key: usize, entry: Option<&Entry>) -> FfiResult<Arc<T>> {
    match entry {
        None => Err(Failure::invalid(format!(
            "{key:#x} is not a live {} handle (never created, or already freed)",
            T::KIND
        ))),
        Some(e) => Arc::clone(&e.object).downcast::<T>().map_err(|_| {
            Failure::invalid(format!(
                "{key:#x} is a {} handle, not a {}",
                e.kind,
                T::KIND
            ))
        }),
    }
}

/// The number of live handles of every type (pools, workers, configs, handler sets, regions,
/// responses, tickets, channels): a leak check. A program that freed everything it created
/// sees 0.
///
/// Thread safety: safe from any thread.
#[no_mangle]
pub extern "C" fn knit_handle_count() -> usize {
    crate::status::guard_value(0, live_count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Apple(u32);
    struct AppleOpaque;
    impl Object for Apple {
        type Opaque = AppleOpaque;
        const KIND: &'static str = "apple";
    }
    #[derive(Debug)]
    struct Pear;
    struct PearOpaque;
    impl Object for Pear {
        type Opaque = PearOpaque;
        const KIND: &'static str = "pear";
    }

    #[test]
    fn handles_resolve_until_removed_and_never_across_types() {
        let a = register(Apple(7)).unwrap();
        let p = register(Pear).unwrap();
        assert_ne!(a as usize, p as usize);
        assert_eq!(get::<Apple>(a).unwrap().0, 7);

        // A handle of another type, cast, is refused and left alive.
        let wrong = get::<Apple>(p.cast()).unwrap_err();
        assert_eq!(wrong.code, ErrorCode::InvalidArgument as u32);
        assert!(
            wrong.message.contains("is a pear handle, not a apple"),
            "{}",
            wrong.message
        );
        assert!(remove::<Apple>(p.cast()).is_err());
        assert!(get::<Pear>(p).is_ok());

        let held = get::<Apple>(a).unwrap();
        assert_eq!(remove::<Apple>(a).unwrap().0, 7);
        // Freed: refused, but a user that held it still has it.
        let gone = get::<Apple>(a).unwrap_err();
        assert!(
            gone.message.contains("not a live apple handle"),
            "{}",
            gone.message
        );
        assert!(remove::<Apple>(a).is_err(), "double free is refused");
        assert_eq!(held.0, 7);
        remove::<Pear>(p).unwrap();
    }

    #[test]
    fn null_and_forged_handles_are_refused() {
        let null = get::<Apple>(std::ptr::null()).unwrap_err();
        assert_eq!(null.message, "the apple handle is NULL");
        let forged = get::<Apple>(0x1234 as *const AppleOpaque).unwrap_err();
        assert_eq!(forged.code, ErrorCode::InvalidArgument as u32);
    }

    #[test]
    fn keys_are_not_reused_after_free() {
        let first = register(Apple(1)).unwrap();
        remove::<Apple>(first).unwrap();
        let second = register(Apple(2)).unwrap();
        assert_ne!(first as usize, second as usize);
        assert!(get::<Apple>(first).is_err());
        remove::<Apple>(second).unwrap();
    }
}
