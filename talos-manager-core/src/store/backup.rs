//! Backups of talos-manager's own database: [`write_backup`] and [`restore_backup`].
//!
//! A backup is a consistent snapshot of every table, taken in one read transaction while the
//! service runs (SQLite: a deferred transaction, whose first read fixes the snapshot in WAL
//! mode; PostgreSQL: `REPEATABLE READ, READ ONLY`). Its rows are backend-neutral, so a backup
//! of SQLite restores into PostgreSQL and back.
//!
//! # File format (version 1)
//!
//! ```text
//! "TMBACKUP" | format version (1 byte) | header length (u32 BE) | header (JSON) | salt (32 bytes)
//! then chunks: ciphertext length (u32 BE) | AES-256-GCM ciphertext and tag
//! ```
//!
//! The header (format, schema migration version, creation time, source backend) is readable
//! without the key and authenticated: everything up to the salt is the associated data of
//! every chunk. Each file has its own key, HKDF-SHA256 of the store's encryption key with the
//! file's salt. A chunk's nonce is its number and a last-chunk flag, so chunks cannot be
//! reordered, dropped or the file cut short without the restore noticing.
//!
//! The plaintext is JSON lines: per table `{"table": …, "columns": [[name, type], …]}` (types
//! `int`, `bool`, `bytes` as base64, `text`; timestamps are RFC 3339 text, as the SQLite
//! backend stores them; any other type, a float, `jsonb` or a date, is its text form), then one
//! JSON array per row, and at the end
//! `{"end": {"tables": n, "rows": n}}`. Tables come in the order of their foreign keys.
//!
//! # Keys
//!
//! A backup is encrypted with the store's own encryption key (the service's
//! `TALOS_MANAGER_ENCRYPTION_KEY` or key file): its secret columns (provider credentials,
//! clusters' secrets bundles) are stored encrypted with that key and are copied as they are,
//! so a restore needs that key anyway, and a restore can never leave secrets under a key the
//! service lacks. Keep the key apart from the backups (`docs/deployment.md`).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{Aead, Payload};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use futures_util::TryStreamExt as _;
use serde::{Deserialize, Serialize};
use sqlx::Row as _;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::{Backend, Store, StoreError, on_pool, sql};

/// The version of the backup file format this build writes and reads.
pub const BACKUP_FORMAT_VERSION: u8 = 1;

const MAGIC: &[u8; 8] = b"TMBACKUP";
const SALT_LEN: usize = 32;
const CHUNK_LEN: usize = 64 * 1024;
const TAG_LEN: usize = 16;
const MAX_HEADER_LEN: u32 = 64 * 1024;
/// Values bound per `INSERT` statement (both backends allow many more).
const MAX_BINDS: usize = 8_000;

/// Why a backup could not be written or restored.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The file does not start like a backup.
    #[error("not a talos-manager backup (the file does not start with the TMBACKUP header)")]
    NotABackup,
    /// A backup of a format this build does not read.
    #[error("backup format version {found} is not supported: this build reads version {supported}")]
    UnsupportedFormat {
        /// The file's format version.
        found: u8,
        /// The version this build reads.
        supported: u8,
    },
    /// The file does not decrypt: another key, or a damaged, truncated or edited file.
    #[error(
        "the backup does not decrypt: it was made with another encryption key, or the file is damaged, truncated or was edited"
    )]
    Authentication,
    /// The file decrypted but its contents are not a backup this build understands.
    #[error("the backup is damaged: {detail}")]
    Damaged {
        /// What was wrong.
        detail: String,
    },
    /// The backup's schema is not this build's.
    #[error(
        "the backup was made at schema version {backup} and this database is at version {database}: {hint}",
        hint = schema_hint(.backup, .database)
    )]
    SchemaMismatch {
        /// The newest migration of the database the backup was made of.
        backup: i64,
        /// The newest migration of the database restored into.
        database: i64,
    },
    /// The database restored into holds rows already.
    #[error(
        "refusing to restore into a database that is not empty ({}): restore into a new, empty database",
        describe_counts(.tables)
    )]
    NotEmpty {
        /// The tables with rows, and how many.
        tables: Vec<TableCount>,
    },
    /// The database's tables or columns do not match the backup's.
    #[error("the backup does not match this database's schema: {detail}")]
    SchemaDiffers {
        /// What differs.
        detail: String,
    },
    /// A column of a type backups do not carry.
    #[error("column {table}.{column} has type {found:?}, which backups do not support")]
    UnsupportedType {
        /// The table.
        table: String,
        /// The column.
        column: String,
        /// Its type as the database names it.
        found: String,
    },
    /// Reading or writing the backup file failed.
    #[error("failed to read or write the backup")]
    Io(#[source] std::io::Error),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn schema_hint(backup: &i64, database: &i64) -> &'static str {
    if backup > database {
        "the backup is newer than this build: restore it with the talos-manager release that made it (or a newer one)"
    } else {
        "restore it with the talos-manager release that made it, then upgrade"
    }
}

fn describe_counts(tables: &[TableCount]) -> String {
    tables
        .iter()
        .map(|count| format!("{} has {} rows", count.table, count.rows))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The rows of one table, as written or restored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableCount {
    /// The table.
    pub table: String,
    /// Its rows.
    pub rows: u64,
}

/// What a backup holds, or what a restore brought back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupSummary {
    /// The newest schema migration of the database backed up.
    pub schema_version: i64,
    /// When the backup was made.
    pub created_at: OffsetDateTime,
    /// Every table, in the order written, with its rows.
    pub tables: Vec<TableCount>,
}

impl BackupSummary {
    /// All rows of all tables.
    pub fn rows(&self) -> u64 {
        self.tables.iter().map(|table| table.rows).sum()
    }
}

/// The header, readable without the key (and authenticated by it).
#[derive(Debug, Serialize, Deserialize)]
struct Header {
    format: u8,
    schema_version: i64,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    backend: String,
    producer: String,
}

/// A column's type in the backup file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum FileType {
    Int,
    Bool,
    Bytes,
    Text,
}

/// A column's type in a database, and how it is read and written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DbType {
    /// `BIGINT` / SQLite's integers.
    Int64,
    /// PostgreSQL's `INTEGER`: read as `BIGINT`, written through a cast.
    Int32,
    Bool,
    Bytes,
    Text,
    /// PostgreSQL's `TIMESTAMPTZ`: RFC 3339 text in the file.
    Timestamp,
    /// Any other type (a float, `jsonb`, a date, …): its text form in the file, read with
    /// `CAST(… AS TEXT)` and written with a cast to the column's type (PostgreSQL) or through
    /// the column's affinity (SQLite).
    Other,
}

impl DbType {
    fn of(
        backend: Backend,
        table: &str,
        column: &str,
        declared: &str,
    ) -> Result<DbType, BackupError> {
        let lower = declared.to_ascii_lowercase();
        let found = match backend {
            // SQLite's affinity rules: INT, then CHAR/CLOB/TEXT, then BLOB.
            Backend::Sqlite => match lower.as_str() {
                "" => None,
                t if t.contains("int") => Some(DbType::Int64),
                "boolean" | "bool" => Some(DbType::Bool),
                t if t.contains("char") || t.contains("clob") || t.contains("text") => {
                    Some(DbType::Text)
                }
                t if t.contains("blob") => Some(DbType::Bytes),
                _ => Some(DbType::Other),
            },
            Backend::Postgres => match lower.as_str() {
                "bigint" => Some(DbType::Int64),
                "integer" | "smallint" => Some(DbType::Int32),
                "boolean" => Some(DbType::Bool),
                "bytea" => Some(DbType::Bytes),
                "text" | "character varying" => Some(DbType::Text),
                "timestamp with time zone" => Some(DbType::Timestamp),
                "" => None,
                _ => Some(DbType::Other),
            },
        };
        found.ok_or_else(|| BackupError::UnsupportedType {
            table: table.to_owned(),
            column: column.to_owned(),
            found: declared.to_owned(),
        })
    }

    fn file_type(self) -> FileType {
        match self {
            DbType::Int64 | DbType::Int32 => FileType::Int,
            DbType::Bool => FileType::Bool,
            DbType::Bytes => FileType::Bytes,
            DbType::Text | DbType::Timestamp | DbType::Other => FileType::Text,
        }
    }

    /// The select expression reading column `name` (quoted).
    fn select(self, name: &str) -> String {
        match self {
            DbType::Int32 => format!("CAST({name} AS BIGINT)"),
            DbType::Other => format!("CAST({name} AS TEXT)"),
            _ => name.to_owned(),
        }
    }
}

/// One column of a table in a database.
#[derive(Debug, Clone)]
struct Column {
    name: String,
    ty: DbType,
    /// A PostgreSQL identity column, whose sequence is moved past the restored rows.
    identity: bool,
    /// PostgreSQL's name of its type (`udt_name`), for [`DbType::Other`]'s cast.
    type_name: String,
}

impl Column {
    /// The placeholder writing value `n` into this column of a `backend` database.
    fn placeholder(&self, backend: Backend, n: usize) -> String {
        match (backend, self.ty) {
            (Backend::Postgres, DbType::Int32) => format!("CAST(${n} AS INTEGER)"),
            (Backend::Postgres, DbType::Timestamp) => format!("CAST(${n} AS TIMESTAMPTZ)"),
            (Backend::Postgres, DbType::Other) => {
                format!("CAST(${n} AS {})", quote(&self.type_name))
            }
            _ => format!("${n}"),
        }
    }
}

/// A value bound to an `INSERT`, typed for the target column.
enum Bound {
    Int(Option<i64>),
    Bool(Option<bool>),
    Bytes(Option<Vec<u8>>),
    Text(Option<String>),
}

/// `"name"`: identifiers come from the database's own catalog, quoted all the same.
fn quote(identifier: &str) -> String {
    format!("\"{}\"", identifier.replace('"', "\"\""))
}

/// Reads the tables and columns of the database in the transaction `$tx`, in foreign-key
/// order: `Result<Vec<(String, Vec<Column>)>, BackupError>`.
macro_rules! read_schema {
    ($backend:expr, $tx:expr) => {{
        let backend: Backend = $backend;
        let query = StoreError::query("read schema");
        let (tables_sql, references_sql) = match backend {
            Backend::Sqlite => (
                "SELECT name FROM sqlite_master WHERE type = 'table' \
                 AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '\\_sqlx%' ESCAPE '\\'",
                "SELECT m.name, f.\"table\" FROM sqlite_master m, pragma_foreign_key_list(m.name) f \
                 WHERE m.type = 'table'",
            ),
            Backend::Postgres => (
                "SELECT CAST(table_name AS TEXT) FROM information_schema.tables \
                 WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' \
                 AND table_name NOT LIKE '\\_sqlx%'",
                "SELECT CAST(c.conrelid::regclass AS TEXT), CAST(c.confrelid::regclass AS TEXT) \
                 FROM pg_constraint c WHERE c.contype = 'f' \
                 AND c.connamespace = current_schema()::regnamespace",
            ),
        };
        let names: Vec<String> = sqlx::query_scalar(tables_sql)
            .fetch_all(&mut *$tx)
            .await
            .map_err(query)?;
        let references: Vec<(String, String)> = sqlx::query_as(references_sql)
            .fetch_all(&mut *$tx)
            .await
            .map_err(StoreError::query("read foreign keys"))?;
        let order = foreign_key_order(names, &references)?;
        let mut tables = Vec::with_capacity(order.len());
        for table in order {
            let rows: Vec<(String, String, bool, String)> = match backend {
                Backend::Sqlite => sqlx::query_as(
                    "SELECT name, type, FALSE, type FROM pragma_table_info($1) ORDER BY cid",
                ),
                Backend::Postgres => sqlx::query_as(
                    "SELECT CAST(column_name AS TEXT), CAST(data_type AS TEXT), is_identity = 'YES', \
                     CAST(udt_name AS TEXT) \
                     FROM information_schema.columns \
                     WHERE table_schema = current_schema() AND table_name = $1 \
                     ORDER BY ordinal_position",
                ),
            }
            .bind(&table)
            .fetch_all(&mut *$tx)
            .await
            .map_err(StoreError::query("read columns"))?;
            let mut columns = Vec::with_capacity(rows.len());
            for (name, declared, identity, type_name) in rows {
                let ty = DbType::of(backend, &table, &name, &declared)?;
                columns.push(Column {
                    name,
                    ty,
                    identity,
                    type_name,
                });
            }
            tables.push((table, columns));
        }
        let schema_version: Option<i64> =
            sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success")
                .fetch_one(&mut *$tx)
                .await
                .map_err(StoreError::query("read schema version"))?;
        Ok::<_, BackupError>((schema_version.unwrap_or(0), tables))
    }};
}

/// Orders `tables` so that each comes after the tables it refers to (ties by name).
fn foreign_key_order(
    tables: Vec<String>,
    references: &[(String, String)],
) -> Result<Vec<String>, BackupError> {
    let mut pending: BTreeMap<String, BTreeSet<String>> = tables
        .into_iter()
        .map(|table| (table, BTreeSet::new()))
        .collect();
    for (from, to) in references {
        if from != to
            && pending.contains_key(to)
            && let Some(needs) = pending.get_mut(from)
        {
            needs.insert(to.clone());
        }
    }
    let mut order = Vec::with_capacity(pending.len());
    while !pending.is_empty() {
        let ready: Vec<String> = pending
            .iter()
            .filter(|(_, needs)| needs.is_empty())
            .map(|(table, _)| table.clone())
            .collect();
        if ready.is_empty() {
            let cycle: Vec<&str> = pending.keys().map(String::as_str).collect();
            return Err(BackupError::SchemaDiffers {
                detail: format!("the foreign keys of {} form a cycle", cycle.join(", ")),
            });
        }
        for table in &ready {
            pending.remove(table);
        }
        for needs in pending.values_mut() {
            for table in &ready {
                needs.remove(table);
            }
        }
        order.extend(ready);
    }
    Ok(order)
}

/// Writes a consistent, encrypted snapshot of the whole database to `writer`, while the
/// service keeps running; `progress` hears of every table written.
///
/// The backup is encrypted with the store's encryption key (see the module documentation).
///
/// # Errors
/// [`BackupError::Io`] when `writer` fails, [`BackupError::UnsupportedType`] for a column type
/// backups do not carry, and the store's errors.
pub async fn write_backup<W: Write + Send>(
    store: &Store,
    writer: W,
    progress: &mut (dyn FnMut(&TableCount) + Send),
) -> Result<BackupSummary, BackupError> {
    let backend = store.backend();
    let begin = StoreError::query("begin the backup's read transaction");
    let created_at = super::now();
    on_pool!(store, |pool| {
        let mut tx = pool.begin().await.map_err(begin)?;
        if backend == Backend::Postgres {
            sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                .execute(&mut *tx)
                .await
                .map_err(StoreError::query("begin the backup's read transaction"))?;
        }
        let (schema_version, tables) = read_schema!(backend, tx)?;
        let header = Header {
            format: BACKUP_FORMAT_VERSION,
            schema_version,
            created_at,
            backend: backend.as_str().to_owned(),
            producer: format!("talos-manager {}", env!("CARGO_PKG_VERSION")),
        };
        let mut out = SealWriter::start(store, writer, &header)?;
        let mut counts = Vec::with_capacity(tables.len());
        for (table, columns) in &tables {
            let marker = serde_json::json!({
                "table": table,
                "columns": columns
                    .iter()
                    .map(|column| (column.name.as_str(), column.ty.file_type()))
                    .collect::<Vec<_>>(),
            });
            out.line(&marker)?;
            let select = columns
                .iter()
                .map(|column| column.ty.select(&quote(&column.name)))
                .collect::<Vec<_>>()
                .join(", ");
            let order = if columns.iter().any(|column| column.name == "id") {
                " ORDER BY \"id\""
            } else {
                ""
            };
            let sql = sql!("SELECT {select} FROM {}{order}", quote(table));
            let mut rows = sqlx::query(sql).fetch(&mut *tx);
            let mut n = 0u64;
            while let Some(row) = rows
                .try_next()
                .await
                .map_err(StoreError::query("read rows for the backup"))?
            {
                let mut values = Vec::with_capacity(columns.len());
                for (i, column) in columns.iter().enumerate() {
                    let decode = StoreError::query("decode a row for the backup");
                    let value = match column.ty {
                        DbType::Int64 | DbType::Int32 => row
                            .try_get::<Option<i64>, _>(i)
                            .map(|v| v.map_or(serde_json::Value::Null, Into::into)),
                        DbType::Bool => row
                            .try_get::<Option<bool>, _>(i)
                            .map(|v| v.map_or(serde_json::Value::Null, Into::into)),
                        DbType::Bytes => row.try_get::<Option<Vec<u8>>, _>(i).map(|v| {
                            v.map_or(serde_json::Value::Null, |bytes| BASE64.encode(bytes).into())
                        }),
                        DbType::Text | DbType::Other => row
                            .try_get::<Option<String>, _>(i)
                            .map(|v| v.map_or(serde_json::Value::Null, Into::into)),
                        DbType::Timestamp => row
                            .try_get::<Option<OffsetDateTime>, _>(i)
                            .map(|v| v.and_then(|at| at.format(&Rfc3339).ok()))
                            .map(|v| v.map_or(serde_json::Value::Null, Into::into)),
                    }
                    .map_err(decode)?;
                    values.push(value);
                }
                out.line(&serde_json::Value::Array(values))?;
                n += 1;
            }
            drop(rows);
            let count = TableCount {
                table: table.clone(),
                rows: n,
            };
            progress(&count);
            counts.push(count);
        }
        let total: u64 = counts.iter().map(|count| count.rows).sum();
        out.line(&serde_json::json!({"end": {"tables": counts.len(), "rows": total}}))?;
        out.finish()?;
        tx.rollback()
            .await
            .map_err(StoreError::query("end the backup's read transaction"))?;
        Ok(BackupSummary {
            schema_version,
            created_at,
            tables: counts,
        })
    })
}

/// Inserts the rows bound in `$batch` into `$target`'s table.
macro_rules! insert {
    ($tx:expr, $target:expr, $batch:expr) => {{
        let sql = sql!("{}", $target.insert_sql($target.pending_rows(&$batch)));
        let mut query = sqlx::query(sql);
        for value in $batch.drain(..) {
            query = match value {
                Bound::Int(v) => query.bind(v),
                Bound::Bool(v) => query.bind(v),
                Bound::Bytes(v) => query.bind(v),
                Bound::Text(v) => query.bind(v),
            };
        }
        query
            .execute(&mut *$tx)
            .await
            .map_err(|e| StoreError::from_write("restored row", "restore rows", e))?;
    }};
}

/// After a table's rows: moves PostgreSQL's identity sequences past them (SQLite's
/// `AUTOINCREMENT` follows explicit ids by itself).
macro_rules! target_done {
    ($backend:expr, $tx:expr, $target:expr) => {{
        if $backend == Backend::Postgres {
            for column in $target.columns.iter().filter(|column| column.identity) {
                let table = quote(&$target.table);
                let name = quote(&column.name);
                let sql = sql!(
                    "SELECT setval(pg_get_serial_sequence($1, $2), COALESCE(MAX({name}), 0) + 1, false) FROM {table}"
                );
                sqlx::query(sql)
                    .bind(&table)
                    .bind(&column.name)
                    .execute(&mut *$tx)
                    .await
                    .map_err(StoreError::query("move an identity sequence"))?;
            }
        }
    }};
}

/// Restores a backup made by [`write_backup`] into this store's database, which must be
/// migrated to the backup's schema version and empty. All or nothing: one transaction.
/// `progress` hears of every table restored.
///
/// The store must use the encryption key the backup was made with.
///
/// # Errors
/// [`BackupError::NotABackup`], [`BackupError::UnsupportedFormat`],
/// [`BackupError::Authentication`] (another key, or a damaged file),
/// [`BackupError::SchemaMismatch`], [`BackupError::NotEmpty`] naming the tables with rows,
/// [`BackupError::SchemaDiffers`], [`BackupError::Io`] and the store's errors.
pub async fn restore_backup<R: Read + Send>(
    store: &Store,
    reader: R,
    progress: &mut (dyn FnMut(&TableCount) + Send),
) -> Result<BackupSummary, BackupError> {
    let backend = store.backend();
    let (header, mut input) = OpenReader::start(store, reader)?;
    // The first chunk authenticates the header before anything in it is acted on.
    input.fill()?;
    let _config_inputs = store.config_inputs_change();
    on_pool!(store, |pool| {
        let mut tx = pool
            .begin()
            .await
            .map_err(StoreError::query("begin the restore transaction"))?;
        let (schema_version, tables) = read_schema!(backend, tx)?;
        if header.schema_version != schema_version {
            return Err(BackupError::SchemaMismatch {
                backup: header.schema_version,
                database: schema_version,
            });
        }
        let mut not_empty = Vec::new();
        for (table, _) in &tables {
            let sql = sql!("SELECT COUNT(*) FROM {}", quote(table));
            let rows: i64 = sqlx::query_scalar(sql)
                .fetch_one(&mut *tx)
                .await
                .map_err(StoreError::query("count rows"))?;
            if rows > 0 {
                not_empty.push(TableCount {
                    table: table.clone(),
                    rows: rows.unsigned_abs(),
                });
            }
        }
        if !not_empty.is_empty() {
            return Err(BackupError::NotEmpty { tables: not_empty });
        }
        let by_name: BTreeMap<&str, &Vec<Column>> = tables
            .iter()
            .map(|(table, columns)| (table.as_str(), columns))
            .collect();
        let mut counts: Vec<TableCount> = Vec::new();
        let mut current: Option<TableTarget> = None;
        let mut batch: Vec<Bound> = Vec::new();
        let mut total_rows = 0u64;
        let end = loop {
            let Some(line) = input.next_line()? else {
                return Err(damaged("the backup ends before its end record"));
            };
            if line.starts_with('[') {
                let Some(target) = current.as_mut() else {
                    return Err(damaged("a row before its table"));
                };
                let values: Vec<serde_json::Value> =
                    serde_json::from_str(&line).map_err(|e| damaged(&format!("a row: {e}")))?;
                target.bind_row(values, &mut batch)?;
                target.rows += 1;
                if target.pending_rows(&batch) >= target.rows_per_insert() {
                    insert!(tx, target, batch);
                }
                continue;
            }
            let record: Record =
                serde_json::from_str(&line).map_err(|e| damaged(&format!("a record: {e}")))?;
            if let Some(target) = current.take() {
                if !batch.is_empty() {
                    insert!(tx, target, batch);
                }
                total_rows += target.rows;
                let count = TableCount {
                    table: target.table.clone(),
                    rows: target.rows,
                };
                progress(&count);
                counts.push(count);
                target_done!(backend, tx, target);
            }
            match record {
                Record::Table { table, columns } => {
                    let Some(target_columns) = by_name.get(table.as_str()) else {
                        return Err(BackupError::SchemaDiffers {
                            detail: format!("this database has no table {table}"),
                        });
                    };
                    current = Some(TableTarget::new(backend, &table, &columns, target_columns)?);
                }
                Record::End { end } => break end,
            }
        };
        if input.next_line()?.is_some() {
            return Err(damaged("records after the end record"));
        }
        if usize::try_from(end.tables).ok() != Some(counts.len()) || end.rows != total_rows {
            return Err(damaged("the end record does not count what came before it"));
        }
        let restored: BTreeSet<&str> = counts.iter().map(|count| count.table.as_str()).collect();
        if let Some((missing, _)) = tables
            .iter()
            .find(|(table, _)| !restored.contains(table.as_str()))
        {
            return Err(BackupError::SchemaDiffers {
                detail: format!("the backup has no table {missing}"),
            });
        }
        tx.commit()
            .await
            .map_err(StoreError::query("commit the restore"))?;
        Ok(BackupSummary {
            schema_version,
            created_at: header.created_at,
            tables: counts,
        })
    })
}

fn damaged(detail: &str) -> BackupError {
    BackupError::Damaged {
        detail: detail.to_owned(),
    }
}

/// A record line of the plaintext other than a row.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Record {
    Table {
        table: String,
        columns: Vec<(String, FileType)>,
    },
    End {
        end: EndRecord,
    },
}

#[derive(Debug, Deserialize)]
struct EndRecord {
    tables: u64,
    rows: u64,
}

/// The table being restored: the backup's columns matched to the database's.
struct TableTarget {
    backend: Backend,
    table: String,
    /// The database's columns, in the backup's order.
    columns: Vec<Column>,
    /// The backup's type of each.
    file_types: Vec<FileType>,
    rows: u64,
}

impl TableTarget {
    fn new(
        backend: Backend,
        table: &str,
        file_columns: &[(String, FileType)],
        db_columns: &[Column],
    ) -> Result<TableTarget, BackupError> {
        let differs = |detail: String| BackupError::SchemaDiffers { detail };
        let mut columns = Vec::with_capacity(file_columns.len());
        let mut file_types = Vec::with_capacity(file_columns.len());
        for (name, file_type) in file_columns {
            let Some(column) = db_columns.iter().find(|column| &column.name == name) else {
                return Err(differs(format!(
                    "this database has no column {table}.{name}"
                )));
            };
            if column.ty.file_type() != *file_type {
                return Err(differs(format!(
                    "column {table}.{name} is {:?} in the backup and {:?} here",
                    file_type,
                    column.ty.file_type()
                )));
            }
            if columns.iter().any(|c: &Column| &c.name == name) {
                return Err(differs(format!("column {table}.{name} appears twice")));
            }
            columns.push(column.clone());
            file_types.push(*file_type);
        }
        if let Some(missing) = db_columns
            .iter()
            .find(|column| !file_columns.iter().any(|(name, _)| name == &column.name))
        {
            return Err(differs(format!(
                "the backup has no column {table}.{}",
                missing.name
            )));
        }
        Ok(TableTarget {
            backend,
            table: table.to_owned(),
            columns,
            file_types,
            rows: 0,
        })
    }

    fn rows_per_insert(&self) -> usize {
        (MAX_BINDS / self.columns.len().max(1)).max(1)
    }

    fn pending_rows(&self, batch: &[Bound]) -> usize {
        batch.len() / self.columns.len().max(1)
    }

    fn insert_sql(&self, rows: usize) -> String {
        let names = self
            .columns
            .iter()
            .map(|column| quote(&column.name))
            .collect::<Vec<_>>()
            .join(", ");
        let mut n = 0;
        let tuples = (0..rows)
            .map(|_| {
                let placeholders = self
                    .columns
                    .iter()
                    .map(|column| {
                        n += 1;
                        column.placeholder(self.backend, n)
                    })
                    .collect::<Vec<_>>()
                    .join(", ");
                format!("({placeholders})")
            })
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            "INSERT INTO {} ({names}) VALUES {tuples}",
            quote(&self.table)
        )
    }

    /// Appends one row's values, typed for the database's columns.
    fn bind_row(
        &self,
        values: Vec<serde_json::Value>,
        batch: &mut Vec<Bound>,
    ) -> Result<(), BackupError> {
        use serde_json::Value;
        if values.len() != self.columns.len() {
            return Err(damaged(&format!(
                "a row of {} has {} values for {} columns",
                self.table,
                values.len(),
                self.columns.len()
            )));
        }
        for ((value, file_type), column) in
            values.into_iter().zip(&self.file_types).zip(&self.columns)
        {
            let wrong = || damaged(&format!("a value of {}.{}", self.table, column.name));
            let bound = match (file_type, value) {
                (FileType::Int, Value::Null) => Bound::Int(None),
                (FileType::Int, Value::Number(n)) => {
                    Bound::Int(Some(n.as_i64().ok_or_else(wrong)?))
                }
                (FileType::Bool, Value::Null) => Bound::Bool(None),
                (FileType::Bool, Value::Bool(b)) => Bound::Bool(Some(b)),
                (FileType::Bytes, Value::Null) => Bound::Bytes(None),
                (FileType::Bytes, Value::String(s)) => {
                    Bound::Bytes(Some(BASE64.decode(s).map_err(|_| wrong())?))
                }
                (FileType::Text, Value::Null) => Bound::Text(None),
                (FileType::Text, Value::String(s)) => Bound::Text(Some(s)),
                _ => return Err(wrong()),
            };
            batch.push(bound);
        }
        Ok(())
    }
}

/// Writes the header, then the plaintext in encrypted chunks.
struct SealWriter<W> {
    inner: W,
    aead: Aes256Gcm,
    aad: Vec<u8>,
    buffer: Vec<u8>,
    counter: u64,
}

fn nonce(counter: u64, last: bool) -> aes_gcm::aead::Nonce<Aes256Gcm> {
    let mut bytes = [0u8; 12];
    bytes[..8].copy_from_slice(&counter.to_be_bytes());
    bytes[8] = u8::from(last);
    aes_gcm::aead::Nonce::<Aes256Gcm>::from(bytes)
}

impl<W: Write> SealWriter<W> {
    fn start(store: &Store, mut inner: W, header: &Header) -> Result<Self, BackupError> {
        let header = serde_json::to_vec(header).map_err(|e| damaged(&e.to_string()))?;
        let mut salt = [0u8; SALT_LEN];
        aws_lc_rs::rand::fill(&mut salt).map_err(|_| {
            BackupError::Io(std::io::Error::other("the system random source failed"))
        })?;
        let mut aad = Vec::with_capacity(MAGIC.len() + 5 + header.len() + SALT_LEN);
        aad.extend_from_slice(MAGIC);
        aad.push(BACKUP_FORMAT_VERSION);
        aad.extend_from_slice(
            &u32::try_from(header.len())
                .unwrap_or(u32::MAX)
                .to_be_bytes(),
        );
        aad.extend_from_slice(&header);
        aad.extend_from_slice(&salt);
        inner.write_all(&aad).map_err(BackupError::Io)?;
        Ok(SealWriter {
            inner,
            aead: store.cipher.backup_aead(&salt),
            aad,
            buffer: Vec::with_capacity(CHUNK_LEN * 2),
            counter: 0,
        })
    }

    fn line(&mut self, value: &serde_json::Value) -> Result<(), BackupError> {
        serde_json::to_writer(&mut self.buffer, value).map_err(|e| damaged(&e.to_string()))?;
        self.buffer.push(b'\n');
        while self.buffer.len() > CHUNK_LEN {
            let rest = self.buffer.split_off(CHUNK_LEN);
            let chunk = std::mem::replace(&mut self.buffer, rest);
            self.seal(&chunk, false)?;
        }
        Ok(())
    }

    fn seal(&mut self, plaintext: &[u8], last: bool) -> Result<(), BackupError> {
        let ciphertext = self
            .aead
            .encrypt(
                &nonce(self.counter, last),
                Payload {
                    msg: plaintext,
                    aad: &self.aad,
                },
            )
            .map_err(|_| BackupError::Authentication)?;
        self.counter += 1;
        let len = u32::try_from(ciphertext.len()).unwrap_or(u32::MAX);
        self.inner
            .write_all(&len.to_be_bytes())
            .and_then(|()| self.inner.write_all(&ciphertext))
            .map_err(BackupError::Io)
    }

    fn finish(mut self) -> Result<(), BackupError> {
        let chunk = std::mem::take(&mut self.buffer);
        self.seal(&chunk, true)?;
        self.inner.flush().map_err(BackupError::Io)
    }
}

/// Reads the header, then decrypts the chunks and splits the plaintext into lines.
struct OpenReader<R> {
    inner: R,
    aead: Aes256Gcm,
    aad: Vec<u8>,
    counter: u64,
    done: bool,
    plaintext: Vec<u8>,
    position: usize,
}

/// `read_exact`, with an early end of the file as [`BackupError::Authentication`] (a
/// truncated file).
fn read_exact(reader: &mut impl Read, buffer: &mut [u8]) -> Result<(), BackupError> {
    reader.read_exact(buffer).map_err(|error| {
        if error.kind() == std::io::ErrorKind::UnexpectedEof {
            BackupError::Authentication
        } else {
            BackupError::Io(error)
        }
    })
}

impl<R: Read> OpenReader<R> {
    fn start(store: &Store, mut inner: R) -> Result<(Header, Self), BackupError> {
        let mut magic = [0u8; 8];
        inner.read_exact(&mut magic).map_err(|error| {
            if error.kind() == std::io::ErrorKind::UnexpectedEof {
                BackupError::NotABackup
            } else {
                BackupError::Io(error)
            }
        })?;
        if &magic != MAGIC {
            return Err(BackupError::NotABackup);
        }
        let mut fixed = [0u8; 5];
        read_exact(&mut inner, &mut fixed)?;
        if fixed[0] != BACKUP_FORMAT_VERSION {
            return Err(BackupError::UnsupportedFormat {
                found: fixed[0],
                supported: BACKUP_FORMAT_VERSION,
            });
        }
        let header_len = u32::from_be_bytes([fixed[1], fixed[2], fixed[3], fixed[4]]);
        if header_len > MAX_HEADER_LEN {
            return Err(BackupError::Authentication);
        }
        let mut header = vec![0u8; header_len as usize];
        read_exact(&mut inner, &mut header)?;
        let mut salt = [0u8; SALT_LEN];
        read_exact(&mut inner, &mut salt)?;
        let mut aad = Vec::with_capacity(MAGIC.len() + 5 + header.len() + SALT_LEN);
        aad.extend_from_slice(MAGIC);
        aad.extend_from_slice(&fixed);
        aad.extend_from_slice(&header);
        aad.extend_from_slice(&salt);
        // An edited header fails authentication with the first chunk; until then it is only
        // parsed.
        let header: Header =
            serde_json::from_slice(&header).map_err(|_| BackupError::Authentication)?;
        let reader = OpenReader {
            inner,
            aead: store.cipher.backup_aead(&salt),
            aad,
            counter: 0,
            done: false,
            plaintext: Vec::new(),
            position: 0,
        };
        Ok((header, reader))
    }

    /// Decrypts the next chunk into the plaintext buffer; false after the last one.
    fn fill(&mut self) -> Result<bool, BackupError> {
        if self.done {
            let mut extra = [0u8; 1];
            return match self.inner.read(&mut extra).map_err(BackupError::Io)? {
                0 => Ok(false),
                _ => Err(BackupError::Authentication),
            };
        }
        let mut len = [0u8; 4];
        read_exact(&mut self.inner, &mut len)?;
        let len = u32::from_be_bytes(len) as usize;
        if !(TAG_LEN..=CHUNK_LEN + TAG_LEN).contains(&len) {
            return Err(BackupError::Authentication);
        }
        let mut ciphertext = vec![0u8; len];
        read_exact(&mut self.inner, &mut ciphertext)?;
        let open = |last| {
            self.aead.decrypt(
                &nonce(self.counter, last),
                Payload {
                    msg: &ciphertext,
                    aad: &self.aad,
                },
            )
        };
        let (plaintext, last) = match open(false) {
            Ok(plaintext) => (plaintext, false),
            Err(_) => (open(true).map_err(|_| BackupError::Authentication)?, true),
        };
        self.counter += 1;
        self.done = last;
        self.plaintext.drain(..self.position);
        self.position = 0;
        self.plaintext.extend_from_slice(&plaintext);
        Ok(true)
    }

    /// The next line of the plaintext, `None` at its end.
    fn next_line(&mut self) -> Result<Option<String>, BackupError> {
        loop {
            if let Some(end) = self.plaintext[self.position..]
                .iter()
                .position(|&byte| byte == b'\n')
            {
                let line = &self.plaintext[self.position..self.position + end];
                let line =
                    String::from_utf8(line.to_vec()).map_err(|_| damaged("a line is not UTF-8"))?;
                self.position += end + 1;
                return Ok(Some(line));
            }
            if !self.fill()? {
                if self.position < self.plaintext.len() {
                    return Err(damaged("the last line is cut short"));
                }
                return Ok(None);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_come_after_the_tables_they_refer_to() {
        let tables = [
            "servers",
            "clusters",
            "jobs",
            "provider_accounts",
            "settings",
        ]
        .map(String::from)
        .to_vec();
        let references = [
            ("servers", "clusters"),
            ("servers", "provider_accounts"),
            ("jobs", "servers"),
            ("jobs", "jobs"),
        ]
        .map(|(a, b)| (a.to_owned(), b.to_owned()));
        let order = foreign_key_order(tables, &references).unwrap();
        assert_eq!(
            order,
            [
                "clusters",
                "provider_accounts",
                "settings",
                "servers",
                "jobs"
            ]
        );
        let cycle = [("a", "b"), ("b", "a")].map(|(a, b)| (a.to_owned(), b.to_owned()));
        let error = foreign_key_order(vec!["a".into(), "b".into()], &cycle).unwrap_err();
        assert!(error.to_string().contains("cycle"), "{error}");
    }
}
