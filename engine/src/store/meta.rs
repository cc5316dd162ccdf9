//! Metadata of a data directory, kept in sled: the data format version and
//! the name of the newest snapshot.
//!
//! sled 0.34 is not crash-proof on its own, so nothing here is a source of
//! truth: a missing or unreadable metadata store is recreated, and the newest
//! snapshot is then found by listing the snapshot directory. The log is the
//! truth; this store only saves a directory listing and guards against opening
//! a directory written by a newer format.

use std::path::Path;

use crate::error::{Error, Result};

/// Format version of a data directory written by this build.
pub const DATA_FORMAT_VERSION: u64 = 1;
const KEY_FORMAT: &[u8] = b"format_version";
const KEY_SNAPSHOT: &[u8] = b"newest_snapshot";

/// The metadata store.
pub(crate) struct Meta {
    db: sled::Db,
}

fn sled_error(context: &str, e: sled::Error) -> Error {
    Error::Io { context: context.to_string(), source: std::io::Error::other(e.to_string()) }
}

impl Meta {
    /// Opens (or recreates) the store in `dir`. Returns whether it had to be recreated.
    pub fn open(dir: &Path) -> Result<(Meta, bool)> {
        let config = sled::Config::new().path(dir).flush_every_ms(None);
        let (db, recreated) = match config.open() {
            Ok(db) => (db, false),
            Err(_) => {
                // Derived metadata only: start over rather than refuse to open.
                let _ = std::fs::remove_dir_all(dir);
                let db =
                    sled::Config::new().path(dir).flush_every_ms(None).open().map_err(|e| {
                        sled_error(&format!("recreating metadata store {}", dir.display()), e)
                    })?;
                (db, true)
            }
        };
        let meta = Meta { db };
        match meta.db.get(KEY_FORMAT).map_err(|e| sled_error("reading format version", e))? {
            Some(raw) => {
                let version = raw.as_ref().try_into().map(u64::from_le_bytes).unwrap_or(u64::MAX);
                if version > DATA_FORMAT_VERSION {
                    return Err(Error::corrupt(
                        dir,
                        format!(
                            "data directory has format version {version}; this build understands up to {DATA_FORMAT_VERSION}"
                        ),
                    ));
                }
            }
            None => {
                meta.db
                    .insert(KEY_FORMAT, &DATA_FORMAT_VERSION.to_le_bytes())
                    .map_err(|e| sled_error("writing format version", e))?;
                meta.flush()?;
            }
        }
        Ok((meta, recreated))
    }

    fn flush(&self) -> Result<()> {
        self.db.flush().map(|_| ()).map_err(|e| sled_error("flushing metadata", e))
    }

    /// The newest snapshot's file name, as last recorded.
    pub fn newest_snapshot(&self) -> Option<String> {
        let raw = self.db.get(KEY_SNAPSHOT).ok()??;
        String::from_utf8(raw.to_vec()).ok()
    }

    /// Records the newest snapshot's file name.
    pub fn set_newest_snapshot(&self, name: &str) -> Result<()> {
        self.db
            .insert(KEY_SNAPSHOT, name.as_bytes())
            .map_err(|e| sled_error("recording snapshot", e))?;
        self.flush()
    }
}
