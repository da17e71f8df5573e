//! `talos-manager backup` and `talos-manager restore`: core's backups
//! ([`talos_manager_core::store::backup`]) to and from a file.

use std::io::{BufReader, BufWriter, Write as _};
use std::path::{Path, PathBuf};

use talos_manager_core::Store;
use talos_manager_core::store::backup::{
    BackupError, BackupSummary, TableCount, restore_backup, write_backup,
};

/// Why a backup file could not be written or restored.
#[derive(Debug, thiserror::Error)]
pub enum BackupFileError {
    /// The file (or its temporary file) could not be opened, written or renamed.
    #[error("failed to {action} {path}")]
    Io {
        /// What was done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O failure.
        #[source]
        source: std::io::Error,
    },
    /// Core's backup or restore failed.
    #[error(transparent)]
    Backup(#[from] BackupError),
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> BackupFileError {
    let path = path.to_owned();
    move |source| BackupFileError::Io {
        action,
        path,
        source,
    }
}

/// Writes a backup of `store` to `output`, atomically: into a temporary file of mode 0600 in
/// the same directory, synced, then renamed over `output`. A failed backup leaves no file
/// behind (and an older backup at `output` untouched). `progress` hears of every table.
///
/// # Errors
/// [`BackupFileError::Io`] for the file, and core's [`BackupError`]s.
pub async fn backup_to_file(
    store: &Store,
    output: &Path,
    progress: &mut (dyn FnMut(&TableCount) + Send),
) -> Result<BackupSummary, BackupFileError> {
    let directory = match output.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
        _ => PathBuf::from("."),
    };
    let name = output.file_name().map_or_else(
        || "backup".into(),
        |name| name.to_string_lossy().into_owned(),
    );
    let temporary = directory.join(format!(".{name}.{}.tmp", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file = options
        .open(&temporary)
        .map_err(io("create the temporary backup file", &temporary))?;
    let result = async {
        let mut writer = BufWriter::new(file);
        let summary = write_backup(store, &mut writer, progress).await?;
        let file = writer
            .into_inner()
            .map_err(|error| io("write", &temporary)(error.into_error()))?;
        file.sync_all().map_err(io("sync", &temporary))?;
        std::fs::rename(&temporary, output).map_err(io("rename the backup to", output))?;
        // The rename is durable once the directory is synced.
        if let Ok(directory) = std::fs::File::open(&directory) {
            let _ = directory.sync_all();
        }
        Ok(summary)
    }
    .await;
    if result.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    result
}

/// Restores the backup in `file` into `store`'s database, which must be empty. All or
/// nothing. `progress` hears of every table.
///
/// # Errors
/// [`BackupFileError::Io`] for the file, and core's [`BackupError`]s (another key, a damaged
/// file, a database that is not empty, another schema version).
pub async fn restore_from_file(
    store: &Store,
    file: &Path,
    progress: &mut (dyn FnMut(&TableCount) + Send),
) -> Result<BackupSummary, BackupFileError> {
    let reader = std::fs::File::open(file).map_err(io("open", file))?;
    Ok(restore_backup(store, BufReader::new(reader), progress).await?)
}

/// Flushes standard error after a progress line, so that progress shows as it happens.
pub fn flush_progress() {
    let _ = std::io::stderr().flush();
}
