//! The server secret key that encrypts account auth tokens at rest: from the config
//! (`security.secret_key`), else from `<data dir>/secret.key`, generated on first start.

use rand::RngCore;
use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// File name of the generated key inside the data dir.
pub const KEY_FILE: &str = "secret.key";

/// 32 secret bytes. `Debug` never shows them.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretKey([u8; 32]);

impl SecretKey {
    /// Parses 64 hex characters (surrounding whitespace ignored). The error never echoes the
    /// input: it is a secret.
    pub fn from_hex(text: &str) -> Result<SecretKey, String> {
        let text = text.trim();
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(text, &mut bytes).map_err(|_| {
            format!(
                "expected 64 hex characters (32 bytes), got {} characters{}",
                text.chars().count(),
                if text.chars().all(|c| c.is_ascii_hexdigit()) {
                    ""
                } else {
                    " with non-hex ones"
                }
            )
        })?;
        Ok(SecretKey(bytes))
    }

    pub fn bytes(&self) -> [u8; 32] {
        self.0
    }

    fn generate() -> SecretKey {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        SecretKey(bytes)
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SecretKeyError {
    #[error("cannot read secret key file {path}: {error}")]
    Read { path: PathBuf, error: io::Error },
    #[error("cannot create secret key file {path}: {error}")]
    Create { path: PathBuf, error: io::Error },
    #[error("invalid secret key file {path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

/// The configured key if there is one, else the key stored in `data_dir`, created there
/// (folder too) if missing.
pub fn resolve(
    configured: Option<&SecretKey>,
    data_dir: &Path,
) -> Result<SecretKey, SecretKeyError> {
    if let Some(key) = configured {
        return Ok(key.clone());
    }
    let path = data_dir.join(KEY_FILE);
    match read_key_file(&path) {
        Err(SecretKeyError::Read { error, .. }) if error.kind() == io::ErrorKind::NotFound => {
            create_key_file(data_dir, &path)
        }
        other => other,
    }
}

fn read_key_file(path: &Path) -> Result<SecretKey, SecretKeyError> {
    let text = fs::read_to_string(path).map_err(|error| SecretKeyError::Read {
        path: path.to_owned(),
        error,
    })?;
    warn_if_readable_by_others(path);
    SecretKey::from_hex(&text).map_err(|reason| SecretKeyError::Invalid {
        path: path.to_owned(),
        reason,
    })
}

/// Writes a new key to a private temporary file, then links it into place: the key file
/// appears complete or not at all, and when two processes start at once the first link wins
/// and the other reads that key.
fn create_key_file(data_dir: &Path, path: &Path) -> Result<SecretKey, SecretKeyError> {
    let create_error = |error| SecretKeyError::Create {
        path: path.to_owned(),
        error,
    };
    fs::create_dir_all(data_dir).map_err(create_error)?;
    let key = SecretKey::generate();
    let temporary = data_dir.join(format!(".{KEY_FILE}.{}", std::process::id()));
    let written = write_private(&temporary, &format!("{}\n", hex::encode(key.0)))
        .and_then(|()| fs::hard_link(&temporary, path));
    // Best effort: a leftover temporary file holds no key anyone uses.
    let _ = fs::remove_file(&temporary);
    match written {
        Ok(()) => {
            tracing::info!(path = %path.display(), "generated a new secret key");
            Ok(key)
        }
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists => read_key_file(path),
        Err(error) => Err(create_error(error)),
    }
}

fn write_private(path: &Path, contents: &str) -> io::Result<()> {
    // A file left by a crashed start with the same pid would keep its old mode: start afresh.
    let _ = fs::remove_file(path);
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()
}

#[cfg(unix)]
fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(metadata) = fs::metadata(path) {
        if metadata.permissions().mode() & 0o077 != 0 {
            tracing::warn!(
                path = %path.display(),
                "secret key file is accessible to group or others; restrict it with chmod 600"
            );
        }
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_path: &Path) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hex_and_hides_it_in_debug() {
        let key = SecretKey::from_hex(&"ab".repeat(32)).unwrap();
        assert_eq!(key.bytes(), [0xab; 32]);
        assert_eq!(format!("{key:?}"), "SecretKey(<redacted>)");
    }

    #[test]
    fn rejects_bad_hex_without_echoing_it() {
        let error = SecretKey::from_hex("not-a-key").unwrap_err();
        assert!(!error.contains("not-a-key"), "{error}");
        assert!(SecretKey::from_hex(&"ab".repeat(31)).is_err());
        assert!(SecretKey::from_hex(&"zz".repeat(32)).is_err());
    }

    #[test]
    fn configured_key_wins_over_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let configured = SecretKey::from_hex(&"01".repeat(32)).unwrap();
        assert_eq!(resolve(Some(&configured), dir.path()).unwrap(), configured);
        assert!(!dir.path().join(KEY_FILE).exists());
    }

    #[test]
    fn generates_a_private_key_file_once_and_reuses_it() {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().join("nested/data");
        let first = resolve(None, &data_dir).unwrap();
        let second = resolve(None, &data_dir).unwrap();
        assert_eq!(first, second);
        let text = fs::read_to_string(data_dir.join(KEY_FILE)).unwrap();
        assert_eq!(text.trim().len(), 64);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(data_dir.join(KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // Only the key file is left behind.
        assert_eq!(fs::read_dir(&data_dir).unwrap().count(), 1);
    }

    #[test]
    fn a_corrupt_key_file_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(KEY_FILE), "garbage").unwrap();
        let error = resolve(None, dir.path()).unwrap_err().to_string();
        assert!(error.contains("secret.key"), "{error}");
    }
}
