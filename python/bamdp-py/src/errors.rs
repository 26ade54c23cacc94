//! bamdp's typed errors as Python exceptions: a missing file or run folder is a
//! `FileNotFoundError`, every other user error a `ValueError`, with the CLI's message.

use bamdp::belief::glm::GlmError;
use bamdp::error::UserError;
use pyo3::exceptions::{PyFileNotFoundError, PyValueError};
use pyo3::PyErr;

pub fn user(e: UserError) -> PyErr {
    let missing = match &e {
        UserError::File { path, .. } => !path.exists(),
        _ => false,
    };
    if missing {
        PyFileNotFoundError::new_err(e.to_string())
    } else {
        PyValueError::new_err(e.to_string())
    }
}

pub fn glm(e: GlmError) -> PyErr {
    PyValueError::new_err(e.to_string())
}

/// The CLI's phrasing for a bad value: names the argument and what is allowed.
pub fn invalid(key: &str, value: &str, allowed: &str) -> PyErr {
    user(UserError::invalid(key, value, allowed))
}
