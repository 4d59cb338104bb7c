//! The shared cache of carts as last read.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::store::Snapshot;
use crate::types::CartId;

/// Carts as last read, shared by every [`Cart`](crate::Cart) of one [`Carts`](crate::Carts): see
/// [`CartsBuilder::cache_carts`](crate::CartsBuilder::cache_carts). Every change made through the `Carts` drops the entries it
/// touched; a generation counter keeps a read that raced a change from storing what it read.
#[derive(Default)]
pub(crate) struct SnapshotCache {
    map: Mutex<(u64, HashMap<CartId, Arc<Snapshot>>)>,
}

/// Entries kept before the cache starts over.
const CACHE_LIMIT: usize = 100_000;

impl SnapshotCache {
    fn lock(&self) -> MutexGuard<'_, (u64, HashMap<CartId, Arc<Snapshot>>)> {
        self.map
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn get(&self, id: CartId) -> (u64, Option<Arc<Snapshot>>) {
        let guard = self.lock();
        (guard.0, guard.1.get(&id).cloned())
    }

    pub(crate) fn put(&self, id: CartId, snap: Arc<Snapshot>, generation: u64) {
        let mut guard = self.lock();
        if guard.0 == generation {
            if guard.1.len() >= CACHE_LIMIT {
                guard.1.clear();
            }
            guard.1.insert(id, snap);
        }
    }

    pub(crate) fn forget(&self, ids: &[CartId]) {
        let mut guard = self.lock();
        guard.0 += 1;
        for id in ids {
            guard.1.remove(id);
        }
    }

    pub(crate) fn clear(&self) {
        let mut guard = self.lock();
        guard.0 += 1;
        guard.1.clear();
    }
}
