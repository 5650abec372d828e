//! For tests in this workspace (feature `test-support`): isolated PostgreSQL databases and
//! Redis key prefixes on the shared local services.

use std::time::Duration;

use sqlx::Connection;
use uuid::Uuid;

/// The server tests create their databases on. `FLASHCART_TEST_DATABASE_URL` overrides.
pub fn admin_database_url() -> String {
    std::env::var("FLASHCART_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// `FLASHCART_TEST_REDIS_URL` overrides.
pub fn redis_url() -> String {
    std::env::var("FLASHCART_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// A key prefix no other test uses.
pub fn redis_prefix() -> String {
    format!("flashcart-test:{}:", Uuid::now_v7().simple())
}

/// A fresh, empty database, dropped by [`TestDatabase::drop_database`]. Names start with
/// `flashcart_test_` so that a crashed run's leftovers can be found and removed.
pub struct TestDatabase {
    pub url: String,
    pub name: String,
}

impl TestDatabase {
    pub async fn create() -> Self {
        let admin_url = admin_database_url();
        let name = format!("flashcart_test_{}", Uuid::now_v7().simple());
        let mut admin = sqlx::PgConnection::connect(&admin_url)
            .await
            .expect("PostgreSQL answers (is it running? see deploy/services.sh)");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&mut admin)
            .await
            .expect("create test database");
        let _ = admin.close().await;
        let base = admin_url
            .rsplit_once('/')
            .map_or(admin_url.as_str(), |(base, _)| base);
        Self {
            url: format!("{base}/{name}"),
            name,
        }
    }

    pub async fn drop_database(self) {
        let Ok(mut admin) = sqlx::PgConnection::connect(&admin_database_url()).await else {
            return;
        };
        let _ = tokio::time::timeout(
            Duration::from_secs(10),
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                self.name
            )))
            .execute(&mut admin),
        )
        .await;
        let _ = admin.close().await;
    }
}

/// A TCP proxy in front of a real service, which a test can cut and restore: the way to
/// make PostgreSQL or Redis unreachable for one engine without stopping the shared server.
pub struct TcpProxy {
    address: std::net::SocketAddr,
    cut: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl TcpProxy {
    pub async fn start(upstream: std::net::SocketAddr) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind proxy");
        let address = listener.local_addr().expect("proxy address");
        let (cut, cut_watch) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    continue;
                };
                if *cut_watch.borrow() {
                    // Refused: the connection closes at once.
                    drop(client);
                    continue;
                }
                let mut cut_watch = cut_watch.clone();
                tokio::spawn(async move {
                    let Ok(mut server) = tokio::net::TcpStream::connect(upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut_watch.wait_for(|cut| *cut) => {}
                    }
                });
            }
        });
        Self { address, cut, task }
    }

    pub fn address(&self) -> std::net::SocketAddr {
        self.address
    }

    /// Drops every open connection and refuses new ones.
    pub fn cut(&self) {
        let _ = self.cut.send(true);
    }

    pub fn restore(&self) {
        let _ = self.cut.send(false);
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `host:port` of a `scheme://[user@]host:port/...` URL, resolved.
pub fn socket_address(url: &str) -> std::net::SocketAddr {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, rest)| rest);
    let host_port = rest.split('/').next().unwrap_or(rest);
    std::net::ToSocketAddrs::to_socket_addrs(host_port)
        .ok()
        .and_then(|mut addresses| addresses.next())
        .expect("a host:port in the URL")
}

/// The same URL with its host and port replaced (to go through a [`TcpProxy`]).
pub fn via(url: &str, address: std::net::SocketAddr) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let (user, rest) = match rest.rsplit_once('@') {
        Some((user, rest)) => (format!("{user}@"), rest),
        None => (String::new(), rest),
    };
    let path = rest.find('/').map_or("", |index| &rest[index..]);
    format!("{scheme}://{user}{address}{path}")
}
