//! Storage: every table and every query of talos-manager.
//!
//! One [`Store`] serves two backends with the same API:
//! - **SQLite**, the embedded default: one file in the data directory, no server to run.
//! - **PostgreSQL**, for real deployments and for several service replicas sharing one database
//!   (background jobs are claimed with `FOR UPDATE SKIP LOCKED`).
//!
//! Queries are written once with `$N` placeholders, which both backends understand, and run on
//! whichever pool the store holds (see `on_pool!`). Migrations live in `migrations/sqlite` and
//! `migrations/postgres`, are embedded in the binary, and must produce the same tables and
//! columns (a test checks).
//!
//! Secret columns (provider credentials, cluster secrets bundles) are encrypted with
//! AES-256-GCM before they reach the database; see [`EncryptionKey`].
//!
//! ```no_run
//! # async fn demo() -> Result<(), talos_manager_core::store::StoreError> {
//! use talos_manager_core::store::{EncryptionKey, Store};
//!
//! let key = EncryptionKey::generate();
//! let store = Store::connect("sqlite:///var/lib/talos-manager/talos-manager.db", &key).await?;
//! store.migrate().await?;
//! for cluster in store.list_clusters().await? {
//!     println!("{} at {}", cluster.name, cluster.endpoint);
//! }
//! # Ok(()) }
//! ```

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, SqlitePool};
use time::OffsetDateTime;

mod api_tokens;
mod applied_labels_taints;
pub mod backup;
mod clusters;
mod configs;
mod crypto;
mod jobs;
mod label_taint_rules;
mod machine_configs;
mod provider_accounts;
mod schematics;
mod servers;
mod settings;
mod vswitches;

pub use api_tokens::ApiToken;
pub use applied_labels_taints::AppliedLabelsTaints;
pub use clusters::{BootstrapClaim, Cluster, ClusterFields};
pub use configs::{Config, ConfigFields};
pub use crypto::{CryptoError, EncryptionKey, KeySource};
pub use jobs::{Job, JobLogLine, JobOutcome, JobStatus, NewJob};
pub use label_taint_rules::{LabelTaintRule, LabelTaintRuleFields};
pub use machine_configs::{MachineConfigFields, ServerMachineConfig};
pub use provider_accounts::ProviderAccount;
pub use schematics::{Schematic, SchematicFields};
pub use servers::{ProbeResult, Server, ServerFieldChanges, ServerInventory, ServerUpsert};
pub use settings::{
    DEFAULT_KUBERNETES_VERSION, DEFAULT_TALOS_VERSION, Settings, default_install_image,
};
pub use vswitches::Vswitch;

use crypto::Cipher;

/// Which database a [`Store`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// An SQLite file.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

impl Backend {
    /// Picks the backend a database URL names: `sqlite:` or `postgres://` / `postgresql://`.
    pub fn from_url(url: &str) -> Result<Backend, StoreError> {
        let scheme = url.split(':').next().unwrap_or_default();
        match scheme {
            "sqlite" => Ok(Backend::Sqlite),
            "postgres" | "postgresql" => Ok(Backend::Postgres),
            _ => Err(StoreError::UnsupportedUrl {
                scheme: scheme.to_owned(),
            }),
        }
    }

    /// `sqlite` or `postgres`.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// Everything that can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database URL has a scheme the store does not know.
    #[error(
        "unsupported database URL scheme {scheme:?}: use sqlite:PATH or postgres://USER@HOST/DB"
    )]
    UnsupportedUrl {
        /// The scheme found.
        scheme: String,
    },
    /// The URL could not be parsed.
    #[error("invalid {backend} database URL")]
    InvalidUrl {
        /// `sqlite` or `postgres`.
        backend: &'static str,
        /// Why (the URL itself is not repeated: it may hold a password).
        #[source]
        source: sqlx::Error,
    },
    /// The database could not be reached or opened.
    #[error("failed to connect to the {backend} database")]
    Connect {
        /// `sqlite` or `postgres`.
        backend: &'static str,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
    /// Migrations failed.
    #[error("failed to migrate the {backend} database")]
    Migrate {
        /// `sqlite` or `postgres`.
        backend: &'static str,
        /// The migrator's error.
        #[source]
        source: sqlx::migrate::MigrateError,
    },
    /// No row with that id.
    #[error("{entity} {id} not found")]
    NotFound {
        /// What was looked for (`server`, `cluster`, …).
        entity: &'static str,
        /// The id or name looked for.
        id: String,
    },
    /// A unique value is taken (a name, a provider id).
    #[error("{entity} conflicts with an existing one: {detail}")]
    Conflict {
        /// What was written.
        entity: &'static str,
        /// The database's description of the constraint.
        detail: String,
    },
    /// The row is still used by others (a config assigned to servers).
    #[error("{entity} {id} is still in use")]
    InUse {
        /// What was to be deleted.
        entity: &'static str,
        /// Its id.
        id: String,
    },
    /// A worker wrote to a job it no longer holds: another replica recovered it after its
    /// heartbeats stopped, so what this worker does with it no longer counts.
    #[error("job {job} is no longer held by worker {worker:?}")]
    LeaseLost {
        /// The job.
        job: String,
        /// The worker that tried.
        worker: String,
    },
    /// A reference to another row that does not exist.
    #[error("{entity} refers to a row that does not exist: {detail}")]
    MissingReference {
        /// What was written.
        entity: &'static str,
        /// The database's description of the constraint.
        detail: String,
    },
    /// A stored value does not decrypt.
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    /// A stored value is not one the code knows (a newer version wrote it, or it was edited).
    #[error("unexpected value {value:?} in {column}")]
    Corrupt {
        /// `table.column`.
        column: &'static str,
        /// The value found.
        value: String,
    },
    /// Any other database failure.
    #[error("database query failed: {operation}")]
    Query {
        /// What the store was doing.
        operation: &'static str,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
}

impl StoreError {
    /// Maps a driver error of a write to `Conflict`, `InUse`, `MissingReference` or `Query`.
    fn from_write(entity: &'static str, operation: &'static str, source: sqlx::Error) -> Self {
        use sqlx::error::ErrorKind;
        if let Some(database_error) = source.as_database_error() {
            let detail = database_error.message().to_owned();
            match database_error.kind() {
                ErrorKind::UniqueViolation => return StoreError::Conflict { entity, detail },
                ErrorKind::ForeignKeyViolation => {
                    return StoreError::MissingReference { entity, detail };
                }
                _ => {}
            }
        }
        StoreError::Query { operation, source }
    }

    /// Maps a driver error of a delete: a foreign key violation means the row is in use.
    fn from_delete(entity: &'static str, id: impl ToString, source: sqlx::Error) -> Self {
        // SQLite reports an `ON DELETE RESTRICT` violation with the generic trigger code, which
        // sqlx does not classify; its message is the same as for other foreign key failures.
        let in_use = source.as_database_error().is_some_and(|e| {
            e.kind() == sqlx::error::ErrorKind::ForeignKeyViolation
                || e.message().contains("FOREIGN KEY constraint failed")
        });
        if in_use {
            StoreError::InUse {
                entity,
                id: id.to_string(),
            }
        } else {
            StoreError::Query {
                operation: "delete",
                source,
            }
        }
    }

    fn query(operation: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
        move |source| StoreError::Query { operation, source }
    }

    fn not_found(entity: &'static str, id: impl ToString) -> StoreError {
        StoreError::NotFound {
            entity,
            id: id.to_string(),
        }
    }
}

#[derive(Clone)]
enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Builds query text from the store's own constants (table names, column lists), never from
/// input: values always travel as binds.
macro_rules! sql {
    ($($arg:tt)*) => {
        sqlx::AssertSqlSafe(format!($($arg)*))
    };
}
pub(crate) use sql;

/// Runs `$body` with `$pool` bound to the store's pool, whichever backend it is. The body is
/// compiled once per backend, so the same query text and binds serve both.
macro_rules! on_pool {
    ($store:expr, |$pool:ident| $body:expr) => {
        match &$store.pool {
            $crate::store::Pool::Sqlite($pool) => $body,
            $crate::store::Pool::Postgres($pool) => $body,
        }
    };
}
pub(crate) use on_pool;

/// The database of talos-manager. Cheap to clone: clones share one connection pool.
#[derive(Clone)]
pub struct Store {
    pool: Pool,
    cipher: Cipher,
    config_inputs: Arc<AtomicU64>,
}

/// Bumps the store's config-inputs generation when dropped, that is after the write it
/// guards has finished (or was abandoned): a reader that noted the generation before reading
/// can then never keep data older than the write under the newer generation.
#[must_use = "the generation is bumped when the guard is dropped, after the write"]
pub(crate) struct ConfigInputsChange<'a>(&'a AtomicU64);

impl Drop for ConfigInputsChange<'_> {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::Release);
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend())
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Connects to the database `url` names (`sqlite:PATH` creates the file when missing;
    /// `postgres://…`). Secret columns are encrypted with `key`.
    pub async fn connect(url: &str, key: &EncryptionKey) -> Result<Store, StoreError> {
        let backend = Backend::from_url(url)?;
        let invalid = |source| StoreError::InvalidUrl {
            backend: backend.as_str(),
            source,
        };
        let connect = |source| StoreError::Connect {
            backend: backend.as_str(),
            source,
        };
        let pool = match backend {
            Backend::Sqlite => {
                let options = SqliteConnectOptions::from_str(url)
                    .map_err(invalid)?
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    // In WAL mode, NORMAL syncs at checkpoints instead of at every commit: a
                    // crash of the process loses nothing, a power cut may lose the last
                    // commits but never corrupts the file (SQLite's recommendation for WAL).
                    .synchronous(SqliteSynchronous::Normal)
                    .busy_timeout(Duration::from_secs(10))
                    .foreign_keys(true);
                Pool::Sqlite(
                    SqlitePoolOptions::new()
                        .max_connections(8)
                        .connect_with(options)
                        .await
                        .map_err(connect)?,
                )
            }
            Backend::Postgres => {
                let options = PgConnectOptions::from_str(url).map_err(invalid)?;
                Pool::Postgres(
                    PgPoolOptions::new()
                        .max_connections(16)
                        .acquire_timeout(Duration::from_secs(10))
                        .connect_with(options)
                        .await
                        .map_err(connect)?,
                )
            }
        };
        Ok(Store {
            pool,
            cipher: Cipher::new(key),
            config_inputs: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Which backend this store uses.
    pub fn backend(&self) -> Backend {
        match self.pool {
            Pool::Sqlite(_) => Backend::Sqlite,
            Pool::Postgres(_) => Backend::Postgres,
        }
    }

    /// A number that changes whenever this store (or a clone of it) has written anything a
    /// server's machine config is made from: servers, machine configs, config templates,
    /// clusters and vSwitches. Caches of rendered configs compare it to know they are current
    /// (see [`crate::node_config::NodeConfigCache`]). Writes made by another process on the
    /// same database do not change it.
    pub fn config_inputs_generation(&self) -> u64 {
        self.config_inputs.load(Ordering::Acquire)
    }

    /// Marks the start of a write to a config input: the generation moves when the returned
    /// guard is dropped, once the write is over.
    pub(crate) fn config_inputs_change(&self) -> ConfigInputsChange<'_> {
        ConfigInputsChange(&self.config_inputs)
    }

    /// Applies the migrations this build embeds that the database lacks. Safe to run at every
    /// start and from several replicas at once (the migrator takes a lock).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let backend = self.backend().as_str();
        let result = match &self.pool {
            Pool::Sqlite(pool) => sqlx::migrate!("migrations/sqlite").run(pool).await,
            Pool::Postgres(pool) => sqlx::migrate!("migrations/postgres").run(pool).await,
        };
        result.map_err(|source| StoreError::Migrate { backend, source })
    }

    /// Checks that the database answers (for `/healthz`).
    pub async fn ping(&self) -> Result<(), StoreError> {
        on_pool!(self, |pool| sqlx::query("SELECT 1")
            .execute(pool)
            .await
            .map(drop))
        .map_err(StoreError::query("ping"))
    }

    /// Closes every connection; waits for queries in flight.
    pub async fn close(&self) {
        on_pool!(self, |pool| pool.close().await)
    }

    /// Reads the row `id` of `table` as `T`; `entity` names it in errors.
    async fn get_row<T: FromBothRows>(
        &self,
        table: &'static str,
        columns: &'static str,
        entity: &'static str,
        id: i64,
    ) -> Result<T, StoreError> {
        let sql = sql!("SELECT {columns} FROM {table} WHERE id = $1");
        let row: Option<T> = on_pool!(self, |pool| sqlx::query_as(sql)
            .bind(id)
            .fetch_optional(pool)
            .await)
        .map_err(StoreError::query("get row"))?;
        row.ok_or_else(|| StoreError::not_found(entity, id))
    }

    /// Reads every row of `table` as `T`, in `order_by` order.
    async fn list_rows<T: FromBothRows>(
        &self,
        table: &'static str,
        columns: &'static str,
        order_by: &'static str,
    ) -> Result<Vec<T>, StoreError> {
        let sql = sql!("SELECT {columns} FROM {table} ORDER BY {order_by}");
        on_pool!(self, |pool| sqlx::query_as(sql).fetch_all(pool).await)
            .map_err(StoreError::query("list rows"))
    }

    /// Deletes the row `id` of `table`; `entity` names it in errors.
    async fn delete_row(
        &self,
        table: &'static str,
        entity: &'static str,
        id: i64,
    ) -> Result<(), StoreError> {
        let sql = sql!("DELETE FROM {table} WHERE id = $1");
        let n_deleted = on_pool!(self, |pool| sqlx::query(sql)
            .bind(id)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))
        .map_err(|e| StoreError::from_delete(entity, id, e))?;
        if n_deleted == 0 {
            return Err(StoreError::not_found(entity, id));
        }
        Ok(())
    }

    /// The names of the tables and their columns (`table.column`, sorted), as the database
    /// reports them. Used to check that both backends' migrations agree.
    pub async fn schema_columns(&self) -> Result<Vec<String>, StoreError> {
        let sql = match self.backend() {
            Backend::Sqlite => {
                "SELECT m.name || '.' || p.name FROM sqlite_master m, pragma_table_info(m.name) p \
                 WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' AND m.name NOT LIKE '_sqlx%'"
            }
            Backend::Postgres => {
                "SELECT table_name || '.' || column_name FROM information_schema.columns \
                 WHERE table_schema = current_schema() AND table_name NOT LIKE '_sqlx%'"
            }
        };
        let mut columns: Vec<String> =
            on_pool!(self, |pool| sqlx::query_scalar(sql).fetch_all(pool).await)
                .map_err(StoreError::query("read schema"))?;
        columns.sort();
        Ok(columns)
    }
}

/// A row type that both backends can decode.
trait FromBothRows:
    for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>
    + for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>
    + Send
    + Unpin
{
}

impl<T> FromBothRows for T where
    T: for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>
        + for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>
        + Send
        + Unpin
{
}

/// The current time, at the microsecond precision both backends keep.
pub(crate) fn now() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    now.replace_nanosecond(now.nanosecond() / 1_000 * 1_000)
        .unwrap_or(now)
}
