//! Secrets never live in the config file itself: a `*_env` key names an environment variable,
//! a `*_file` key names a file (a mounted Docker/Kubernetes secret, say). This module turns
//! either into a `SecretString` and, when that fails, says which key and which variable or
//! file is wrong without ever printing the value.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use secrecy::SecretString;

/// Why a secret could not be resolved. Names the config keys and the variable or file,
/// never the value.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("{name}: set either `{name}_env` or `{name}_file`")]
    Missing { name: String },
    #[error("{name}: set only one of `{name}_env` and `{name}_file`, not both")]
    Ambiguous { name: String },
    #[error("`{key}`: environment variable {variable} is not set")]
    EnvUnset { key: String, variable: String },
    #[error("`{key}`: environment variable {variable} is not valid UTF-8")]
    EnvNotUnicode { key: String, variable: String },
    #[error("`{key}`: environment variable {variable} is empty")]
    EnvEmpty { key: String, variable: String },
    #[error("`{key}`: cannot read {}: {cause}", path.display())]
    FileUnreadable {
        key: String,
        path: PathBuf,
        cause: String,
    },
    #[error("`{key}`: file {} is empty", path.display())]
    FileEmpty { key: String, path: PathBuf },
}

/// Resolves the secret configured under `<name>_env` / `<name>_file` (exactly one must be set).
///
/// A file may end in a newline (as `echo secret > file` writes it); that newline is not part of
/// the secret. A value that is empty or only whitespace counts as missing.
pub fn resolve_secret(
    name: &str,
    env: Option<&str>,
    file: Option<&Path>,
) -> Result<SecretString, SecretError> {
    resolve_secret_with(name, env, file, |variable| std::env::var_os(variable))
}

/// `resolve_secret` with the environment passed in, so tests need not mutate the process
/// environment (which other test threads read concurrently).
pub fn resolve_secret_with(
    name: &str,
    env: Option<&str>,
    file: Option<&Path>,
    lookup_env: impl Fn(&str) -> Option<OsString>,
) -> Result<SecretString, SecretError> {
    match (env, file) {
        (None, None) => Err(SecretError::Missing {
            name: name.to_string(),
        }),
        (Some(_), Some(_)) => Err(SecretError::Ambiguous {
            name: name.to_string(),
        }),
        (Some(variable), None) => {
            let key = format!("{name}_env");
            let value = lookup_env(variable).ok_or_else(|| SecretError::EnvUnset {
                key: key.clone(),
                variable: variable.to_string(),
            })?;
            let value = value
                .into_string()
                .map_err(|_| SecretError::EnvNotUnicode {
                    key: key.clone(),
                    variable: variable.to_string(),
                })?;
            if value.trim().is_empty() {
                return Err(SecretError::EnvEmpty {
                    key,
                    variable: variable.to_string(),
                });
            }
            Ok(SecretString::from(value))
        }
        (None, Some(path)) => {
            let key = format!("{name}_file");
            let mut value =
                std::fs::read_to_string(path).map_err(|error| SecretError::FileUnreadable {
                    key: key.clone(),
                    path: path.to_path_buf(),
                    // The io::Error text names the OS error only, never the file content.
                    cause: error.to_string(),
                })?;
            let kept = value.trim_end_matches(['\n', '\r']).len();
            value.truncate(kept);
            if value.trim().is_empty() {
                return Err(SecretError::FileEmpty {
                    key,
                    path: path.to_path_buf(),
                });
            }
            Ok(SecretString::from(value))
        }
    }
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    fn env_with(value: &'static str) -> impl Fn(&str) -> Option<OsString> {
        move |variable| (variable == "JAMF_SECRET").then(|| OsString::from(value))
    }

    #[test]
    fn reads_the_named_variable() {
        let secret = resolve_secret_with(
            "client_secret",
            Some("JAMF_SECRET"),
            None,
            env_with("s3cr3t"),
        )
        .unwrap();
        assert_eq!(secret.expose_secret(), "s3cr3t");
    }

    #[test]
    fn unset_and_empty_variables_name_key_and_variable_but_not_value() {
        let unset =
            resolve_secret_with("client_secret", Some("OTHER"), None, env_with("x")).unwrap_err();
        assert_eq!(
            unset.to_string(),
            "`client_secret_env`: environment variable OTHER is not set"
        );
        let empty = resolve_secret_with("password", Some("JAMF_SECRET"), None, env_with(" \n"))
            .unwrap_err();
        assert_eq!(
            empty.to_string(),
            "`password_env`: environment variable JAMF_SECRET is empty"
        );
    }

    #[test]
    fn neither_or_both_keys_is_an_error() {
        let missing = resolve_secret_with("password", None, None, env_with("x")).unwrap_err();
        assert!(missing.to_string().contains("password_env"));
        assert!(missing.to_string().contains("password_file"));
        let both = resolve_secret_with(
            "password",
            Some("JAMF_SECRET"),
            Some(Path::new("/nonexistent")),
            env_with("x"),
        )
        .unwrap_err();
        assert!(matches!(both, SecretError::Ambiguous { .. }));
    }

    #[test]
    fn files_lose_their_trailing_newline_and_empty_files_fail() {
        let dir = std::env::temp_dir();
        let path = dir.join(format!("bestand-secret-test-{}", std::process::id()));
        std::fs::write(&path, "line-secret\r\n").unwrap();
        let secret = resolve_secret("client_secret", None, Some(&path)).unwrap();
        assert_eq!(secret.expose_secret(), "line-secret");
        assert!(!format!("{secret:?}").contains("line-secret"));

        std::fs::write(&path, "\n").unwrap();
        let empty = resolve_secret("client_secret", None, Some(&path)).unwrap_err();
        assert!(matches!(empty, SecretError::FileEmpty { .. }));
        assert!(empty.to_string().contains("client_secret_file"));
        std::fs::remove_file(&path).unwrap();

        let unreadable = resolve_secret("client_secret", None, Some(&path)).unwrap_err();
        assert!(unreadable.to_string().contains(&path.display().to_string()));
    }
}
