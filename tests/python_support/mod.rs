//! Shared support for tests that need Python packages (MuJoCo, gymnasium, MetaWorld):
//! the interpreter, and whether it can import what a test needs. Without the packages
//! a test prints a notice and returns.
#![allow(dead_code)] // each test binary uses its own share

use std::process::{Command, Stdio};

/// The interpreter the tests and the envs' workers run (`BAMDP_PYTHON`, default
/// `python3`).
pub fn python() -> String {
    std::env::var("BAMDP_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// Whether [`python`] can `import modules` (as written after `import`, e.g.
/// `"mujoco, gymnasium"`); if not, prints a notice naming them and what is `skipped`.
pub fn can_import(modules: &str, skipped: &str) -> bool {
    let ok = Command::new(python())
        .args(["-c", &format!("import {modules}")])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!(
            "NOTICE: {modules} not installed (pip install -r python/requirements.txt); {skipped} skipped"
        );
    }
    ok
}
