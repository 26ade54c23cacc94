//! Checkpoint cost of the VariBAD GridNavi preset with a full VAE buffer (100,000
//! trials of real GridNavi transitions, random actions): time to take the trainer's
//! snapshot (`Trainer::checkpoint`), to write and to read the binary checkpoint
//! (safetensors with the trial buffer as columns, LZ4-compressed state, meta.json), its
//! bytes, and the bytes and write time of the same content as JSON (the format bamdp
//! 0.1 wrote). Plain `Instant` timing, median of 5. Run with
//! `cargo bench --bench checkpoint`.

use bamdp::belief::variational::VaribadModel;
use bamdp::belief::{Batched, Transition};
use bamdp::config::Config;
use bamdp::env::{self, Split, StepOut};
use bamdp::rng::Rng;
use bamdp::run::{checkpoint, files, trainer::Trainer};
use std::path::Path;
use std::time::Instant;

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(|a, b| a.partial_cmp(b).unwrap());
    xs[xs.len() / 2]
}

fn folder_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum()
}

fn main() {
    let preset = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/gridnavi/varibad.toml");
    let cfg = Config::load(&preset, &[]).expect("preset loads");
    let capacity = cfg.varibad.buffer_trials;
    let mut trainer = Trainer::new(&cfg).expect("trainer");
    trainer.train_update();

    // Fill the learner's buffer with real trials: the preset's env, random actions.
    let rows = cfg.run.num_envs;
    let mut env = env::make(&cfg.env, rows, Split::Train, 7, &cfg.env_options()).unwrap();
    let spec = env.spec().clone();
    let n_actions = spec.action.input_width();
    let mut obs = vec![0.0; rows * spec.obs_dim];
    env.reset(&mut obs);
    let mut out = StepOut::new(rows, spec.obs_dim);
    let mut actions = vec![0.0f32; rows];
    let mut rng = Rng::new(3);
    let learner = trainer.learner.as_mut().expect("varibad has a learner");
    let mut trials = 0;
    while trials < capacity + rows {
        for a in actions.iter_mut() {
            *a = rng.below(n_actions as u64) as f32;
        }
        env.step(&actions, &mut out);
        let step = Transition {
            obs: &obs,
            action: &actions,
            reward: &out.reward,
            next_obs: &out.final_obs,
            episode_end: &[],
        };
        learner.record(&step, &out.trial_end);
        trials += out.trial_end.iter().filter(|&&e| e).count();
        obs.copy_from_slice(&out.obs);
    }

    let mut snapshot_s = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let ck = trainer.checkpoint();
        snapshot_s.push(t.elapsed().as_secs_f64());
        drop(ck);
    }
    let ck = trainer.checkpoint();
    let dir = tempfile::tempdir().unwrap();
    let mut write_s = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        checkpoint::save(dir.path(), &ck, &trainer).unwrap();
        write_s.push(t.elapsed().as_secs_f64());
    }
    let mut read_s = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let back = checkpoint::load(dir.path()).unwrap();
        read_s.push(t.elapsed().as_secs_f64());
        assert!(back == ck, "the checkpoint does not read back equal");
    }
    let binary = folder_bytes(&checkpoint::checkpoint_dir(dir.path()));

    // The same content in the JSON format of bamdp 0.1 (serde_json of every field,
    // the learner as model weights, Adam, buffer, collector and stream).
    let learner = ck.learner.as_ref().unwrap();
    let store = trainer.learner.as_ref().unwrap().trials();
    let belief = trainer.actor.belief.as_ref().unwrap();
    let belief_state = &belief
        .as_any()
        .downcast_ref::<Batched<VaribadModel>>()
        .expect("the varibad belief")
        .state;
    let json_value = serde_json::json!({
        "format": 1,
        "update": ck.update,
        "frames": ck.frames,
        "params": ck.params,
        "adam": ck.adam,
        "actor": ck.actor,
        "belief": belief_state,
        "env": ck.env,
        "minibatch_rng": ck.minibatch_rng,
        "obs_rms": ck.obs_rms,
        "reward_scaler": ck.reward_scaler,
        "wall_s": ck.wall_s,
        "vae": {
            "model": { "params": learner.params },
            "adam": learner.adam,
            "buffer": store.buffer,
            "collector": store.collector,
            "rng": store.rng,
        },
    });
    let json_path = dir.path().join("state.json");
    let mut json_s = Vec::new();
    let mut json_bytes = 0;
    for _ in 0..3 {
        let t = Instant::now();
        let bytes = serde_json::to_vec(&json_value).unwrap();
        files::atomic_write(&json_path, &bytes).unwrap();
        json_s.push(t.elapsed().as_secs_f64());
        json_bytes = bytes.len() as u64;
    }
    println!(
        "VariBAD GridNavi preset, VAE buffer {} trials (full):",
        capacity
    );
    println!(
        "  binary checkpoint: {:.1} MB, snapshot {:.3} s, write {:.3} s, read {:.3} s (median of 5)",
        binary as f64 / 1e6,
        median(snapshot_s),
        median(write_s),
        median(read_s)
    );
    println!(
        "  JSON of the same content: {:.1} MB, write {:.3} s (median of 3)",
        json_bytes as f64 / 1e6,
        median(json_s)
    );
    println!(
        "  binary / JSON bytes: {:.3}",
        binary as f64 / json_bytes as f64
    );
}
