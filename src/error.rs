//! Typed errors. [`UserError`] is everything a user can cause (bad config, flag,
//! checkpoint, path); the CLI prints it and exits with code 2, never panics.

use std::path::PathBuf;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum UserError {
    /// A value that is not allowed: `key` names where it came from (a config key, a
    /// flag), `allowed` says what would be accepted.
    #[error("{location}invalid value {value:?} for `{key}`: expected {allowed}")]
    Invalid {
        location: String,
        key: String,
        value: String,
        allowed: String,
    },
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("{0}")]
    Other(String),
}

impl UserError {
    pub fn invalid(key: &str, value: &str, allowed: &str) -> Self {
        UserError::Invalid {
            location: String::new(),
            key: key.to_string(),
            value: value.to_string(),
            allowed: allowed.to_string(),
        }
    }
    /// Same as [`UserError::invalid`], prefixed with the file it came from.
    pub fn invalid_in(file: &std::path::Path, key: &str, value: &str, allowed: &str) -> Self {
        UserError::Invalid {
            location: format!("{}: ", file.display()),
            key: key.to_string(),
            value: value.to_string(),
            allowed: allowed.to_string(),
        }
    }
    pub fn file(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        UserError::File {
            path: path.into(),
            message: message.into(),
        }
    }
}
