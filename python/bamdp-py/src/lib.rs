//! `bamdp._native`: the compiled half of the `bamdp` Python package (python/bamdp/).
//! Batched environments ([`env`]), the MNIW GLM library ([`glm`]) and trained agents and
//! training ([`agent`]) on NumPy arrays. Every error a caller can cause comes back as a
//! Python exception with bamdp's own message; nothing here panics on user input.

mod agent;
mod arrays;
mod env;
mod errors;
mod glm;

use pyo3::prelude::*;

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    env::register(m)?;
    glm::register(m)?;
    agent::register(m)?;
    Ok(())
}
