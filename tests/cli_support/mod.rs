//! Shared support for tests that run the `bamdp` binary: running it, and the checks of
//! the CLI's error contract (bad user input exits with code 2 and a message, never a
//! panic).
#![allow(dead_code)] // each test binary uses its own share

use std::process::{Command, Output, Stdio};

/// Runs the `bamdp` binary of this build with `args` (no stdin) and waits for it.
pub fn bamdp(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bamdp"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("bamdp runs")
}

/// The process's standard error as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A clean user error: exit code 2, no panic, and every `needle` in the message.
pub fn assert_user_error(o: &Output, needles: &[&str]) {
    let err = stderr(o);
    assert_eq!(
        o.status.code(),
        Some(2),
        "expected exit 2, got {:?}; stderr: {err}",
        o.status
    );
    assert!(!err.contains("panicked"), "panicked: {err}");
    for n in needles {
        assert!(err.contains(n), "message should mention {n:?}: {err}");
    }
}

/// [`assert_user_error`], and the message is one line.
pub fn assert_one_line_user_error(o: &Output, needles: &[&str]) {
    assert_user_error(o, needles);
    let err = stderr(o);
    assert_eq!(err.trim().lines().count(), 1, "expected one line: {err}");
}
