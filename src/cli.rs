//! The `bamdp` command line: `train`, `eval`, `sweep`, `report`, `bench`, `envs`, `methods`.
//! User errors print one clear line and exit with code 2.

use crate::config::Config;
use crate::env::{self, Split};
use crate::error::UserError;
use crate::run::{bench, eval, train};
use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "bamdp",
    version,
    about = "Bayes-adaptive deep RL: belief models x policy improvers x environments"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Train a method and write a run folder (config, metrics.csv, TensorBoard, checkpoints).
    Train {
        /// Preset or config file, e.g. configs/gridnavi/rl2.toml.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Override a config key: --set ppo.lr=3e-4 (repeatable; an optional key is
        /// unset by `none`, e.g. --set ppo.target_kl=none).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
        /// Run folder (default runs/<env>-<method>-s<seed>).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Continue the run in --out from its checkpoint, exactly.
        #[arg(long)]
        resume: bool,
        /// Overwrite an existing run folder.
        #[arg(long)]
        force: bool,
    },
    /// Meta-test a trained run on its env's test tasks: per-episode returns of each trial.
    Eval {
        /// Run folder written by `bamdp train` (its config.toml and checkpoint).
        #[arg(long)]
        run: PathBuf,
        /// Task split: test (tasks drawn by a random stream separate from training's;
        /// held out where the env has a held-out set, played in list order) or train
        /// (under --protocol metaworld the training tasks in turn, classes round-robin).
        #[arg(long, default_value = "test")]
        split: String,
        /// Episodes per trial (default: the env's); for a MAML run, adaptation episodes
        /// per inner step (default: its maml.eval_adapt_episodes).
        #[arg(long)]
        episodes_per_task: Option<usize>,
        /// Number of tasks (default: the config's eval.num_tasks).
        #[arg(long)]
        num_tasks: Option<usize>,
        /// Take the most likely action instead of sampling; under --protocol metaworld in
        /// the evaluation episodes only (MetaWorld's agents explore while adapting); for a
        /// MAML run, with the adapted weights.
        #[arg(long)]
        greedy: bool,
        /// Also report the mean return and success over episodes FIRST-LAST (1-based),
        /// e.g. 11-13 for MetaWorld's evaluation after 10 adaptation episodes.
        #[arg(long, value_name = "FIRST-LAST")]
        summary_episodes: Option<String>,
        /// `trial` (one trial of k full episodes per task) or `metaworld` (MetaWorld's
        /// meta-learning evaluation: adaptation episodes, then evaluation episodes that
        /// end at success; per-task success rates).
        #[arg(long, default_value = "trial")]
        protocol: String,
        /// Adaptation episodes per task of --protocol metaworld (default 10; for a MAML
        /// run, per inner step, as MetaWorld counts them).
        #[arg(long)]
        adaptation_episodes: Option<usize>,
        /// Evaluation episodes per task of --protocol metaworld (default 3; for a MAML
        /// run, the episodes with the adapted weights).
        #[arg(long)]
        evaluation_episodes: Option<usize>,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
        /// Also write every trial to FILE: task, per-episode returns and successes.
        #[arg(long, value_name = "FILE")]
        trials_csv: Option<PathBuf>,
        /// Change a config key of the run for this evaluation only, e.g. --set
        /// glibrl.posterior_span=episode (repeatable; keys that change the networks'
        /// shapes no longer match the checkpoint).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
    },
    /// Train and meta-test a grid of configs x seeds (locally or on a Ray cluster);
    /// rerunning finishes only what is missing. Exits 3 when stopped (Ctrl-C) before
    /// every run finished, so that a script running sweeps in a row stops too.
    Sweep {
        /// Preset or config file (repeatable: each is swept over all seeds).
        #[arg(long = "config", required = true)]
        configs: Vec<PathBuf>,
        /// Seeds: 1-10, 1,3,5 or 7.
        #[arg(long, default_value = "1")]
        seeds: String,
        /// Override a config key in every run: --set run.total_frames=1e6 (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
        /// A named cell of the grid, "NAME: KEY=VALUE KEY=VALUE ..." (repeatable; "NAME:"
        /// alone for the config as it is): its runs go to OUT/NAME/... with run.label NAME,
        /// its overrides applied after every --set.
        #[arg(long = "variant", value_name = "NAME: KEY=VALUE ...")]
        variants: Vec<String>,
        /// Sweep folder: runs go to OUT/[<variant>/]<env>/<method>/seed-<s>/, seed by seed.
        #[arg(long)]
        out: PathBuf,
        /// Runs at a time (default: cores / run.threads).
        #[arg(long)]
        jobs: Option<usize>,
        /// Run every run as a Ray task: at ADDRESS (HOST:PORT), else RAY_ADDRESS, else
        /// a Ray instance started on this machine.
        #[arg(long, num_args = 0..=1, value_name = "ADDRESS")]
        ray: Option<Option<String>>,
    },
    /// Tables (mean and IQM with 95% stratified-bootstrap intervals, probability of
    /// improvement), figures (SVG + PNG) and index.html + summary.md from run folders.
    Report {
        /// Folders searched recursively for run folders (config.toml + metrics.csv).
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
        /// Report folder.
        #[arg(long)]
        out: PathBuf,
        /// Bootstrap resamples for the tables' intervals.
        #[arg(long, default_value_t = 2000)]
        reps: usize,
        /// Report runs whose run.label is FROM as TO (empty: no label), e.g. one
        /// setting run under two sweep variants' names (repeatable; said on the page).
        #[arg(long, value_name = "FROM=TO")]
        relabel: Vec<String>,
    },
    /// One run of a sweep: train or resume, then meta-test into eval.json (used by
    /// `sweep`; exits 3 when training was interrupted).
    #[command(hide = true)]
    SweepRun {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        seed: u64,
        #[arg(long = "set", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
        #[arg(long)]
        out: PathBuf,
    },
    /// Measure training frames per second (no run folder is written).
    Bench {
        /// Preset or config file, e.g. configs/gridnavi/rl2.toml.
        #[arg(long)]
        config: PathBuf,
        /// Override a config key: --set run.num_envs=32 (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
        /// Seconds of measured training (after warm-up updates).
        #[arg(long, default_value_t = 20.0)]
        seconds: f64,
        /// Time only the learning half (belief and policy updates) on a replayed
        /// rollout; Python-simulated envs are never stepped (data of their shapes).
        #[arg(long)]
        learn_only: bool,
    },
    /// List environments.
    Envs,
    /// List methods.
    Methods,
}

pub fn run(cli: Cli) -> Result<(), UserError> {
    match cli.command {
        Command::Train {
            config,
            overrides,
            out,
            resume,
            force,
        } => {
            train::train(&train::TrainArgs {
                config,
                overrides,
                out,
                resume,
                force,
                quiet: false,
            })?;
        }
        Command::Eval {
            run,
            split,
            episodes_per_task,
            num_tasks,
            greedy,
            summary_episodes,
            protocol,
            adaptation_episodes,
            evaluation_episodes,
            json,
            trials_csv,
            overrides,
        } => {
            let split = Split::parse(&split)?;
            let protocol = crate::run::eval_metaworld::Protocol::parse(
                &protocol,
                adaptation_episodes,
                evaluation_episodes,
            )?;
            let summary_episodes = summary_episodes
                .as_deref()
                .map(eval::parse_episode_range)
                .transpose()?;
            if episodes_per_task == Some(0) {
                return Err(UserError::invalid(
                    "--episodes-per-task",
                    "0",
                    "a positive number of episodes",
                ));
            }
            let report = eval::meta_test(&eval::EvalArgs {
                run: &run,
                split,
                episodes_per_task,
                num_tasks,
                greedy,
                summary_episodes,
                protocol,
                overrides: &overrides,
            })?;
            if let Some(path) = &trials_csv {
                eval::write_trials_csv(
                    path,
                    report.trials(),
                    report.scores().success_rate.is_some(),
                )?;
            }
            if json {
                println!(
                    "{}",
                    serde_json::to_string(&report).expect("report serialises")
                );
            } else {
                print!("{}", report.to_text());
            }
        }
        Command::Sweep {
            configs,
            seeds,
            overrides,
            variants,
            out,
            jobs,
            ray,
        } => {
            if jobs == Some(0) {
                return Err(UserError::invalid(
                    "--jobs",
                    "0",
                    "a positive number of runs",
                ));
            }
            let summary = crate::sweep::sweep(&crate::sweep::SweepArgs {
                configs,
                seeds: crate::sweep::parse_seeds(&seeds)?,
                overrides,
                variants: variants
                    .iter()
                    .map(|v| crate::sweep::Variant::parse(v))
                    .collect::<Result<_, _>>()?,
                out,
                jobs,
                ray,
                quiet: false,
            })?;
            if summary.skipped + summary.finished < summary.total {
                std::process::exit(crate::sweep::job::EXIT_INTERRUPTED);
            }
        }
        Command::Report {
            dirs,
            out,
            reps,
            relabel,
        } => {
            let relabel = relabel
                .iter()
                .map(|pair| {
                    pair.split_once('=')
                        .map(|(from, to)| (from.to_string(), to.to_string()))
                        .ok_or_else(|| {
                            UserError::invalid(
                                "--relabel",
                                pair,
                                "FROM=TO (a run.label, '=', its new label)",
                            )
                        })
                })
                .collect::<Result<_, _>>()?;
            let s = crate::report::report(&crate::report::ReportArgs {
                dirs,
                out,
                reps,
                relabel,
            })?;
            println!(
                "{} runs ({} evaluated), {} envs, {} figures: {}",
                s.runs,
                s.evaluated,
                s.envs,
                s.figures,
                s.index.display()
            );
        }
        Command::SweepRun {
            config,
            seed,
            overrides,
            out,
        } => {
            let outcome = crate::sweep::job::run_job(&crate::sweep::job::JobArgs {
                config,
                seed,
                overrides,
                out,
            })?;
            if outcome == crate::sweep::job::Outcome::Interrupted {
                std::process::exit(crate::sweep::job::EXIT_INTERRUPTED);
            }
        }
        Command::Bench {
            config,
            overrides,
            seconds,
            learn_only,
        } => {
            let cfg = Config::load(&config, &overrides)?;
            let report = if learn_only {
                bench::bench_learn_only(&cfg, seconds)?
            } else {
                bench::bench(&cfg, seconds)?
            };
            println!(
                "{}",
                serde_json::to_string_pretty(&report).expect("report serialises")
            );
        }
        Command::Envs => {
            let width = env::ENVS.iter().map(|e| e.0.len()).max().unwrap_or(0);
            for (name, about) in env::ENVS {
                println!("{name:<width$}  {about}");
            }
        }
        Command::Methods => print!("{}", methods_table()),
    }
    Ok(())
}

/// `bamdp methods`: every runnable combination by the name users know, what it is
/// (method x improver), its presets, then the belief methods and the improvers.
pub fn methods_table() -> String {
    use crate::method::{self, COMBINATIONS};
    let mut s = String::from("runnable methods (`method = NAME` in a config):\n");
    let width = COMBINATIONS.iter().map(|c| c.name.len()).max().unwrap_or(0);
    let pair = |c: &method::Combination| format!("{} x {}", c.method, c.improver);
    let pair_width = COMBINATIONS
        .iter()
        .map(|c| pair(c).len())
        .max()
        .unwrap_or(0);
    for c in COMBINATIONS {
        s.push_str(&format!(
            "  {:<width$}  {:<pair_width$}  {}\n",
            c.name,
            pair(c),
            c.presets.join(", ")
        ));
    }
    s.push_str("\nbelief methods:\n");
    for m in method::TABLE {
        s.push_str(&format!("  {:<width$}  {}\n", m.name(), m.about()));
    }
    s.push_str("\nimprovers (`improver = NAME`; smc pairs with oracle, varibad, glibrl):\n");
    for (name, about) in crate::config::IMPROVERS {
        s.push_str(&format!("  {name:<width$}  {about}\n"));
    }
    s
}
