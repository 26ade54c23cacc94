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
    /// Training produced a NaN or infinite loss, gradient or parameter and stopped
    /// (exit code 3: not the user's input, but nothing to continue from either).
    #[error("{0}")]
    NonFinite(String),
}

impl UserError {
    /// The process exit code for this error: 3 for a diverged run, 2 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            UserError::NonFinite(_) => 3,
            _ => 2,
        }
    }
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

/// A saved state (checkpoint part) that cannot be restored.
#[derive(Debug, Error)]
pub enum StateError {
    /// The state was saved by a run with a different config or env.
    #[error("{0}")]
    Mismatch(String),
    /// The bytes do not decode.
    #[error("{what}: cannot decode: {detail}")]
    Decode { what: String, detail: String },
    /// The simulator could not be brought back to the saved state (a worker failed
    /// while replaying it).
    #[error("{0}")]
    Replay(String),
}

impl From<String> for StateError {
    /// Messages of the env and belief state loaders (mismatches they detected).
    fn from(message: String) -> Self {
        StateError::Mismatch(message)
    }
}
