//! The two API keys of a server: the public **write key** (browsers may hold
//! it; it may only send events, profiles, subscriptions and engagement) and
//! the secret **admin key** (everything).
//!
//! Both are generated on first start from the OS random source and stored in
//! `keys.json` in the data directory with mode 0600; `NUDGE_WRITE_KEY` and
//! `NUDGE_ADMIN_KEY` override them. Keys are compared in constant time.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use ring::rand::{SecureRandom, SystemRandom};

use crate::error::{Error, Result};

/// The file, inside the data directory, that holds the generated keys.
pub const KEYS_FILE: &str = "keys.json";
/// Random bytes in a generated key (hex-encoded, with a prefix naming its kind).
pub const KEY_BYTES: usize = 24;
/// Shortest key accepted from the environment.
pub const MIN_KEY_LEN: usize = 16;

/// What a request's key allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The public write key.
    Write,
    /// The admin key.
    Admin,
}

/// The server's keys.
#[derive(Clone)]
pub struct ApiKeys {
    /// The public write key.
    pub write: String,
    /// The admin key.
    pub admin: String,
    /// Whether this start generated both keys in use (first start prints
    /// them; keys from the environment are never printed).
    pub created: bool,
}

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Keys never reach logs.
        f.debug_struct("ApiKeys").field("created", &self.created).finish_non_exhaustive()
    }
}

fn generate(prefix: &str) -> Result<String> {
    let mut bytes = [0u8; KEY_BYTES];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| Error::Usage("the OS random source failed while generating a key".into()))?;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("{prefix}_{hex}"))
}

/// Writes `contents` to `path` atomically (temporary file, fsync, rename) with mode 0600.
pub fn write_private(path: &Path, contents: &[u8]) -> Result<()> {
    let io = |e| Error::Io { context: format!("writing {}", path.display()), source: e };
    let temp = path.with_extension("tmp");
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temp)
        .map_err(io)?;
    file.write_all(contents).map_err(io)?;
    file.sync_all().map_err(io)?;
    fs::rename(&temp, path).map_err(io)?;
    if let Some(dir) = path.parent() {
        fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
    }
    Ok(())
}

fn from_env(name: &str) -> Result<Option<String>> {
    match std::env::var(name) {
        Ok(key) if key.len() < MIN_KEY_LEN => {
            Err(Error::Usage(format!("{name} must be at least {MIN_KEY_LEN} characters long")))
        }
        Ok(key) => Ok(Some(key)),
        Err(_) => Ok(None),
    }
}

impl ApiKeys {
    /// Loads the keys of `data_dir`, creating them on first start; the
    /// environment overrides either.
    pub fn load_or_create(data_dir: &Path) -> Result<ApiKeys> {
        let path = data_dir.join(KEYS_FILE);
        let (mut keys, created) = match fs::read(&path) {
            Ok(bytes) => {
                let json: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| {
                    Error::Usage(format!("{} is not valid JSON: {e}", path.display()))
                })?;
                let field = |name: &str| {
                    json.get(name)
                        .and_then(|v| v.as_str())
                        .map(str::to_owned)
                        .ok_or_else(|| Error::Usage(format!("{} has no `{name}`", path.display())))
                };
                (
                    ApiKeys {
                        write: field("write_key")?,
                        admin: field("admin_key")?,
                        created: false,
                    },
                    false,
                )
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let keys =
                    ApiKeys { write: generate("wk")?, admin: generate("ak")?, created: true };
                let json = serde_json::json!({"write_key": keys.write, "admin_key": keys.admin});
                write_private(&path, json.to_string().as_bytes())?;
                (keys, true)
            }
            Err(e) => {
                return Err(Error::Io {
                    context: format!("reading {}", path.display()),
                    source: e,
                });
            }
        };
        // A key from the environment is never printed: only generated keys are
        // shown, once, and only when both in use were generated now.
        let mut overridden = false;
        if let Some(key) = from_env("NUDGE_WRITE_KEY")? {
            keys.write = key;
            overridden = true;
        }
        if let Some(key) = from_env("NUDGE_ADMIN_KEY")? {
            keys.admin = key;
            overridden = true;
        }
        if keys.write == keys.admin {
            return Err(Error::Usage("the write key and the admin key must differ".into()));
        }
        keys.created = created && !overridden;
        Ok(keys)
    }

    /// The role of a presented key, compared in constant time; `None` when it is neither.
    pub fn role_of(&self, presented: &str) -> Option<Role> {
        // Both comparisons always run, so timing does not say which key matched.
        let admin = constant_time_eq(presented.as_bytes(), self.admin.as_bytes());
        let write = constant_time_eq(presented.as_bytes(), self.write.as_bytes());
        if admin {
            Some(Role::Admin)
        } else if write {
            Some(Role::Write)
        } else {
            None
        }
    }
}

/// Compares two byte strings in time that depends on their lengths only.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= usize::from(x ^ y);
    }
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn keys_are_created_once_private_and_told_apart() {
        let dir = tempfile::tempdir().unwrap();
        let keys = ApiKeys::load_or_create(dir.path()).unwrap();
        assert!(keys.created);
        assert!(keys.write.starts_with("wk_") && keys.admin.starts_with("ak_"));
        let mode = fs::metadata(dir.path().join(KEYS_FILE)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = ApiKeys::load_or_create(dir.path()).unwrap();
        assert!(!again.created);
        assert_eq!(
            (again.write.as_str(), again.admin.as_str()),
            (keys.write.as_str(), keys.admin.as_str())
        );
        assert_eq!(keys.role_of(&keys.admin), Some(Role::Admin));
        assert_eq!(keys.role_of(&keys.write), Some(Role::Write));
        assert_eq!(keys.role_of(""), None);
        assert_eq!(keys.role_of(&keys.admin[..keys.admin.len() - 1]), None);
        assert_eq!(keys.role_of(&format!("{}x", keys.write)), None);
    }

    #[test]
    fn constant_time_eq_compares_bytes() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(!constant_time_eq(b"", b"a"));
        assert!(constant_time_eq(b"", b""));
    }
}
