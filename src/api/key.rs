//! The API key: read from the environment or a credentials file, never logged, never stored.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::config::KeySource;

/// A secret that prints as `[redacted]`.
#[derive(Clone)]
pub struct ApiKey(String);

impl ApiKey {
    pub fn new(key: impl Into<String>) -> ApiKey {
        ApiKey(key.into())
    }

    /// The secret itself, for the one header that carries it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey([redacted])")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(
        "no API key: set the environment variable {0} (or api_key_file in [api]; under systemd, LoadCredential=api_key)"
    )]
    MissingEnv(String),
    #[error("cannot read the API key file {path}: {source}")]
    File {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the API key from {0} is empty")]
    Empty(String),
}

/// Resolves the key from its source. A relative `api_key_file` is looked up in systemd's
/// `$CREDENTIALS_DIRECTORY` first; with the default environment source and no variable set, a
/// credential named `api_key` is used when systemd provides one.
pub fn resolve(source: &KeySource) -> Result<ApiKey, KeyError> {
    let creds = std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from);
    match source {
        KeySource::File(path) => {
            let path = match (&creds, path.is_relative()) {
                (Some(dir), true) if dir.join(path).exists() => dir.join(path),
                _ => path.clone(),
            };
            read_file(&path)
        }
        KeySource::Env(var) => match std::env::var(var) {
            Ok(k) if !k.trim().is_empty() => Ok(ApiKey(k.trim().to_string())),
            Ok(_) => Err(KeyError::Empty(format!("${var}"))),
            Err(_) => match creds.map(|d| d.join("api_key")).filter(|p| p.exists()) {
                Some(p) => read_file(&p),
                None => Err(KeyError::MissingEnv(var.clone())),
            },
        },
    }
}

/// The warning for a key file that others can read, if `path` is one.
pub fn exposure(path: &Path) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = path.metadata().ok()?.permissions().mode();
    (mode & 0o077 != 0).then(|| {
        format!(
            "the API key file {} is readable by {} (mode {:o}); fix it with: chmod 600 {}",
            path.display(),
            if mode & 0o007 != 0 {
                "every user"
            } else {
                "its group"
            },
            mode & 0o777,
            path.display()
        )
    })
}

fn read_file(path: &Path) -> Result<ApiKey, KeyError> {
    if let Some(w) = exposure(path) {
        tracing::warn!("{w}");
    }
    let text = std::fs::read_to_string(path).map_err(|source| KeyError::File {
        path: path.to_path_buf(),
        source,
    })?;
    let key = text.trim();
    if key.is_empty() {
        return Err(KeyError::Empty(path.display().to_string()));
    }
    Ok(ApiKey(key.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_file_others_can_read_draws_a_warning_with_the_fix() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("key");
        std::fs::write(&f, "k").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        let w = exposure(&f).unwrap();
        assert!(
            w.contains("every user") && w.contains(&format!("chmod 600 {}", f.display())),
            "{w}"
        );
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert!(exposure(&f).unwrap().contains("its group"));
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(exposure(&f), None);
    }

    #[test]
    fn the_key_never_prints() {
        let k = ApiKey::new("sk-very-secret");
        assert!(!format!("{k:?}").contains("secret"));
    }

    #[test]
    fn a_key_file_is_read_and_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k");
        std::fs::write(&p, "abc123\n").unwrap();
        assert_eq!(resolve(&KeySource::File(p)).unwrap().expose(), "abc123");
        let empty = dir.path().join("e");
        std::fs::write(&empty, "\n").unwrap();
        assert!(matches!(
            resolve(&KeySource::File(empty)),
            Err(KeyError::Empty(_))
        ));
    }

    #[test]
    fn a_missing_variable_names_itself() {
        let err = resolve(&KeySource::Env("WATCHBELL_TEST_SURELY_UNSET".into())).unwrap_err();
        assert!(err.to_string().contains("WATCHBELL_TEST_SURELY_UNSET"));
    }
}
