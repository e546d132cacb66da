//! The shared backend: Redis, for several replicas behind one load balancer. Any replica answers for
//! any operation; values are sealed before they leave the process, and Redis drops each key when its
//! operation expires (`SET ... PXAT`).

use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Context, Result};
use redis::{Client, Connection};

use super::{Backend, Table};

/// The longest a store call waits on Redis (connect, send or answer): an outage fails requests fast
/// (503) instead of holding them and the Read runner.
const TIMEOUT: Duration = Duration::from_secs(2);

pub struct Redis {
    client: Client,
    /// One connection, made again after a failure.
    connection: Mutex<Option<Connection>>,
}

/// Every key starts with `vista:`, so one Redis can hold other data too.
fn key(table: Table, id: &str) -> String {
    format!("vista:{}:{}:{id}", table.family(), table.name())
}

impl Redis {
    /// Connects to `url` (`redis://host:port/db`, `rediss://` for TLS) and checks that it answers.
    pub fn connect(url: &str) -> Result<Self> {
        let client = Client::open(url).with_context(|| format!("the Redis URL {url}"))?;
        let redis = Redis {
            client,
            connection: Mutex::new(None),
        };
        redis
            .run(|c| redis::cmd("PING").query::<String>(c))
            .with_context(|| format!("connecting to Redis at {url}"))?;
        Ok(redis)
    }

    fn run<T>(&self, command: impl FnOnce(&mut Connection) -> redis::RedisResult<T>) -> Result<T> {
        let mut held = self.connection.lock().expect("the Redis connection lock");
        let connection = match held.as_mut() {
            Some(connection) => connection,
            None => {
                let connection = self.client.get_connection_with_timeout(TIMEOUT)?;
                connection.set_read_timeout(Some(TIMEOUT))?;
                connection.set_write_timeout(Some(TIMEOUT))?;
                held.insert(connection)
            }
        };
        let outcome = command(connection);
        if outcome.is_err() {
            *held = None;
        }
        Ok(outcome?)
    }
}

impl Backend for Redis {
    fn check(&self) -> Result<()> {
        self.run(|c| redis::cmd("PING").query::<String>(c))
            .map(drop)
    }

    fn put(&self, table: Table, id: &str, value: &[u8], expires: f64) -> Result<()> {
        let mut command = redis::cmd("SET");
        command.arg(key(table, id)).arg(value);
        if expires.is_finite() {
            command.arg("PXAT").arg((expires * 1000.0) as u64);
        }
        self.run(|c| command.query::<()>(c))
    }

    fn put_new(&self, table: Table, id: &str, value: &[u8], expires: f64) -> Result<bool> {
        let mut command = redis::cmd("SET");
        command.arg(key(table, id)).arg(value).arg("NX");
        if expires.is_finite() {
            command.arg("PXAT").arg((expires * 1000.0) as u64);
        }
        // SET NX answers OK when it set the key, nil when the key was there.
        let answer: Option<String> = self.run(|c| command.query(c))?;
        Ok(answer.is_some())
    }

    fn get(&self, table: Table, id: &str) -> Result<Option<Vec<u8>>> {
        self.run(|c| redis::cmd("GET").arg(key(table, id)).query(c))
    }

    fn remove(&self, table: Table, id: &str) -> Result<()> {
        self.run(|c| redis::cmd("DEL").arg(key(table, id)).query::<()>(c))
    }

    fn ids(&self, table: Table) -> Result<Vec<String>> {
        let pattern = key(table, "*");
        let prefix = key(table, "");
        let mut ids = Vec::new();
        let mut cursor = 0u64;
        loop {
            let (next, keys): (u64, Vec<String>) = self.run(|c| {
                redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(1000)
                    .query(c)
            })?;
            ids.extend(
                keys.iter()
                    .filter_map(|k| k.strip_prefix(&prefix))
                    .map(str::to_owned),
            );
            if next == 0 {
                return Ok(ids);
            }
            cursor = next;
        }
    }
}
