//! Where rate-limit counters live and how one decision is taken: GCRA (the generic cell rate
//! algorithm) written once as integer arithmetic, run in this process ([`MemoryStore`]) or
//! inside Redis as a Lua script ([`RedisStore`]), so both stores decide identically.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::redis_conn::RedisConn;

/// A rate: one request every `interval_us` on average, up to `burst` at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quota {
    pub interval_us: i64,
    pub burst: i64,
}

impl Quota {
    pub fn new(per_minute: u32, burst: u32) -> Self {
        Self {
            // At least 1 µs: config refuses finer rates; a zero interval would divide by zero.
            interval_us: (60_000_000 / i64::from(per_minute.max(1))).max(1),
            burst: i64::from(burst.max(1)),
        }
    }
}

/// One counter to consult: its key and rate.
#[derive(Clone, Debug)]
pub struct Bucket {
    pub key: String,
    pub quota: Quota,
}

/// The answer for one counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub allowed: bool,
    /// Requests still allowed right now (after this one, when it was allowed).
    pub remaining: i64,
    /// Until the counter is back to its full burst.
    pub reset_us: i64,
    /// Until a refused request would be allowed (0 when allowed).
    pub retry_us: i64,
}

/// GCRA for one counter whose theoretical arrival time is `tat` (absent: never used or
/// expired). Returns the verdict and the `tat` to store if the request goes through.
/// The Lua script in [`RedisStore`] is this function line for line.
pub fn gcra(tat: Option<i64>, now: i64, quota: Quota) -> (Verdict, i64) {
    let tat = tat.unwrap_or(now).max(now);
    let new_tat = tat + quota.interval_us;
    let allow_at = new_tat - quota.interval_us * quota.burst;
    if now < allow_at {
        let verdict = Verdict {
            allowed: false,
            remaining: 0,
            reset_us: tat - now,
            retry_us: allow_at - now,
        };
        (verdict, tat)
    } else {
        let verdict = Verdict {
            allowed: true,
            remaining: (now - allow_at) / quota.interval_us,
            reset_us: new_tat - now,
            retry_us: 0,
        };
        (verdict, new_tat)
    }
}

/// The store could not decide (down, slow, or answering nonsense).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("redis did not answer within {0:?}")]
    Timeout(Duration),
    #[error("redis answered {0} numbers for {1} counters")]
    Malformed(usize, usize),
}

/// Past this many counters, expired ones are dropped to bound memory.
const PRUNE_ABOVE: usize = 50_000;

/// Counters in this process: correct for one instance only.
pub struct MemoryStore {
    tats: Mutex<HashMap<String, i64>>,
    epoch: Instant,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self {
            tats: Mutex::new(HashMap::new()),
            epoch: Instant::now(),
        }
    }
}

impl MemoryStore {
    /// Microseconds on a monotonic clock (a wall-clock step must not refill or drain buckets).
    pub fn now(&self) -> i64 {
        i64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(i64::MAX)
    }

    /// All `checks` at `now`: counted only if every one allows, as the Redis script does.
    pub fn decide_at(&self, checks: &[Bucket], now: i64) -> Vec<Verdict> {
        let mut tats = self.tats.lock();
        if tats.len() > PRUNE_ABOVE {
            tats.retain(|_, tat| *tat > now);
        }
        let results: Vec<(Verdict, i64)> = checks
            .iter()
            .map(|c| gcra(tats.get(&c.key).copied(), now, c.quota))
            .collect();
        if results.iter().all(|(v, _)| v.allowed) {
            for (check, (_, tat)) in checks.iter().zip(&results) {
                tats.insert(check.key.clone(), *tat);
            }
        }
        results.into_iter().map(|(v, _)| v).collect()
    }
}

/// [`gcra`] over every key, counted only if all allow; keys expire when their bucket is full
/// again. ARGV[1] is `now` in microseconds, or empty for Redis's own clock (one clock for
/// every instance); then `interval_us, burst` per key.
const SCRIPT: &str = r"
local now = tonumber(ARGV[1])
if now == nil then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local out, tats, all = {}, {}, true
for i, key in ipairs(KEYS) do
  local interval = tonumber(ARGV[2 * i])
  local burst = tonumber(ARGV[2 * i + 1])
  local tat = tonumber(redis.call('GET', key)) or now
  if tat < now then tat = now end
  local new_tat = tat + interval
  local allow_at = new_tat - interval * burst
  if now < allow_at then
    all = false
    out[#out + 1] = 0
    out[#out + 1] = 0
    out[#out + 1] = tat - now
    out[#out + 1] = allow_at - now
  else
    tats[i] = new_tat
    out[#out + 1] = 1
    out[#out + 1] = math.floor((now - allow_at) / interval)
    out[#out + 1] = new_tat - now
    out[#out + 1] = 0
  end
end
if all then
  for i, key in ipairs(KEYS) do
    redis.call('SET', key, string.format('%.0f', tats[i]), 'PX', math.floor((tats[i] - now) / 1000) + 1)
  end
end
return out
";

/// Counters in Redis, shared by every instance: one script call (EVALSHA) per decision.
pub struct RedisStore {
    conn: Arc<RedisConn>,
    script: redis::Script,
}

impl RedisStore {
    pub fn new(conn: Arc<RedisConn>) -> Self {
        Self {
            conn,
            script: redis::Script::new(SCRIPT),
        }
    }

    /// All `checks` in one round trip, within the timeout. `now`: `None` uses Redis's clock.
    pub async fn decide_at(
        &self,
        checks: &[Bucket],
        now: Option<i64>,
    ) -> Result<Vec<Verdict>, StoreError> {
        let timeout = self.conn.timeout;
        tokio::time::timeout(timeout, self.decide_untimed(checks, now))
            .await
            .map_err(|_| StoreError::Timeout(timeout))?
    }

    async fn decide_untimed(
        &self,
        checks: &[Bucket],
        now: Option<i64>,
    ) -> Result<Vec<Verdict>, StoreError> {
        let mut conn = self.conn.connection().await?;
        let mut invocation = self.script.prepare_invoke();
        for check in checks {
            invocation.key(&check.key);
        }
        invocation.arg(now.map(|n| n.to_string()).unwrap_or_default());
        for check in checks {
            invocation
                .arg(check.quota.interval_us)
                .arg(check.quota.burst);
        }
        let raw: Vec<i64> = invocation.invoke_async(&mut conn).await?;
        if raw.len() != checks.len() * 4 {
            return Err(StoreError::Malformed(raw.len(), checks.len()));
        }
        Ok(raw
            .chunks_exact(4)
            .map(|c| Verdict {
                allowed: c[0] == 1,
                remaining: c[1],
                reset_us: c[2],
                retry_us: c[3],
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(key: &str, per_minute: u32, burst: u32) -> Bucket {
        Bucket {
            key: key.to_owned(),
            quota: Quota::new(per_minute, burst),
        }
    }

    #[test]
    fn burst_passes_then_the_next_waits_one_interval() {
        let store = MemoryStore::default();
        let c = [check("k", 60, 3)];
        let remaining: Vec<i64> = (0..3)
            .map(|_| store.decide_at(&c, 0)[0])
            .inspect(|v| assert!(v.allowed))
            .map(|v| v.remaining)
            .collect();
        assert_eq!(remaining, [2, 1, 0]);
        let refused = store.decide_at(&c, 0)[0];
        assert!(!refused.allowed);
        assert_eq!(refused.retry_us, 1_000_000);
        assert_eq!(refused.reset_us, 3_000_000);
        assert!(store.decide_at(&c, 1_000_000)[0].allowed);
        assert!(!store.decide_at(&c, 1_000_000)[0].allowed);
    }

    #[test]
    fn a_refusal_by_one_rule_counts_against_none() {
        let store = MemoryStore::default();
        let roomy = check("roomy", 60, 10);
        let tight = check("tight", 60, 1);
        assert!(store.decide_at(&[roomy.clone(), tight.clone()], 0)[1].allowed);
        let both = store.decide_at(&[roomy.clone(), tight], 0);
        assert!(both[0].allowed && !both[1].allowed);
        // The refused request did not spend a token of the roomy rule.
        assert_eq!(store.decide_at(&[roomy], 0)[0].remaining, 8);
    }
}
