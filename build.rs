//! Records the commit this crate is built from, so that a run's `run.json` names the
//! code that trained it (not whatever repository the user's shell happens to be in).
//! Outside a git checkout (e.g. a crates.io tarball) the revision is left empty.

use std::path::Path;
use std::process::Command;

fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .current_dir(dir)
        .args(args)
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let dir = Path::new(&dir);
    println!("cargo:rerun-if-changed=build.rs");
    // Our own sources (a change can make the tree dirty) and git's view of the commit.
    println!("cargo:rerun-if-changed=src");
    let revision = git(dir, &["rev-parse", "HEAD"]).unwrap_or_default();
    let dirty = if revision.is_empty() {
        String::new()
    } else {
        let status = git(dir, &["status", "--porcelain", "--untracked-files=no"]);
        status.map_or(String::new(), |s| (!s.is_empty()).to_string())
    };
    if !revision.is_empty() {
        let mut watched = vec!["HEAD".to_string(), "index".to_string()];
        if let Some(head_ref) = git(dir, &["symbolic-ref", "-q", "HEAD"]) {
            watched.push(head_ref);
        }
        for name in watched {
            if let Some(path) = git(dir, &["rev-parse", "--git-path", &name]) {
                println!("cargo:rerun-if-changed={}", dir.join(path).display());
            }
        }
    }
    println!("cargo:rustc-env=BAMDP_GIT_REVISION={revision}");
    println!("cargo:rustc-env=BAMDP_GIT_DIRTY={dirty}");
}
