//! The `bamdp` command line: `train`, `eval`, `bench`, `envs`, `methods`.
//! User errors print one clear line and exit with code 2.

use crate::config::Config;
use crate::env::{self, Split};
use crate::error::UserError;
use crate::run::{bench, eval, train, trainer};
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
        /// Override a config key: --set ppo.lr=3e-4 (repeatable).
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
    /// Meta-test a trained run on held-out tasks: per-episode returns of each trial.
    Eval {
        #[arg(long)]
        run: PathBuf,
        /// Task split: test (held-out) or train.
        #[arg(long, default_value = "test")]
        split: String,
        /// Episodes per trial (default: the env's).
        #[arg(long)]
        episodes_per_task: Option<usize>,
        /// Number of tasks (default: the config's eval.num_tasks).
        #[arg(long)]
        num_tasks: Option<usize>,
        /// Take the most likely action instead of sampling.
        #[arg(long)]
        greedy: bool,
        /// Also report the mean return and success over episodes FIRST-LAST (1-based),
        /// e.g. 11-13 for MetaWorld's evaluation after 10 adaptation episodes.
        #[arg(long, value_name = "FIRST-LAST")]
        summary_episodes: Option<String>,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Measure training frames per second (no run folder is written).
    Bench {
        #[arg(long)]
        config: PathBuf,
        #[arg(long = "set", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
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
            json,
        } => {
            let split = Split::parse(&split)?;
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
            let report = eval::evaluate(&eval::EvalArgs {
                run: &run,
                split,
                episodes_per_task,
                num_tasks,
                greedy,
                summary_episodes,
            })?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string(&report).expect("report serialises")
                );
            } else {
                print!("{}", report.to_text());
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
            for (name, about) in env::ENVS {
                println!("{name:<12} {about}");
            }
        }
        Command::Methods => {
            for (name, about) in trainer::METHODS {
                println!("{name:<12} {about}");
            }
            println!("\nimprovers (`improver = ...`; smc pairs with oracle, varibad, glibrl):");
            for (name, about) in crate::config::IMPROVERS {
                println!("{name:<12} {about}");
            }
        }
    }
    Ok(())
}
