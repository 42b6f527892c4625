//! A PostgreSQL database of its own for one test: created with a unique name on the server at
//! 127.0.0.1:5432 (trust authentication; `DESKGATE_TEST_PG_URL` names another server) and
//! dropped when the last holder lets go of it.
//!
//! `DESKGATE_TEST_DATABASE=postgres` runs every [`crate::TestApp`] on such a database instead
//! of SQLite under its data dir.

use sqlx::Connection;
use std::sync::atomic::{AtomicU64, Ordering};

/// Whether this run's gateways use PostgreSQL (`DESKGATE_TEST_DATABASE=postgres`).
pub fn selected() -> bool {
    match std::env::var("DESKGATE_TEST_DATABASE").as_deref() {
        Ok("postgres") => true,
        Ok("sqlite") | Ok("") | Err(_) => false,
        Ok(other) => panic!("DESKGATE_TEST_DATABASE={other:?}: use postgres or sqlite"),
    }
}

/// The server's maintenance database, as a URL without the database name.
fn server() -> String {
    std::env::var("DESKGATE_TEST_PG_URL").unwrap_or_else(|_| "postgres://127.0.0.1:5432".into())
}

/// Users tried in turn when the URL names none (the server's superuser differs by install).
const USERS: [&str; 2] = ["postgres", "root"];

pub struct TestDatabase {
    /// `postgres://user@host:port/name`
    pub url: String,
    admin: String,
    name: String,
}

static NEXT: AtomicU64 = AtomicU64::new(0);

impl TestDatabase {
    pub async fn create() -> TestDatabase {
        let base = server();
        let candidates: Vec<String> = if base.contains('@') {
            vec![base.clone()]
        } else {
            USERS
                .iter()
                .map(|u| base.replacen("postgres://", &format!("postgres://{u}@"), 1))
                .collect()
        };
        let mut last = None;
        for server in candidates {
            let admin = format!("{server}/postgres");
            match sqlx::PgConnection::connect(&admin).await {
                Ok(mut conn) => {
                    let nanos = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.subsec_nanos())
                        .unwrap_or(0);
                    let name = format!(
                        "deskgate_test_{}_{}_{nanos}",
                        std::process::id(),
                        NEXT.fetch_add(1, Ordering::Relaxed)
                    );
                    sqlx::query(&format!("CREATE DATABASE {name}"))
                        .execute(&mut conn)
                        .await
                        .expect("create the test database");
                    let _ = conn.close().await;
                    return TestDatabase {
                        url: format!("{server}/{name}"),
                        admin,
                        name,
                    };
                }
                Err(e) => last = Some(e),
            }
        }
        panic!(
            "no PostgreSQL server at {base} with trust authentication for {USERS:?}: {}",
            last.map(|e| e.to_string()).unwrap_or_default()
        );
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // Drop runs inside the test's runtime, which cannot be blocked on: a thread of its
        // own drops the database (forcing out the gateway's pool if it is still open).
        let (admin, name) = (self.admin.clone(), self.name.clone());
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                let mut conn = sqlx::PgConnection::connect(&admin).await?;
                sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut conn)
                    .await?;
                conn.close().await
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop test database {}", self.name);
        }
    }
}

/// The database of each running test gateway by its data dir, so a command run on a data dir
/// (`deskgate audit verify --data …`) can be pointed at the same database.
static BY_DATA_DIR: std::sync::Mutex<Vec<(std::path::PathBuf, String)>> =
    std::sync::Mutex::new(Vec::new());

pub(crate) fn register(data: &std::path::Path, url: &str) {
    if let Ok(mut all) = BY_DATA_DIR.lock() {
        all.retain(|(d, _)| d != data);
        all.push((data.to_path_buf(), url.to_string()));
    }
}

/// The database URL of the test gateway on this data dir, if it runs on PostgreSQL.
pub fn url_for(data: &std::path::Path) -> Option<String> {
    let all = BY_DATA_DIR.lock().ok()?;
    all.iter().find(|(d, _)| d == data).map(|(_, u)| u.clone())
}
