//! The one Redis connection of an instance (`rate_limit.redis_url`), shared by the rate-limit
//! counters and the read cache when either lives in Redis.

use std::collections::HashMap;
use std::time::Duration;

use parking_lot::Mutex;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

pub struct RedisConn {
    client: redis::Client,
    /// One connection per worker thread, made on its first use there: start-up does not
    /// wait for (or need) Redis, and a connection's I/O runs on the worker that uses it (an
    /// actix worker is a single-threaded runtime; sharing one connection would tie every
    /// worker to the one that created it). Each manager reconnects by itself.
    conns: Mutex<HashMap<std::thread::ThreadId, ConnectionManager>>,
    /// How long one command may take, connecting included.
    pub timeout: Duration,
}

impl RedisConn {
    /// Checks the URL only; nothing is connected yet.
    pub fn new(url: &str, timeout: Duration) -> Result<Self, redis::RedisError> {
        Ok(Self {
            client: redis::Client::open(url)?,
            conns: Mutex::new(HashMap::new()),
            timeout,
        })
    }

    /// This worker's connection, made on first use.
    pub async fn connection(&self) -> Result<ConnectionManager, redis::RedisError> {
        let thread = std::thread::current().id();
        if let Some(conn) = self.conns.lock().get(&thread) {
            return Ok(conn.clone());
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(self.timeout)
            .set_response_timeout(self.timeout)
            .set_number_of_retries(1)
            .set_max_delay(1000);
        let conn = ConnectionManager::new_with_config(self.client.clone(), config).await?;
        self.conns.lock().insert(thread, conn.clone());
        Ok(conn)
    }
}
