//! What the hot paths read on every request (policies, connections), kept in memory for a
//! while (`ingest.cache_ttl`): a change made through this process clears it at once, one made
//! through another replica is seen within the time.
//!
//! A read that may have raced with a change is not kept: its [`Generation`] is taken before
//! the read begins — before the transaction it reads in, for a transaction that holds a
//! snapshot (`repeatable read`, SQLite's deferred one after its first read) — and what it read
//! is kept only if nothing was cleared since. Taken later, a snapshot from before a change
//! would be read after the clear and kept.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct Cache<K, V> {
    ttl: Duration,
    state: Mutex<State<K, V>>,
}

struct State<K, V> {
    generation: u64,
    entries: HashMap<K, (Instant, V)>,
}

/// How many times a cache was cleared, when a read began.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Generation(u64);

impl<K: Eq + Hash, V: Clone> Cache<K, V> {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            state: Mutex::new(State {
                generation: 0,
                entries: HashMap::new(),
            }),
        }
    }

    /// To be taken before the read whose result may be kept begins.
    pub fn generation(&self) -> Generation {
        Generation(self.lock().generation)
    }

    /// The value of `key`, when it was kept less than `ttl` ago.
    pub fn get(&self, key: &K) -> Option<V> {
        self.lock()
            .entries
            .get(key)
            .filter(|(at, _)| at.elapsed() < self.ttl)
            .map(|(_, v)| v.clone())
    }

    /// Keeps what a read that began at `since` found, unless the cache was cleared since.
    pub fn keep(&self, since: Generation, key: K, value: V) {
        let mut state = self.lock();
        if state.generation == since.0 && !self.ttl.is_zero() {
            state.entries.insert(key, (Instant::now(), value));
        }
    }

    /// Forgets everything kept: something changed (called once the change committed).
    pub fn clear(&self) {
        let mut state = self.lock();
        state.generation += 1;
        state.entries.clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State<K, V>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_begun_before_a_clear_is_not_kept() {
        let cache = Cache::new(Duration::from_secs(60));
        let before = cache.generation();
        cache.clear();
        cache.keep(before, "k", 1);
        assert_eq!(cache.get(&"k"), None);
        cache.keep(cache.generation(), "k", 2);
        assert_eq!(cache.get(&"k"), Some(2));
        cache.clear();
        assert_eq!(cache.get(&"k"), None);
    }

    #[test]
    fn what_was_kept_expires_and_a_zero_ttl_keeps_nothing() {
        let cache = Cache::new(Duration::from_millis(20));
        cache.keep(cache.generation(), 1, "a");
        assert_eq!(cache.get(&1), Some("a"));
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(cache.get(&1), None);
        let off = Cache::new(Duration::ZERO);
        off.keep(off.generation(), 1, "a");
        assert_eq!(off.get(&1), None);
    }
}
