//! The TOML schema: defaults, loading, `--set` overrides, validation, round trip.

use bamdp::config::{Activation, Config, ValueLoss};
use bamdp::method::{Improver, MethodId, COMBINATIONS};
use std::path::{Path, PathBuf};

const FULL: &str = r#"
method = "rl2"
env = "gridnavi"
seed = 1

[run]
total_frames = 2000000
num_envs = 16
steps_per_update = 60
checkpoint_every = 100
log_every = 10
threads = 2

[ppo]
lr = 7e-4
anneal_lr = false
gamma = 0.95
gae_lambda = 0.95
clip = 0.05
epochs = 2
minibatches = 4
value_coef = 0.5
entropy_coef = 0.01
max_grad_norm = 0.5
value_loss = "huber"
clip_value = true
adam_eps = 1e-8
norm_obs = false
norm_reward = true

[policy]
hidden = [32]
activation = "tanh"
std = "parameter"

[rl2]
gru_hidden = 64
obs_embed = 8
action_embed = 8
reward_embed = 8

[eval]
num_tasks = 200
"#;

fn write(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("cfg.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn sets(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// Load `text` with `overrides`, expecting an error; returns its message.
fn load_err(text: &str, overrides: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), text);
    match Config::load(&path, &sets(overrides)) {
        Ok(c) => panic!("expected an error, loaded {c:?}"),
        Err(e) => e.to_string(),
    }
}

fn load_ok(text: &str, overrides: &[&str]) -> Config {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), text);
    Config::load(&path, &sets(overrides)).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn full_file_equals_defaults() {
    assert_eq!(load_ok(FULL, &[]), Config::default());
    let d = Config::default();
    assert_eq!(d.run.num_envs, 16);
    assert_eq!(d.ppo.lr, 7e-4);
    assert_eq!(d.ppo.value_loss, ValueLoss::Huber);
    assert_eq!(d.policy.activation, Activation::Tanh);
    assert_eq!(d.policy.hidden, vec![32]);
    assert_eq!(d.eval.num_tasks, 200);
}

#[test]
fn sections_and_keys_may_be_omitted() {
    let c = load_ok("seed = 5\n[ppo]\nepochs = 3\n", &[]);
    let mut expected = Config {
        seed: 5,
        ..Config::default()
    };
    expected.ppo.epochs = 3;
    assert_eq!(c, expected);
    assert_eq!(load_ok("", &[]), Config::default());
}

#[test]
fn integer_literal_accepted_for_float_key_in_file() {
    assert_eq!(load_ok("[ppo]\nlr = 1\n", &[]).ppo.lr, 1.0);
}

#[test]
fn enums_are_lowercase_strings() {
    let c = load_ok(
        "[ppo]\nvalue_loss = \"mse\"\n[policy]\nactivation = \"relu\"\nhidden = []\n",
        &[],
    );
    assert_eq!(c.ppo.value_loss, ValueLoss::Mse);
    assert_eq!(c.policy.activation, Activation::Relu);
    assert!(c.policy.hidden.is_empty());
    let msg = load_err("[ppo]\nvalue_loss = \"Huber\"\n", &[]);
    assert!(msg.contains("cfg.toml") && msg.contains("huber"), "{msg}");
}

#[test]
fn missing_file_names_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nope.toml");
    let msg = Config::load(&path, &[]).unwrap_err().to_string();
    assert!(
        msg.contains("nope.toml") && msg.contains("cannot read"),
        "{msg}"
    );
}

#[test]
fn toml_syntax_error_names_file_and_line() {
    let msg = load_err("seed = 1\n[ppo\nlr = 3\n", &[]);
    assert!(msg.contains("cfg.toml") && msg.contains("line 2"), "{msg}");
}

#[test]
fn unknown_key_in_file_names_file_and_key() {
    let msg = load_err("[ppo]\nlearning_rate = 0.1\n", &[]);
    assert!(msg.contains("cfg.toml"), "{msg}");
    assert!(msg.contains("learning_rate"), "{msg}");
    let msg = load_err("[optimiser]\nlr = 0.1\n", &[]);
    assert!(
        msg.contains("cfg.toml") && msg.contains("optimiser"),
        "{msg}"
    );
}

#[test]
fn wrong_type_in_file_names_key() {
    let msg = load_err("[ppo]\nepochs = \"two\"\n", &[]);
    assert!(msg.contains("cfg.toml") && msg.contains("epochs"), "{msg}");
    assert!(msg.contains("line 2"), "{msg}");
}

#[test]
fn overrides_of_every_type() {
    let c = load_ok(
        FULL,
        &[
            "ppo.epochs=4",
            "ppo.lr=1",
            "ppo.gamma = 0.99",
            "ppo.anneal_lr=true",
            "ppo.value_loss=mse",
            "policy.activation=\"relu\"",
            "policy.hidden=[64,64]",
            "run.num_envs=8",
            "seed=7",
            "method=oracle",
        ],
    );
    assert_eq!(c.ppo.epochs, 4);
    assert_eq!(c.ppo.lr, 1.0);
    assert_eq!(c.ppo.gamma, 0.99);
    assert!(c.ppo.anneal_lr);
    assert_eq!(c.ppo.value_loss, ValueLoss::Mse);
    assert_eq!(c.policy.activation, Activation::Relu);
    assert_eq!(c.policy.hidden, vec![64, 64]);
    assert_eq!(c.run.num_envs, 8);
    assert_eq!(c.seed, 7);
    assert_eq!(c.method, "oracle");
    assert_eq!(
        load_ok("", &["policy.hidden=[]"]).policy.hidden,
        Vec::<usize>::new()
    );
}

#[test]
fn override_sets_key_of_section_missing_from_file() {
    assert_eq!(load_ok("", &["rl2.gru_hidden=128"]).rl2.gru_hidden, 128);
}

#[test]
fn an_optional_key_is_set_and_unset_by_none() {
    let file = "[ppo]\ntarget_kl = 0.02\n";
    assert_eq!(load_ok(file, &[]).ppo.target_kl, Some(0.02));
    assert_eq!(load_ok(file, &["ppo.target_kl=none"]).ppo.target_kl, None);
    assert_eq!(load_ok("", &["ppo.target_kl=0.5"]).ppo.target_kl, Some(0.5));
    assert_eq!(load_ok("", &["ppo.target_kl=none"]).ppo.target_kl, None);
    let msg = load_err(file, &["ppo.target_kl=off"]);
    assert!(
        msg.contains("ppo.target_kl=off") && msg.contains("(or none)"),
        "{msg}"
    );
    // `none` is no value for a key that is not optional.
    let msg = load_err("", &["ppo.lr=none"]);
    assert!(
        msg.contains("expected a number") && !msg.contains("or none"),
        "{msg}"
    );
}

#[test]
fn later_override_wins() {
    assert_eq!(load_ok("", &["ppo.epochs=3", "ppo.epochs=5"]).ppo.epochs, 5);
}

#[test]
fn override_wrong_type() {
    let msg = load_err(FULL, &["ppo.epochs=abc"]);
    assert!(
        msg.contains("--set ppo.epochs=abc: expected an integer"),
        "{msg}"
    );
    let msg = load_err(FULL, &["ppo.lr=fast"]);
    assert!(
        msg.contains("--set ppo.lr=fast: expected a number"),
        "{msg}"
    );
    let msg = load_err(FULL, &["ppo.clip_value=yes"]);
    assert!(msg.contains("expected true or false"), "{msg}");
    let msg = load_err(FULL, &["policy.hidden=[64,x]"]);
    assert!(msg.contains("expected a list of integers"), "{msg}");
    let msg = load_err(FULL, &["ppo.epochs=2.5"]);
    assert!(msg.contains("expected an integer"), "{msg}");
}

#[test]
fn override_out_of_range_integer() {
    let msg = load_err(FULL, &["run.num_envs=-1"]);
    assert!(msg.contains("--set run.num_envs=-1"), "{msg}");
}

#[test]
fn override_bad_enum_names_allowed_variants() {
    let msg = load_err(FULL, &["ppo.value_loss=l1"]);
    assert!(msg.contains("--set ppo.value_loss=l1"), "{msg}");
    assert!(msg.contains("huber") && msg.contains("mse"), "{msg}");
}

#[test]
fn override_unknown_key_lists_valid_keys() {
    let msg = load_err(FULL, &["ppo.learning_rate=0.1"]);
    assert!(msg.contains("--set ppo.learning_rate=0.1"), "{msg}");
    assert!(
        msg.contains("unknown key `learning_rate` in [ppo]"),
        "{msg}"
    );
    assert!(msg.contains("lr") && msg.contains("minibatches"), "{msg}");
    let msg = load_err(FULL, &["optim.lr=0.1"]);
    assert!(
        msg.contains("unknown section `optim`") && msg.contains("ppo"),
        "{msg}"
    );
    let msg = load_err(FULL, &["speed=3"]);
    assert!(
        msg.contains("unknown key `speed`") && msg.contains("seed"),
        "{msg}"
    );
    let msg = load_err(FULL, &["ppo=3"]);
    assert!(msg.contains("is a section"), "{msg}");
    let msg = load_err(FULL, &["ppo.lr"]);
    assert!(msg.contains("expected key=value"), "{msg}");
    let msg = load_err(FULL, &["a.b.c=1"]);
    assert!(msg.contains("section.key"), "{msg}");
}

#[test]
fn validation_errors_name_source_key_value_and_allowed() {
    let msg = load_err(FULL, &["ppo.minibatches=3"]);
    assert!(msg.starts_with("--set: "), "{msg}");
    assert!(
        msg.contains("ppo.minibatches") && msg.contains("\"3\""),
        "{msg}"
    );
    assert!(msg.contains("must divide run.num_envs = 16"), "{msg}");

    // The same problem coming from the file names the file.
    let msg = load_err("[ppo]\nminibatches = 5\n", &[]);
    assert!(
        msg.contains("cfg.toml: ") && msg.contains("ppo.minibatches"),
        "{msg}"
    );

    // An override of num_envs that breaks divisibility blames --set.
    let msg = load_err(FULL, &["run.num_envs=6"]);
    assert!(
        msg.starts_with("--set: ") && msg.contains("run.num_envs = 6"),
        "{msg}"
    );

    // Truncated BPTT: the sequence length divides the rollout, and the minibatches
    // divide the sequences (16 envs x 60 / 20 = 48 of them), not just the envs.
    let msg = load_err(FULL, &["ppo.bptt_steps=7"]);
    assert!(
        msg.contains("ppo.bptt_steps") && msg.contains("\"7\"") && msg.contains("60"),
        "{msg}"
    );
    let msg = load_err(FULL, &["ppo.bptt_steps=20", "ppo.minibatches=32"]);
    assert!(
        msg.contains("ppo.minibatches") && msg.contains("48 training sequences"),
        "{msg}"
    );
    load_ok(FULL, &["ppo.bptt_steps=20", "ppo.minibatches=12"]);

    // Time-ordered pieces (Meta-World+'s RL2): 25 steps every 20 fit twice in 60, and a
    // minibatch is one piece of every env, so the minibatches must be the 2 pieces.
    let time = [
        "ppo.bptt_order=time",
        "ppo.bptt_steps=25",
        "ppo.bptt_overlap=5",
    ];
    let c = load_ok(FULL, &[&time[..], &["ppo.minibatches=2"]].concat());
    assert_eq!(c.ppo.time_ordered_starts(60), vec![0, 20]);
    let msg = load_err(FULL, &[&time[..], &["ppo.minibatches=4"]].concat());
    assert!(
        msg.contains("ppo.minibatches") && msg.contains("2 with ppo.bptt_order"),
        "{msg}"
    );
    let msg = load_err(
        FULL,
        &[
            "ppo.bptt_order=time",
            "ppo.bptt_steps=25",
            "ppo.bptt_overlap=25",
        ],
    );
    assert!(
        msg.contains("ppo.bptt_overlap") && msg.contains("below ppo.bptt_steps = 25"),
        "{msg}"
    );
    let msg = load_err(FULL, &["ppo.bptt_order=time"]);
    assert!(
        msg.contains("ppo.bptt_steps") && msg.contains("1..=60"),
        "{msg}"
    );
    let msg = load_err(
        FULL,
        &[&time[..], &["ppo.minibatches=2", "method=varibad"]].concat(),
    );
    assert!(
        msg.contains("ppo.bptt_order") && msg.contains("RL2's GRU state"),
        "{msg}"
    );
    // Overlap means nothing for shuffled pieces.
    let msg = load_err(
        FULL,
        &[
            "ppo.bptt_steps=20",
            "ppo.minibatches=12",
            "ppo.bptt_overlap=5",
        ],
    );
    assert!(
        msg.contains("ppo.bptt_overlap") && msg.contains("bptt_order = \"time\""),
        "{msg}"
    );
    let msg = load_err(FULL, &["ppo.bptt_order=sideways"]);
    assert!(
        msg.contains("ppo.bptt_order") || msg.contains("sideways"),
        "{msg}"
    );

    // A file value is blamed on the file even when other keys were overridden.
    let msg = load_err("[ppo]\nclip = 0\n", &["ppo.epochs=3"]);
    assert!(
        msg.contains("cfg.toml: ") && msg.contains("ppo.clip"),
        "{msg}"
    );
}

#[test]
fn every_constraint_is_checked() {
    let cases: &[(&str, &str)] = &[
        ("method=pearl", "method"),
        ("env=cheetah", "env"),
        ("run.total_frames=0", "run.total_frames"),
        ("run.num_envs=0", "run.num_envs"),
        ("run.steps_per_update=0", "run.steps_per_update"),
        ("run.checkpoint_every=0", "run.checkpoint_every"),
        ("run.log_every=0", "run.log_every"),
        ("run.threads=0", "run.threads"),
        ("ppo.lr=0", "ppo.lr"),
        ("ppo.lr=-1e-3", "ppo.lr"),
        ("ppo.lr=inf", "ppo.lr"),
        ("ppo.lr=nan", "ppo.lr"),
        ("ppo.gamma=0", "ppo.gamma"),
        ("ppo.gamma=1.01", "ppo.gamma"),
        ("ppo.gae_lambda=-0.1", "ppo.gae_lambda"),
        ("ppo.gae_lambda=1.5", "ppo.gae_lambda"),
        ("ppo.clip=0", "ppo.clip"),
        ("ppo.epochs=0", "ppo.epochs"),
        ("ppo.minibatches=0", "ppo.minibatches"),
        ("ppo.value_coef=-0.5", "ppo.value_coef"),
        ("ppo.entropy_coef=-0.01", "ppo.entropy_coef"),
        ("ppo.max_grad_norm=0", "ppo.max_grad_norm"),
        ("ppo.adam_eps=0", "ppo.adam_eps"),
        ("policy.hidden=[32,0]", "policy.hidden"),
        ("rl2.gru_hidden=0", "rl2.gru_hidden"),
        ("rl2.obs_embed=0", "rl2.obs_embed"),
        ("rl2.reward_embed=0", "rl2.reward_embed"),
        ("transformer.layers=0", "transformer.layers"),
        ("transformer.heads=0", "transformer.heads"),
        ("transformer.window=0", "transformer.window"),
        ("transformer.window=100000", "transformer.window"),
        ("transformer.width=30", "transformer.width"),
        ("transformer.width=6", "transformer.width"),
        ("transformer.mlp=0", "transformer.mlp"),
        ("eval.num_tasks=0", "eval.num_tasks"),
    ];
    for (set, key) in cases {
        let msg = load_err(FULL, &[set]);
        assert!(
            msg.starts_with("--set: ") && msg.contains(&format!("`{key}`")),
            "{set}: {msg}"
        );
    }
    // Boundary values that are allowed.
    let c = load_ok(
        FULL,
        &[
            "ppo.gamma=1",
            "ppo.gae_lambda=0",
            "ppo.value_coef=0",
            "ppo.entropy_coef=0",
            "rl2.action_embed=0",
            "ppo.minibatches=16",
        ],
    );
    assert_eq!(c.rl2.action_embed, 0);
}

#[test]
fn a_state_dependent_std_needs_ppo() {
    use bamdp::config::PolicyStd;
    let c = load_ok("method = \"varibad\"\n", &["policy.std=state"]);
    assert_eq!(c.policy.std, PolicyStd::State);
    for head in [
        "method = \"varibased\"",
        "method = \"maml\"\nimprover = \"maml\"",
    ] {
        let msg = load_err(&format!("{head}\n"), &["policy.std=state"]);
        assert!(
            msg.contains("`policy.std`") && msg.contains("needs improver = \"ppo\""),
            "{head}: {msg}"
        );
    }
    let msg = load_err("", &["policy.std=tanh"]);
    assert!(msg.contains("parameter") && msg.contains("state"), "{msg}");
}

#[test]
fn a_linear_baseline_needs_ppo() {
    use bamdp::config::Baseline;
    assert_eq!(
        load_ok("", &["ppo.baseline=linear"]).ppo.baseline,
        Baseline::Linear
    );
    let msg = load_err("method = \"varibased\"\n", &["ppo.baseline=linear"]);
    assert!(
        msg.contains("`ppo.baseline`") && msg.contains("bootstraps from the value head"),
        "{msg}"
    );
}

#[test]
fn unknown_method_lists_methods() {
    let msg = load_err(FULL, &["method=pearl"]);
    for c in COMBINATIONS {
        assert!(msg.contains(c.name), "{msg}");
    }
    assert!(msg.contains("rl2") && msg.contains("oracle") && msg.contains("varibased"));
    let msg = load_err(FULL, &["env=cheetah"]);
    assert!(msg.contains("gridnavi"), "{msg}");
}

#[test]
fn validate_names_given_source() {
    let mut c = Config::default();
    assert!(c.validate("x.toml").is_ok());
    c.ppo.minibatches = 5;
    let msg = c.validate("runs/a/config.toml").unwrap_err().to_string();
    assert!(msg.starts_with("runs/a/config.toml: "), "{msg}");
    assert!(msg.contains("must divide run.num_envs = 16"), "{msg}");
}

#[test]
fn toml_round_trip() {
    let mut c = Config {
        method: MethodId::Oracle,
        seed: 123_456_789,
        ..Config::default()
    };
    c.ppo.lr = 3.0e-4 / 7.0;
    c.ppo.value_loss = ValueLoss::Mse;
    c.ppo.norm_obs = true;
    c.policy.hidden = vec![64, 64, 7];
    c.policy.activation = Activation::Relu;
    c.rl2.action_embed = 0;
    let text = c.to_toml_string();
    assert!(
        text.contains("[ppo]") && text.contains("value_loss = \"mse\""),
        "{text}"
    );
    let back = Config::from_toml_str(&text, "run/config.toml").unwrap();
    assert_eq!(back, c);
    assert_eq!(
        Config::from_toml_str(&Config::default().to_toml_string(), "x").unwrap(),
        Config::default()
    );
}

#[test]
fn from_toml_str_errors_name_source() {
    let msg = Config::from_toml_str("[ppo]\nbogus = 1\n", "runs/a/config.toml")
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("runs/a/config.toml") && msg.contains("bogus"),
        "{msg}"
    );
    let msg = Config::from_toml_str("[ppo]\nepochs = 0\n", "runs/a/config.toml")
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("runs/a/config.toml") && msg.contains("ppo.epochs"),
        "{msg}"
    );
}

#[test]
fn composite_methods_set_the_improver() {
    for (name, method) in [
        ("varibased", MethodId::Varibad),
        ("glibrl-smc", MethodId::Glibrl),
    ] {
        let c = load_ok(
            &format!("method = \"{name}\"\n[ppo]\nnorm_reward = false\n"),
            &[],
        );
        assert_eq!((c.method, c.improver), (method, Improver::Smc), "{name}");
        let c = load_ok(
            "[ppo]\nnorm_reward = false\n",
            &[format!("method={name}").as_str()],
        );
        assert_eq!((c.method, c.improver), (method, Improver::Smc), "{name}");
        // Written back as the plain method and improver.
        let text = c.to_toml_string();
        assert!(text.contains(&format!("method = \"{method}\"")), "{text}");
        assert!(text.contains("improver = \"smc\""), "{text}");
    }
    // A composite with a contradicting improver names both.
    let msg = load_err("method = \"varibased\"\nimprover = \"ppo\"\n", &[]);
    assert!(
        msg.contains("`improver`") && msg.contains("varibased") && msg.contains("varibad x smc"),
        "{msg}"
    );
    let msg = load_err(FULL, &["improver=sgd"]);
    assert!(
        msg.starts_with("--set: ") && msg.contains("ppo, smc"),
        "{msg}"
    );
}

#[test]
fn every_listed_preset_exists_and_runs_its_combination() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for c in COMBINATIONS {
        for pattern in c.presets {
            // `configs/*/name.toml`: every env folder with that file.
            let paths: Vec<PathBuf> = match pattern.split_once("/*/") {
                Some((dir, file)) => std::fs::read_dir(root.join(dir))
                    .unwrap()
                    .map(|e| e.unwrap().path().join(file))
                    .filter(|p| p.exists())
                    .collect(),
                None => vec![root.join(pattern)],
            };
            assert!(!paths.is_empty(), "{}: no preset {pattern}", c.name);
            for p in paths {
                let cfg = Config::load(&p, &[]).unwrap_or_else(|e| panic!("{e}"));
                assert_eq!(
                    (cfg.method, cfg.improver),
                    (c.method, c.improver),
                    "{}",
                    p.display()
                );
            }
        }
    }
}
