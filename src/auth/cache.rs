//! A bounded cache of verified tokens, so a signature (160 µs for ES256) is checked once per
//! token instead of once per request.
//!
//! - Keyed by the SHA-256 of the token (SHA-NI makes that ~0.3 µs for a Supabase token); the
//!   raw token is never a key. The entry keeps the verified [`AuthUser`], which carries the
//!   token to forward upstream; a hit also compares that token with the presented one, so
//!   only the exact bytes that were verified can ever hit.
//! - Valid until the token's own `exp`: every hit applies the same expiry rule as a cold
//!   verification (`exp + leeway` against the clock), nothing is trusted beyond it.
//! - Tagged with the JWKS generation at verification time: a key set that changes (a key
//!   removed or added) makes every older entry a miss, so a token signed by a withdrawn key
//!   goes back through full verification (and fails).
//! - Only tokens that passed verification are inserted; a tampered or unknown token costs a
//!   hash and a lookup, never an entry.
//! - Bounded: `capacity` entries over a few shards; a full shard first drops expired and
//!   stale entries, then arbitrary ones (the map's order is random), an eighth at a time,
//!   so eviction is amortised O(1) and a flood of distinct tokens cannot grow memory.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use parking_lot::RwLock;
use sha2::{Digest as _, Sha256};

use super::user::AuthUser;

/// SHA-256 of a token.
pub type TokenDigest = [u8; 32];

pub fn digest(token: &str) -> TokenDigest {
    Sha256::digest(token.as_bytes()).into()
}

/// The key is already a uniform hash: use 8 of its bytes instead of hashing it again.
#[derive(Default)]
struct PrefixHasher(u64);

impl Hasher for PrefixHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // `[u8; 32]` hashes as its bytes (after nothing else): take the first eight.
        let mut word = [0u8; 8];
        let n = bytes.len().min(8);
        word[..n].copy_from_slice(&bytes[..n]);
        self.0 ^= u64::from_le_bytes(word);
    }
}

type Shard = HashMap<TokenDigest, Entry, BuildHasherDefault<PrefixHasher>>;

struct Entry {
    user: Arc<AuthUser>,
    generation: u64,
}

const SHARDS: usize = 8;

pub struct TokenCache {
    shards: Box<[RwLock<Shard>]>,
    per_shard: usize,
    leeway: i64,
}

impl TokenCache {
    /// `capacity` 0 disables the cache. `leeway_secs` is the verifier's clock-skew allowance,
    /// applied to `exp` exactly as a cold verification applies it.
    pub fn new(capacity: usize, leeway_secs: u64) -> Self {
        let per_shard = capacity.div_ceil(SHARDS);
        let shards = (0..if capacity == 0 { 0 } else { SHARDS })
            .map(|_| RwLock::new(Shard::default()))
            .collect();
        Self {
            shards,
            per_shard,
            leeway: i64::try_from(leeway_secs).unwrap_or(i64::MAX),
        }
    }

    pub fn enabled(&self) -> bool {
        !self.shards.is_empty()
    }

    fn shard(&self, key: &TokenDigest) -> &RwLock<Shard> {
        // Bytes 8.. pick the shard; bytes ..8 are the in-shard hash.
        &self.shards[usize::from(key[8]) % self.shards.len()]
    }

    fn live(&self, entry: &Entry, generation: u64, now: i64) -> bool {
        entry.generation == generation && now <= entry.user.expires_at.saturating_add(self.leeway)
    }

    /// The verified user for `token`, if it was verified under key-set `generation` and has
    /// not expired at `now` (Unix seconds). An expired or stale entry is removed.
    pub fn get(
        &self,
        key: &TokenDigest,
        token: &str,
        generation: u64,
        now: i64,
    ) -> Option<AuthUser> {
        if !self.enabled() {
            return None;
        }
        let shard = self.shard(key);
        {
            let map = shard.read();
            let entry = map.get(key)?;
            if entry.user.token() == token && self.live(entry, generation, now) {
                return Some(AuthUser::clone(&entry.user));
            }
        }
        let mut map = shard.write();
        if map.get(key).is_some_and(|e| !self.live(e, generation, now)) {
            map.remove(key);
        }
        None
    }

    /// Remembers a user whose token just passed full verification under `generation`.
    pub fn insert(&self, key: TokenDigest, user: &AuthUser, generation: u64, now: i64) {
        if !self.enabled() {
            return;
        }
        let mut map = self.shard(&key).write();
        if map.len() >= self.per_shard && !map.contains_key(&key) {
            self.make_room(&mut map, generation, now);
        }
        map.insert(
            key,
            Entry {
                user: Arc::new(user.clone()),
                generation,
            },
        );
    }

    /// Frees at least an eighth of a full shard: expired and stale entries first, then
    /// arbitrary ones.
    fn make_room(&self, map: &mut Shard, generation: u64, now: i64) {
        map.retain(|_, e| self.live(e, generation, now));
        let target = self.per_shard - (self.per_shard / 8).max(1);
        if map.len() > target {
            let excess = map.len() - target;
            let victims: Vec<TokenDigest> = map.keys().take(excess).copied().collect();
            for key in victims {
                map.remove(&key);
            }
        }
    }

    /// Entries held (all shards).
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.read().len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most entries this cache will hold.
    pub fn capacity(&self) -> usize {
        self.per_shard * self.shards.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn user(token: &str, exp: i64) -> AuthUser {
        AuthUser::for_tests(Uuid::nil(), token, exp)
    }

    #[test]
    fn a_hit_needs_the_same_token_generation_and_an_unexpired_exp() {
        let cache = TokenCache::new(64, 30);
        let token = "a.b.c";
        let key = digest(token);
        cache.insert(key, &user(token, 1_000), 7, 900);
        assert!(cache.get(&key, token, 7, 900).is_some());
        // Expiry on the clock, with the verifier's leeway and nothing more.
        assert!(cache.get(&key, token, 7, 1_030).is_some());
        assert!(cache.get(&key, token, 7, 1_031).is_none());
        assert!(cache.is_empty(), "an expired entry is dropped");
    }

    #[test]
    fn a_new_key_set_generation_misses() {
        let cache = TokenCache::new(64, 0);
        let key = digest("t");
        cache.insert(key, &user("t", i64::MAX), 1, 0);
        assert!(cache.get(&key, "t", 2, 0).is_none());
        assert!(cache.get(&key, "t", 1, 0).is_none(), "stale entry removed");
    }

    #[test]
    fn a_different_token_under_the_same_key_never_hits() {
        let cache = TokenCache::new(64, 0);
        let key = digest("good");
        cache.insert(key, &user("good", i64::MAX), 1, 0);
        // Even a (hypothetical) digest collision needs the exact verified bytes.
        assert!(cache.get(&key, "goodX", 1, 0).is_none());
        assert!(cache.get(&digest("goodX"), "goodX", 1, 0).is_none());
        assert!(cache.get(&key, "good", 1, 0).is_some());
    }

    #[test]
    fn the_cache_stays_bounded_under_a_flood_of_distinct_tokens() {
        let cache = TokenCache::new(100, 0);
        for i in 0..10_000 {
            let token = format!("token-{i}");
            cache.insert(digest(&token), &user(&token, i64::MAX), 1, 0);
            assert!(cache.len() <= cache.capacity());
        }
        assert!(cache.capacity() <= 104);
        assert!(
            cache.len() > 50,
            "eviction frees room, it does not empty the cache"
        );
        let last = "token-9999";
        assert!(cache.get(&digest(last), last, 1, 0).is_some());
    }

    #[test]
    fn a_disabled_cache_holds_nothing() {
        let cache = TokenCache::new(0, 0);
        cache.insert(digest("t"), &user("t", i64::MAX), 1, 0);
        assert!(cache.get(&digest("t"), "t", 1, 0).is_none());
        assert_eq!(cache.len(), 0);
    }
}
