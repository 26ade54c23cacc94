//! Run folders, atomic writes, provenance, metrics.csv and TensorBoard event files.

use bamdp::run::files::{atomic_write, prepare_run_dir, write_run_json, Provenance, RunMode};
use bamdp::run::metrics::MetricsCsv;
use bamdp::run::tensorboard::{crc32c, masked_crc32c, EventWriter};
use std::fs;
use std::path::Path;

fn cols(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

// ---- atomic writes ----------------------------------------------------------------

#[test]
fn atomic_write_creates_and_replaces_without_leftovers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.json");
    atomic_write(&path, b"first").unwrap();
    assert_eq!(fs::read(&path).unwrap(), b"first");
    atomic_write(&path, b"second, longer").unwrap();
    assert_eq!(fs::read(&path).unwrap(), b"second, longer");
    let names: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(names.len(), 1, "temporary files left behind: {names:?}");
}

#[test]
fn atomic_write_error_names_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing-dir").join("a.json");
    let msg = atomic_write(&path, b"x").unwrap_err().to_string();
    assert!(msg.contains("missing-dir"), "{msg}");
}

#[test]
fn atomic_writes_from_threads_do_not_collide() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared");
    std::thread::scope(|s| {
        for i in 0..8 {
            let path = &path;
            s.spawn(move || atomic_write(path, format!("{i}").as_bytes()).unwrap());
        }
    });
    let text = fs::read_to_string(&path).unwrap();
    assert!(text.parse::<u32>().unwrap() < 8);
}

// ---- run folders ------------------------------------------------------------------

#[test]
fn fresh_creates_dir_with_parents_and_accepts_empty_dir() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("runs").join("a");
    prepare_run_dir(&run, RunMode::Fresh).unwrap();
    assert!(run.is_dir());
    prepare_run_dir(&run, RunMode::Fresh).unwrap(); // exists but empty
}

#[test]
fn fresh_refuses_non_empty_dir() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("metrics.csv"), "update\n").unwrap();
    let msg = prepare_run_dir(dir.path(), RunMode::Fresh)
        .unwrap_err()
        .to_string();
    assert!(msg.contains(&dir.path().display().to_string()), "{msg}");
    assert!(msg.contains("already exists; use --resume to continue it or --force to overwrite"));
}

#[test]
fn force_clears_old_contents() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    fs::create_dir_all(run.join("checkpoint")).unwrap();
    fs::write(run.join("metrics.csv"), "update\n1\n").unwrap();
    prepare_run_dir(&run, RunMode::Force).unwrap();
    assert!(run.is_dir());
    assert_eq!(fs::read_dir(&run).unwrap().count(), 0);
    prepare_run_dir(&dir.path().join("new"), RunMode::Force).unwrap();
}

#[test]
fn resume_requires_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let msg = prepare_run_dir(dir.path(), RunMode::Resume)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("checkpoint"), "{msg}");
    assert!(msg.contains(&dir.path().display().to_string()), "{msg}");
    fs::create_dir(dir.path().join("checkpoint")).unwrap();
    prepare_run_dir(dir.path(), RunMode::Resume).unwrap();
}

#[test]
fn unwritable_parent_is_a_clear_error() {
    // A regular file as parent fails even as root.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plain-file");
    fs::write(&file, "x").unwrap();
    let run = file.join("run");
    for mode in [RunMode::Fresh, RunMode::Force] {
        let msg = prepare_run_dir(&run, mode).unwrap_err().to_string();
        assert!(msg.contains(&run.display().to_string()), "{msg}");
        assert!(msg.contains("cannot create run directory"), "{msg}");
    }
}

#[test]
fn run_dir_that_is_a_file_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("f");
    fs::write(&file, "x").unwrap();
    for mode in [RunMode::Fresh, RunMode::Force] {
        let msg = prepare_run_dir(&file, mode).unwrap_err().to_string();
        assert!(msg.contains("not a directory"), "{msg}");
    }
}

// ---- provenance -------------------------------------------------------------------

#[test]
fn provenance_collects_and_writes_pretty_json() {
    let p = Provenance::collect(42, 3);
    assert_eq!(p.seed, 42);
    assert_eq!(p.threads, 3);
    assert_eq!(p.version, env!("CARGO_PKG_VERSION"));
    assert!(!p.command.is_empty());
    assert!(p.started_unix > 1_600_000_000);
    if let Some(rev) = &p.git_revision {
        assert!(rev.len() >= 40 && p.git_dirty.is_some(), "{p:?}");
    }
    // The revision is the one the binary was built from (build.rs), whatever the
    // current directory: in a git checkout it is the checkout's HEAD.
    let head = std::process::Command::new("git")
        .args(["-C", env!("CARGO_MANIFEST_DIR"), "rev-parse", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    assert_eq!(p.git_revision, head, "{p:?}");
    let dir = tempfile::tempdir().unwrap();
    write_run_json(dir.path(), &p).unwrap();
    let text = fs::read_to_string(dir.path().join("run.json")).unwrap();
    assert!(text.contains("\n  \"seed\": 42"), "{text}");
    let back: Provenance = serde_json::from_str(&text).unwrap();
    assert_eq!(back, p);
}

// ---- metrics.csv ------------------------------------------------------------------

#[test]
fn metrics_rows_round_trip_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("metrics.csv");
    let columns = cols(&["update", "frames", "return", "loss"]);
    let rows = [
        [1.0, 960.0, 0.1 + 0.2, -1.0 / 3.0],
        [2.0, 1920.0, 1e-300, 7.0],
        [3.0, 2880.0, f64::MAX, 2.5],
    ];
    {
        let mut m = MetricsCsv::create(&path, &columns).unwrap();
        for row in &rows {
            m.append(row).unwrap();
        }
    }
    let text = fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "update,frames,return,loss");
    assert!(lines[1].starts_with("1,960,"), "{text}");
    assert!(lines[2].ends_with(",7"), "{text}");
    for (line, row) in lines[1..].iter().zip(&rows) {
        let parsed: Vec<f64> = line.split(',').map(|v| v.parse().unwrap()).collect();
        assert_eq!(&parsed[..], &row[..]);
    }
}

#[test]
fn metrics_row_is_readable_before_and_after_drop() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("metrics.csv");
    let mut m = MetricsCsv::create(&path, &cols(&["update", "x"])).unwrap();
    m.append(&[1.0, 0.5]).unwrap();
    // Flushed on append: visible to another reader while still open.
    assert_eq!(fs::read_to_string(&path).unwrap(), "update,x\n1,0.5\n");
    drop(m);
    assert_eq!(fs::read_to_string(&path).unwrap(), "update,x\n1,0.5\n");
}

#[test]
fn metrics_resume_truncates_rows_after_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("metrics.csv");
    let columns = cols(&["update", "frames", "loss"]);
    {
        let mut m = MetricsCsv::create(&path, &columns).unwrap();
        for u in 1..=5 {
            m.append(&[u as f64, 100.0 * u as f64, 0.5]).unwrap();
        }
    }
    // Simulate a torn row from a crash mid-write.
    let mut text = fs::read_to_string(&path).unwrap();
    text.push_str("6,60");
    fs::write(&path, text).unwrap();

    let mut m = MetricsCsv::resume(&path, &columns, 3).unwrap();
    m.append(&[4.0, 400.0, 0.25]).unwrap();
    drop(m);
    assert_eq!(
        fs::read_to_string(&path).unwrap(),
        "update,frames,loss\n1,100,0.5\n2,200,0.5\n3,300,0.5\n4,400,0.25\n"
    );
}

#[test]
fn metrics_resume_rejects_changed_columns_and_creates_missing_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("metrics.csv");
    MetricsCsv::create(&path, &cols(&["update", "a"])).unwrap();
    let msg = MetricsCsv::resume(&path, &cols(&["update", "b"]), 0)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("metrics.csv"), "{msg}");

    assert!(msg.contains("would not log [\"a\"]"), "{msg}");

    let fresh = dir.path().join("fresh.csv");
    let mut m = MetricsCsv::resume(&fresh, &cols(&["update"]), 10).unwrap();
    m.append(&[11.0]).unwrap();
    assert_eq!(fs::read_to_string(&fresh).unwrap(), "update\n11\n");
}

#[test]
fn metrics_resume_may_add_columns_with_nan_in_the_kept_rows() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("metrics.csv");
    {
        let mut m = MetricsCsv::create(&path, &cols(&["update", "a", "z"])).unwrap();
        for u in 1..=3 {
            m.append(&[u as f64, 0.5 * u as f64, -1.0]).unwrap();
        }
    }
    // A new column in the middle (as `minibatches` comes before `env_restarts`).
    let mut m = MetricsCsv::resume(&path, &cols(&["update", "a", "new", "z"]), 2).unwrap();
    m.append(&[3.0, 7.0, 4.0, -2.0]).unwrap();
    drop(m);
    assert_eq!(
        fs::read_to_string(&path).unwrap(),
        "update,a,new,z\n1,0.5,NaN,-1\n2,1,NaN,-1\n3,7,4,-2\n"
    );
    // Resuming again with the same columns keeps everything.
    drop(MetricsCsv::resume(&path, &cols(&["update", "a", "new", "z"]), 3).unwrap());
    assert_eq!(fs::read_to_string(&path).unwrap().lines().count(), 4);
}

#[test]
fn metrics_rejects_bad_columns_and_row_widths() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.csv");
    assert!(MetricsCsv::create(&path, &cols(&["frames", "update"])).is_err());
    assert!(MetricsCsv::create(&path, &cols(&["update", "a,b"])).is_err());
    let mut m = MetricsCsv::create(&path, &cols(&["update", "a"])).unwrap();
    assert!(m.append(&[1.0]).is_err());
}

// ---- TensorBoard ------------------------------------------------------------------

#[test]
#[allow(clippy::manual_rotate)] // the mask exactly as TensorFlow documents it
fn crc32c_known_vectors() {
    assert_eq!(crc32c(b"123456789"), 0xE306_9283);
    assert_eq!(crc32c(b""), 0);
    assert_eq!(crc32c(&[0u8; 32]), 0x8A91_36AA);
    let crc = crc32c(b"123456789");
    assert_eq!(
        masked_crc32c(b"123456789"),
        ((crc >> 15) | (crc << 17)).wrapping_add(0xa282_ead8)
    );
}

/// One decoded `Event`.
#[derive(Debug, Default)]
struct Event {
    wall_time: f64,
    step: i64,
    file_version: Option<String>,
    scalars: Vec<(String, f32)>,
}

fn read_varint(b: &[u8], i: &mut usize) -> u64 {
    let mut v = 0u64;
    let mut shift = 0;
    loop {
        let byte = b[*i];
        *i += 1;
        v |= ((byte & 0x7f) as u64) << shift;
        if byte < 0x80 {
            return v;
        }
        shift += 7;
    }
}

/// Calls `f(field, wire_type, payload)` for each field of a protobuf message.
fn fields(b: &[u8], mut f: impl FnMut(u64, u64, &[u8], u64)) {
    let mut i = 0;
    while i < b.len() {
        let key = read_varint(b, &mut i);
        let (field, wire) = (key >> 3, key & 7);
        match wire {
            0 => {
                let v = read_varint(b, &mut i);
                f(field, wire, &[], v);
            }
            1 => {
                f(field, wire, &b[i..i + 8], 0);
                i += 8;
            }
            2 => {
                let n = read_varint(b, &mut i) as usize;
                f(field, wire, &b[i..i + n], 0);
                i += n;
            }
            5 => {
                f(field, wire, &b[i..i + 4], 0);
                i += 4;
            }
            _ => panic!("unexpected wire type {wire}"),
        }
    }
}

fn decode_event(data: &[u8]) -> Event {
    let mut e = Event::default();
    fields(data, |field, wire, bytes, v| match (field, wire) {
        (1, 1) => e.wall_time = f64::from_le_bytes(bytes.try_into().unwrap()),
        (2, 0) => e.step = v as i64,
        (3, 2) => e.file_version = Some(String::from_utf8(bytes.to_vec()).unwrap()),
        (5, 2) => fields(bytes, |field, wire, value, _| {
            assert_eq!((field, wire), (1, 2), "Summary.value");
            let (mut tag, mut simple) = (String::new(), f32::NAN);
            fields(value, |field, wire, b, _| match (field, wire) {
                (1, 2) => tag = String::from_utf8(b.to_vec()).unwrap(),
                (2, 5) => simple = f32::from_le_bytes(b.try_into().unwrap()),
                other => panic!("unexpected Summary.Value field {other:?}"),
            });
            e.scalars.push((tag, simple));
        }),
        other => panic!("unexpected Event field {other:?}"),
    });
    e
}

/// Parse a TFRecord file, checking both CRCs of every record.
fn read_events(path: &Path) -> Vec<Event> {
    let bytes = fs::read(path).unwrap();
    let mut events = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let len_bytes = &bytes[i..i + 8];
        let len = u64::from_le_bytes(len_bytes.try_into().unwrap()) as usize;
        let len_crc = u32::from_le_bytes(bytes[i + 8..i + 12].try_into().unwrap());
        assert_eq!(len_crc, masked_crc32c(len_bytes), "length crc");
        let data = &bytes[i + 12..i + 12 + len];
        let data_crc = u32::from_le_bytes(bytes[i + 12 + len..i + 16 + len].try_into().unwrap());
        assert_eq!(data_crc, masked_crc32c(data), "data crc");
        events.push(decode_event(data));
        i += 16 + len;
    }
    assert_eq!(i, bytes.len());
    events
}

#[test]
fn event_file_parses_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = EventWriter::create(dir.path()).unwrap();
    w.scalar("train/return", 0, 1.5).unwrap();
    w.scalar("train/loss", 960, -0.25).unwrap();
    w.scalar("a much longer tag name/with unicode é", 1 << 40, 3.0e-7)
        .unwrap();
    w.scalar("neg", -3, f32::MAX).unwrap();
    w.flush().unwrap();
    let path = w.path().to_path_buf();
    drop(w);

    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.starts_with("events.out.tfevents."), "{name}");
    let events = read_events(&path);
    assert_eq!(events.len(), 5);
    assert_eq!(events[0].file_version.as_deref(), Some("brain.Event:2"));
    assert!(events[0].scalars.is_empty());
    let got: Vec<(i64, String, f32)> = events[1..]
        .iter()
        .map(|e| {
            assert_eq!(e.scalars.len(), 1);
            assert!(e.wall_time > 1.6e9);
            (e.step, e.scalars[0].0.clone(), e.scalars[0].1)
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (0, "train/return".to_string(), 1.5),
            (960, "train/loss".to_string(), -0.25),
            (
                1 << 40,
                "a much longer tag name/with unicode é".to_string(),
                3.0e-7
            ),
            (-3, "neg".to_string(), f32::MAX),
        ]
    );
}

#[test]
fn event_files_created_in_same_second_do_not_clobber() {
    let dir = tempfile::tempdir().unwrap();
    let a = EventWriter::create(dir.path()).unwrap();
    let b = EventWriter::create(dir.path()).unwrap();
    assert_ne!(a.path(), b.path());
    assert!(EventWriter::create(&dir.path().join("missing")).is_err());
}
