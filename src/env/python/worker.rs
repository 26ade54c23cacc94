//! One Python worker process and the Rust side of the pipe protocol
//! (docs/python-bridge.md): spawning `python3 -u -c <python/bamdp_envs/worker.py>` in
//! its own process group, length-prefixed binary frames over its stdin/stdout, reply
//! timeouts (`poll(2)` on the reply pipe, read by the calling thread: no reader thread,
//! so a reply wakes one thread, not a reader and then the caller), and shutdown that
//! always reaps the child (no zombies).

use std::collections::VecDeque;
use std::io::{self, BufReader, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The worker's source, shipped inside the binary so an installed `bamdp` needs no
/// checkout; `python/bamdp_envs/worker.py` is the same file, importable for tests.
pub const WORKER_SOURCE: &str = include_str!("../../../python/bamdp_envs/worker.py");

/// Version of the frame protocol; the worker refuses a different one.
pub const PROTOCOL_VERSION: u32 = 2;

/// The install command every missing-package message names.
pub const INSTALL_HINT: &str = "pip install -r python/requirements.txt";

/// How many of the worker's last stderr lines are kept for error messages.
const STDERR_LINES: usize = 20;

/// Why talking to a worker failed.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("the Python interpreter `{python}` could not be started ({source})")]
    Spawn {
        python: String,
        #[source]
        source: io::Error,
    },
    #[error("no reply within {0:?} (hung)")]
    Timeout(Duration),
    #[error("the worker exited{stderr}")]
    Exited { stderr: String },
    #[error("the worker reported: {kind}: {message}")]
    Reported {
        kind: String,
        package: Option<String>,
        message: String,
    },
    #[error("protocol error: {0}")]
    Protocol(String),
}

/// A running worker: its child process, the write end of its input and the read end
/// of its replies with the bytes read but not yet returned as frames.
pub struct Worker {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: ChildStdout,
    /// Bytes read from `stdout`; frames start at `inpos`.
    inbuf: Vec<u8>,
    inpos: usize,
    /// Reply buffers handed back with [`Worker::recycle`].
    spare: Vec<Vec<u8>>,
    /// The pipe reached end of file (the worker exited).
    eof: bool,
    stderr_reader: Option<JoinHandle<()>>,
    stderr_tail: Arc<Mutex<VecDeque<String>>>,
    /// Reusable outgoing frame.
    out: Vec<u8>,
    /// How long [`Worker::recv`] checks for a reply before blocking.
    spin: Duration,
    pub pid: u32,
}

impl Worker {
    /// Starts `python` running the worker source; replies are awaited by checking for
    /// `spin` (yielding the core between checks), then blocking.
    pub fn spawn(python: &str, spin: Duration) -> Result<Worker, WorkerError> {
        let mut cmd = Command::new(python);
        cmd.arg("-u")
            .arg("-c")
            .arg(WORKER_SOURCE)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Own process group: a terminal's Ctrl-C reaches bamdp only; bamdp then
            // shuts the workers down itself.
            .process_group(0);
        let mut child = cmd.spawn().map_err(|source| WorkerError::Spawn {
            python: python.to_string(),
            source,
        })?;
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        let tail = Arc::new(Mutex::new(VecDeque::new()));
        let tail2 = tail.clone();
        let stderr_reader = std::thread::Builder::new()
            .name(format!("bamdp-worker-err-{}", child.id()))
            .spawn(move || {
                use std::io::BufRead;
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { return };
                    let mut t = tail2.lock().unwrap();
                    if t.len() == STDERR_LINES {
                        t.pop_front();
                    }
                    t.push_back(line);
                }
            })
            .expect("spawn stderr thread");
        Ok(Worker {
            pid: child.id(),
            stdin: child.stdin.take(),
            child,
            stdout,
            inbuf: Vec::with_capacity(1 << 16),
            inpos: 0,
            spare: Vec::new(),
            eof: false,
            stderr_reader: Some(stderr_reader),
            stderr_tail: tail,
            out: Vec::new(),
            spin,
        })
    }

    /// The last lines the worker wrote to stderr, for error messages.
    pub fn stderr_tail(&self) -> String {
        self.stderr_tail
            .lock()
            .unwrap()
            .iter()
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The outgoing frame buffer, cleared, to be filled and then [`Worker::send`].
    pub fn frame(&mut self) -> &mut Vec<u8> {
        self.out.clear();
        self.out.extend_from_slice(&[0, 0, 0, 0]);
        &mut self.out
    }

    /// The outgoing frame as built so far (to append to it).
    pub fn frame_mut(&mut self) -> &mut Vec<u8> {
        &mut self.out
    }

    /// Sends a quit frame and closes the worker's input, without waiting.
    pub fn request_quit(&mut self) {
        if self.stdin.is_some() {
            self.frame().push(b'Q');
            let _ = self.send();
        }
        self.stdin = None;
    }

    /// Sends the frame built in [`Worker::frame`].
    pub fn send(&mut self) -> Result<(), WorkerError> {
        let n = (self.out.len() - 4) as u32;
        self.out[..4].copy_from_slice(&n.to_le_bytes());
        let Some(stdin) = self.stdin.as_mut() else {
            return Err(self.exited());
        };
        match stdin.write_all(&self.out).and_then(|_| stdin.flush()) {
            Ok(()) => Ok(()),
            Err(_) => Err(self.exited()),
        }
    }

    fn exited(&self) -> WorkerError {
        // Give the stderr thread a moment to collect the traceback.
        std::thread::sleep(Duration::from_millis(50));
        let tail = self.stderr_tail();
        WorkerError::Exited {
            stderr: if tail.is_empty() {
                String::new()
            } else {
                format!("; its last stderr lines:\n{tail}")
            },
        }
    }

    /// The next complete frame already read, if any.
    fn take_frame(&mut self) -> Option<Vec<u8>> {
        let avail = &self.inbuf[self.inpos..];
        if avail.len() < 4 {
            return None;
        }
        let n = u32::from_le_bytes([avail[0], avail[1], avail[2], avail[3]]) as usize;
        if avail.len() < 4 + n {
            return None;
        }
        let mut frame = self.spare.pop().unwrap_or_default();
        frame.clear();
        frame.extend_from_slice(&avail[4..4 + n]);
        self.inpos += 4 + n;
        Some(frame)
    }

    /// `poll(2)` on the reply pipe for at most `ms` milliseconds (0: just check).
    fn poll_reply(&self, ms: i32) -> i32 {
        let mut fds = libc::pollfd {
            fd: self.stdout.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd for the duration of the call.
        unsafe { libc::poll(&mut fds, 1, ms) }
    }

    /// Checks for a reply until one is readable or `self.spin` has passed, giving the
    /// core to any other runnable process between checks. The process stays runnable, so
    /// its core never idles and the reply needs no wake-up (50 us on this project's VM,
    /// docs/benchmarks.md), and a worker sharing the core loses almost nothing.
    fn spin_for_reply(&self) {
        if self.spin.is_zero() {
            return;
        }
        let start = Instant::now();
        while self.poll_reply(0) == 0 && start.elapsed() < self.spin {
            // SAFETY: no arguments; only gives up the rest of this time slice.
            unsafe { libc::sched_yield() };
        }
    }

    /// Reads what the pipe has, waiting at most until `deadline`. `Ok(false)`: timed
    /// out.
    fn fill(&mut self, deadline: Instant) -> io::Result<bool> {
        if self.inpos > 0 {
            self.inbuf.drain(..self.inpos);
            self.inpos = 0;
        }
        self.spin_for_reply();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let ms = left.as_millis().min(i32::MAX as u128) as i32;
            let r = self.poll_reply(ms);
            if r < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            if r == 0 {
                if left.is_zero() {
                    return Ok(false);
                }
                continue;
            }
            // Readable (data or end of file): a read does not block.
            let start = self.inbuf.len();
            self.inbuf.resize(start + (1 << 16), 0);
            let got = self.stdout.read(&mut self.inbuf[start..]);
            let got = match got {
                Ok(g) => g,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                    self.inbuf.truncate(start);
                    continue;
                }
                Err(e) => {
                    self.inbuf.truncate(start);
                    return Err(e);
                }
            };
            self.inbuf.truncate(start + got);
            if got == 0 {
                self.eof = true;
            }
            return Ok(true);
        }
    }

    /// Waits up to `timeout` for the next reply frame (op byte included). Hand the
    /// buffer back with [`Worker::recycle`] to keep stepping allocation-free.
    pub fn recv(&mut self, timeout: Duration) -> Result<Vec<u8>, WorkerError> {
        let deadline = Instant::now() + timeout;
        let got = loop {
            if let Some(frame) = self.take_frame() {
                break Ok(frame);
            }
            if self.eof {
                break Err(());
            }
            match self.fill(deadline) {
                Ok(true) => {}
                Ok(false) => return Err(WorkerError::Timeout(timeout)),
                Err(_) => break Err(()),
            }
        };
        match got {
            Ok(frame) => {
                if frame.first() == Some(&b'E') {
                    let v: serde_json::Value =
                        serde_json::from_slice(&frame[1..]).unwrap_or(serde_json::Value::Null);
                    let s = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_string);
                    return Err(WorkerError::Reported {
                        kind: s("kind").unwrap_or_else(|| "error".into()),
                        package: s("package"),
                        message: s("message").unwrap_or_default(),
                    });
                }
                Ok(frame)
            }
            Err(()) => Err(self.exited()),
        }
    }

    /// Returns a reply buffer for reuse by the next [`Worker::recv`].
    pub fn recycle(&mut self, frame: Vec<u8>) {
        if self.spare.len() < 4 {
            self.spare.push(frame);
        }
    }

    /// Kills the process (tests use this to simulate a crash).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
    }

    /// Asks the worker to quit, closes its input, waits up to `grace`, kills it if it is
    /// still running, and reaps it. Safe to call more than once.
    pub fn shutdown(&mut self, grace: Duration) {
        // Quit frame, then EOF: the worker exits even if it missed the frame.
        self.request_quit();
        let start = Instant::now();
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if start.elapsed() < grace => std::thread::sleep(Duration::from_millis(5)),
                _ => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    break;
                }
            }
        }
        if let Some(h) = self.stderr_reader.take() {
            let _ = h.join();
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.shutdown(Duration::from_secs(2));
    }
}
