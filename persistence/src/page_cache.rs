//! Cache-aside for rendered pages (catalog listings): look the page up, and on a miss
//! render it and store it. Keys carry the catalog generation the page was rendered at, so
//! a change to the catalog never has to find and delete pages: it bumps a number, and
//! pages of the old number are simply never asked for again (they age out).
//!
//! With Redis configured the pages live there (`{prefix}page:{incarnation}:{key}`, expiring
//! after `ttl`), out of the engine's heap; the incarnation (fixed per process start) keeps a
//! restarted engine, whose generations start again from zero, from reading pages of its
//! previous life. Without Redis they live in a bounded map in memory. A cache that fails
//! is a miss, never an error: browsing does not depend on it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::aio::ConnectionManager;

use crate::redis_mirror::RedisSettings;

/// Pages kept in memory at most; when full, the map starts over (old generations are
/// most of it by then).
const LOCAL_PAGES_MAX: usize = 10_000;

#[derive(Clone)]
pub struct PageCache {
    backend: Backend,
}

#[derive(Clone)]
enum Backend {
    Local(Arc<Mutex<HashMap<String, Arc<[u8]>>>>),
    Redis {
        connection: ConnectionManager,
        /// `{prefix}page:{incarnation}:`
        key_prefix: Arc<str>,
        ttl: Duration,
    },
}

impl PageCache {
    pub fn in_memory() -> Self {
        Self {
            backend: Backend::Local(Arc::default()),
        }
    }

    /// Pages in Redis, kept `ttl` at most. Connecting is lazy.
    pub fn in_redis(settings: &RedisSettings, ttl: Duration) -> Result<Self, redis::RedisError> {
        let client = redis::Client::open(settings.url.as_str())?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(settings.timeout))
            .set_response_timeout(Some(settings.timeout))
            .set_number_of_retries(0);
        let connection = ConnectionManager::new_lazy_with_config(client, config)?;
        let incarnation = uuid::Uuid::now_v7().simple().to_string();
        Ok(Self {
            backend: Backend::Redis {
                connection,
                key_prefix: format!("{}page:{incarnation}:", settings.key_prefix).into(),
                ttl,
            },
        })
    }

    pub async fn get(&self, key: &str) -> Option<Arc<[u8]>> {
        match &self.backend {
            Backend::Local(pages) => pages
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .get(key)
                .cloned(),
            Backend::Redis {
                connection,
                key_prefix,
                ..
            } => {
                let mut connection = connection.clone();
                let page: Result<Option<Vec<u8>>, _> = redis::cmd("GET")
                    .arg(format!("{key_prefix}{key}"))
                    .query_async(&mut connection)
                    .await;
                match page {
                    Ok(page) => page.map(Arc::from),
                    Err(error) => {
                        tracing::debug!(%error, "page cache read failed; rendering instead");
                        None
                    }
                }
            }
        }
    }

    pub async fn put(&self, key: &str, page: Arc<[u8]>) {
        match &self.backend {
            Backend::Local(pages) => {
                let mut pages = pages
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                if pages.len() >= LOCAL_PAGES_MAX {
                    pages.clear();
                }
                pages.insert(key.to_owned(), page);
            }
            Backend::Redis {
                connection,
                key_prefix,
                ttl,
            } => {
                let mut connection = connection.clone();
                let stored: Result<(), _> = redis::cmd("SET")
                    .arg(format!("{key_prefix}{key}"))
                    .arg(page.as_ref())
                    .arg("PX")
                    .arg(ttl.as_millis() as u64)
                    .query_async(&mut connection)
                    .await;
                if let Err(error) = stored {
                    tracing::debug!(%error, "page cache write failed");
                }
            }
        }
    }

    pub fn is_in_redis(&self) -> bool {
        matches!(self.backend, Backend::Redis { .. })
    }
}
