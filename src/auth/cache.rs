//! A bounded cache of verified tokens, so a signature (160 µs for ES256) is checked once per
//! token instead of once per request. Storage and eviction are `quick_cache` (S3-FIFO over
//! sharded maps); what may be trusted on a hit is decided here.
//!
//! - Keyed by a 128-bit XXH3 of the token, seeded with a random number per process; the raw
//!   token is never a key. The entry keeps the verified [`AuthUser`], which carries the token
//!   to forward upstream; a hit also compares that token with the presented one, so only the
//!   exact bytes that were verified can ever hit. The key therefore only places an entry: a
//!   collision (which the secret seed keeps anyone from aiming for) would cost a miss, never
//!   another caller's identity, so a cryptographic hash buys nothing here. It was SHA-256:
//!   0.3 µs with SHA-NI, and where SHA-NI is absent (valgrind's CPU, older hosts) ~37 k
//!   instructions a request, a quarter of the whole GET under callgrind.
//! - Valid until the token's own `exp`: every hit applies the same expiry rule as a cold
//!   verification (`exp + leeway` against the clock), nothing is trusted beyond it.
//! - Tagged with the JWKS generation at verification time: a key set that changes (a key
//!   removed or added) makes every older entry a miss, so a token signed by a withdrawn key
//!   goes back through full verification (and fails).
//! - Only tokens that passed verification are inserted; a tampered or unknown token costs a
//!   hash and a lookup, never an entry.
//! - Bounded: at most `capacity` entries; a flood of distinct tokens evicts (S3-FIFO keeps
//!   tokens seen more than once), it cannot grow memory.

use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use quick_cache::sync::{Cache, DefaultLifecycle};
use quick_cache::UnitWeighter;
use std::sync::OnceLock;

use super::user::AuthUser;

/// A token's cache key (see the module docs for why it need not be cryptographic).
pub type TokenDigest = [u8; 16];

pub fn digest(token: &str) -> TokenDigest {
    static SEED: OnceLock<u64> = OnceLock::new();
    let seed = *SEED.get_or_init(|| {
        let mut bytes = [0u8; 8];
        // No randomness from the OS: a fixed seed still keys correctly (hits compare tokens).
        let _ = getrandom::getrandom(&mut bytes);
        u64::from_le_bytes(bytes)
    });
    xxhash_rust::xxh3::xxh3_128_with_seed(token.as_bytes(), seed).to_le_bytes()
}

/// The key is already a uniform hash: use 8 of its bytes instead of hashing it again.
#[derive(Default, Clone)]
struct PrefixHasher(u64);

impl Hasher for PrefixHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // `[u8; 16]` hashes as its bytes (after nothing else): take the first eight.
        let mut word = [0u8; 8];
        let n = bytes.len().min(8);
        word[..n].copy_from_slice(&bytes[..n]);
        self.0 ^= u64::from_le_bytes(word);
    }
}

type Hash = BuildHasherDefault<PrefixHasher>;

struct Entry {
    user: AuthUser,
    generation: u64,
}

type Store =
    Cache<TokenDigest, Arc<Entry>, UnitWeighter, Hash, DefaultLifecycle<TokenDigest, Arc<Entry>>>;

pub struct TokenCache {
    /// `None`: the cache is off (`capacity` 0).
    store: Option<Store>,
    leeway: i64,
}

impl TokenCache {
    /// `capacity` 0 disables the cache. `leeway_secs` is the verifier's clock-skew allowance,
    /// applied to `exp` exactly as a cold verification applies it.
    pub fn new(capacity: usize, leeway_secs: u64) -> Self {
        let store = (capacity > 0).then(|| {
            Store::with(
                capacity,
                capacity as u64,
                UnitWeighter,
                Hash::default(),
                DefaultLifecycle::default(),
            )
        });
        Self {
            store,
            leeway: i64::try_from(leeway_secs).unwrap_or(i64::MAX),
        }
    }

    pub fn enabled(&self) -> bool {
        self.store.is_some()
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
        let store = self.store.as_ref()?;
        let entry = store.get(key)?;
        if !self.live(&entry, generation, now) {
            store.remove(key);
            return None;
        }
        entry.user.has_token(token).then(|| entry.user.clone())
    }

    /// Remembers a user whose token just passed full verification under `generation`.
    pub fn insert(&self, key: TokenDigest, user: &AuthUser, generation: u64, _now: i64) {
        if let Some(store) = &self.store {
            store.insert(
                key,
                Arc::new(Entry {
                    user: user.clone(),
                    generation,
                }),
            );
        }
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.store.as_ref().map_or(0, Store::len)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most entries this cache will hold.
    pub fn capacity(&self) -> usize {
        self.store
            .as_ref()
            .map_or(0, |s| usize::try_from(s.capacity()).unwrap_or(usize::MAX))
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
