use clap::Parser;

fn main() {
    keep_freed_memory();
    let cli = bamdp::cli::Cli::parse();
    if let Err(e) = bamdp::cli::run(cli) {
        eprintln!("error: {e}");
        std::process::exit(e.exit_code());
    }
}

/// Keeps memory that training frees in the process's heap for the next allocation
/// instead of returning it to the OS. A PPO minibatch of RL2 on ML10 allocates ~140 MB
/// of tapes (5,000 steps x 256 units per buffer) and frees them at its end; with
/// glibc's defaults (large blocks mapped on their own, the heap's top trimmed once
/// twice that size is free) that memory went back to the OS every minibatch and was
/// faulted in again, page by page, in the next: 10-13% of the learning time
/// (docs/benchmarks.md, "ML10 learn-only, fourth pass"). Blocks below 32 MB now come
/// from the heap and the heap is not trimmed: the peak is what it was, only its return
/// to the OS waits for the exit.
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; called before any thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
    }
}
