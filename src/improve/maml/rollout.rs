//! One MAML meta-batch on a [`BatchEnv`]: one task per env row, whose trial is the
//! adaptation episodes of every inner step followed by the post-adaptation episodes.
//! A row acts with the meta-parameters during its first block of episodes; when a block
//! ends, its advantages are computed and the row's inner step taken (all rows whose
//! block ended on the same env step together, in parallel), and the row acts on with the
//! adapted parameters.
//!
//! Buffers are kept between meta-batches (cleared, not freed) and acting uses a fixed
//! scratch, so stepping allocates nothing once the first meta-batch has sized them.

use super::meta::{par_map, Maml, TaskBatch};
use super::policy::{Actor, Policy};
use crate::env::{ActionSpace, BatchEnv, StepOut};
use crate::improve::baseline::{gae, returns_to_go, standardize, LinearBaseline};
use crate::par::Pool;
use crate::rng::Rng;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// How advantages are estimated.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdvantageSettings {
    pub gamma: f64,
    pub gae_lambda: f64,
    pub normalize: bool,
}

/// Side information of one block of episodes of one row.
#[derive(Clone, Debug, Default)]
struct Block {
    rewards: Vec<f64>,
    steps: Vec<usize>,
    ends: Vec<bool>,
    episode_returns: Vec<f64>,
    episode_success: Vec<bool>,
}

impl Block {
    fn reserve_exact(&mut self, steps: usize, episodes: usize) {
        self.rewards.reserve_exact(steps);
        self.steps.reserve_exact(steps);
        self.ends.reserve_exact(steps);
        self.episode_returns.reserve_exact(episodes);
        self.episode_success.reserve_exact(episodes);
    }

    /// Bytes of a block's buffers for `steps` steps and `episodes` episodes.
    fn bytes(steps: usize, episodes: usize) -> u128 {
        let per_step = size_of::<f64>() + size_of::<usize>() + size_of::<bool>();
        let per_episode = size_of::<f64>() + size_of::<bool>();
        steps as u128 * per_step as u128 + episodes as u128 * per_episode as u128
    }

    fn clear(&mut self) {
        self.rewards.clear();
        self.steps.clear();
        self.ends.clear();
        self.episode_returns.clear();
        self.episode_success.clear();
    }
}

/// Per-row results of one meta-batch.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RowResult {
    /// Mean episode return of every block (adaptation blocks, then post-adaptation).
    pub block_returns: Vec<f64>,
    /// Success rate of every block's episodes (0 where the env has no success signal).
    pub block_success: Vec<f64>,
    /// Every episode's return and success, in the order played.
    pub episode_returns: Vec<f64>,
    pub episode_success: Vec<bool>,
    /// The row's task: its index in the split's task list, where the env has one.
    pub task: Option<u32>,
}

/// Collects meta-batches from a batch of `meta_batch` rows.
pub struct Collector {
    pub policy: Policy,
    /// Episodes of each block: `[adapt; inner_steps] + [post]`.
    pub block_episodes: Vec<usize>,
    /// Whether each block acts greedily (the mode) instead of sampling.
    pub block_greedy: Vec<bool>,
    pub advantages: AdvantageSettings,
    /// Per-row action samplers.
    pub rngs: Vec<Rng>,
    /// Set when the last meta-batch left rows mid-trial (episodes of unequal length):
    /// the next one starts with fresh trials.
    pub needs_reset: bool,
    /// The samples of the last meta-batch, one per row (task).
    pub tasks: Vec<TaskBatch>,
    /// Each row's parameters per block (`theta`, then the adapted ones).
    pub thetas: Vec<Vec<Vec<f64>>>,
    blocks: Vec<Vec<Block>>,
    obs: Vec<f32>,
    out: StepOut,
    env_actions: Vec<f32>,
    /// Every row's sampled action and head outputs of the current step.
    actions: Vec<f64>,
    heads: Vec<f64>,
    /// Acting's contiguous chunks of rows, one per thread of `pool`.
    chunks: Vec<Mutex<ActChunk>>,
    pool: Option<Pool>,
}

/// One thread's share of acting: rows `first..first + rngs.len()`, with their random
/// streams (moved here for the meta-batch) and this step's actions and head outputs.
struct ActChunk {
    first: usize,
    actor: Actor,
    rngs: Vec<Rng>,
    actions: Vec<f64>,
    heads: Vec<f64>,
}

impl Collector {
    pub fn new(
        policy: Policy,
        env: &dyn BatchEnv,
        block_episodes: Vec<usize>,
        block_greedy: Vec<bool>,
        advantages: AdvantageSettings,
        rngs: Vec<Rng>,
    ) -> Collector {
        let rows = env.num_envs();
        let spec = env.spec();
        let blocks = block_episodes.len();
        Collector {
            block_episodes,
            block_greedy,
            advantages,
            rngs,
            needs_reset: true,
            tasks: vec![TaskBatch::default(); rows],
            thetas: vec![Vec::new(); rows],
            blocks: vec![vec![Block::default(); blocks]; rows],
            obs: vec![0.0; rows * spec.obs_dim],
            out: StepOut::new(rows, spec.obs_dim),
            env_actions: vec![0.0; rows * spec.action.width()],
            actions: vec![0.0; rows * policy.action_width()],
            heads: vec![0.0; rows * policy.out_dim()],
            chunks: Vec::new(),
            pool: None,
            policy,
        }
    }

    /// Plays one trial per row from `theta`, adapting each row with `maml` after every
    /// adaptation block. Returns env steps taken and per-row results; the samples are
    /// left in [`Collector::tasks`].
    pub fn collect(
        &mut self,
        env: &mut dyn BatchEnv,
        theta: &[f64],
        maml: &Maml,
    ) -> (u64, Vec<RowResult>) {
        let rows = env.num_envs();
        let spec = env.spec().clone();
        let od = spec.obs_dim;
        let nb = self.block_episodes.len();
        let post = nb - 1;
        if self.needs_reset {
            env.reset(&mut self.obs);
        }
        // Every row starts a trial here (reset, or the previous one ended with the batch).
        let task_of: Vec<Option<u32>> = (0..rows).map(|r| env.task_index(r)).collect();
        let aw = self.policy.action_width();
        let o = self.policy.out_dim();
        // A block plays at most `episodes x episode_len` steps: its buffers are sized
        // for that once, exactly (growing by doubling could hold twice the samples).
        let steps = |b: usize| self.block_episodes[b] * spec.episode_len;
        for r in 0..rows {
            let task = &mut self.tasks[r];
            task.adapt.resize_with(post, Default::default);
            for (b, a) in task.adapt.iter_mut().enumerate() {
                a.obs.clear();
                a.actions.clear();
                a.advantages.clear();
                a.obs.reserve_exact(steps(b) * od);
                a.actions.reserve_exact(steps(b) * aw);
            }
            let p = &mut task.post;
            for v in [
                &mut p.obs,
                &mut p.actions,
                &mut p.advantages,
                &mut p.old_log_probs,
                &mut p.old_out,
            ] {
                v.clear();
            }
            p.obs.reserve_exact(steps(post) * od);
            p.actions.reserve_exact(steps(post) * aw);
            p.old_log_probs.reserve_exact(steps(post));
            p.old_out.reserve_exact(steps(post) * o);
            for (b, bl) in self.blocks[r].iter_mut().enumerate() {
                bl.clear();
                bl.reserve_exact(steps(b), self.block_episodes[b]);
            }
            self.thetas[r].clear();
            self.thetas[r].push(theta.to_vec());
        }
        let mut block = vec![0usize; rows];
        let mut episodes_in_block = vec![0usize; rows];
        let mut step_in_episode = vec![0usize; rows];
        let mut episode_return = vec![0.0f64; rows];
        let mut episode_success = vec![false; rows];
        let mut done = vec![false; rows];
        let mut finished_at = vec![0u64; rows];
        let mut frames = 0u64;
        let (low, high) = match spec.action {
            ActionSpace::Continuous { low, high, .. } => (low, high),
            ActionSpace::Discrete(_) => (f32::NEG_INFINITY, f32::INFINITY),
        };
        // Acting is split over the threads by contiguous chunks of rows; each row's
        // action depends only on its own parameters, observation and random stream.
        self.prepare_chunks(rows, maml.threads);
        for c in &self.chunks {
            let c = &mut *c.lock().expect("acting chunk");
            let rows = c.first..c.first + c.rngs.len();
            c.rngs.clone_from_slice(&self.rngs[rows]);
        }
        while done.iter().any(|d| !d) {
            self.act_all(theta, &block, &done);
            for r in 0..rows {
                if done[r] {
                    // Waiting for other rows: a valid action whose samples are dropped.
                    self.env_actions[r * aw..(r + 1) * aw]
                        .iter_mut()
                        .for_each(|a| *a = 0.0);
                    continue;
                }
                let b = block[r];
                let th = &self.thetas[r][b];
                let obs = &self.obs[r * od..(r + 1) * od];
                let action = &self.actions[r * aw..(r + 1) * aw];
                let head = &self.heads[r * o..(r + 1) * o];
                for (e, &a) in self.env_actions[r * aw..(r + 1) * aw]
                    .iter_mut()
                    .zip(action)
                {
                    *e = (a as f32).clamp(low, high);
                }
                let task = &mut self.tasks[r];
                if b < post {
                    let a = &mut task.adapt[b];
                    a.obs.extend(obs.iter().map(|&x| x as f64));
                    a.actions.extend_from_slice(action);
                } else {
                    let p = &mut task.post;
                    p.obs.extend(obs.iter().map(|&x| x as f64));
                    p.actions.extend_from_slice(action);
                    p.old_out.extend_from_slice(head);
                    p.old_log_probs.push(self.policy.log_prob(th, head, action));
                }
            }
            env.step(&self.env_actions, &mut self.out);
            frames += rows as u64;
            self.obs.copy_from_slice(&self.out.obs);
            let mut adapt_now = Vec::new();
            for r in 0..rows {
                if done[r] {
                    continue;
                }
                let bl = &mut self.blocks[r][block[r]];
                let reward = self.out.reward[r] as f64;
                bl.rewards.push(reward);
                bl.steps.push(step_in_episode[r]);
                let end = self.out.episode_end(r);
                bl.ends.push(end);
                episode_return[r] += reward;
                episode_success[r] |= self.out.success[r];
                step_in_episode[r] += 1;
                if !end {
                    continue;
                }
                bl.episode_returns.push(episode_return[r]);
                bl.episode_success.push(episode_success[r]);
                episode_return[r] = 0.0;
                episode_success[r] = false;
                step_in_episode[r] = 0;
                episodes_in_block[r] += 1;
                if episodes_in_block[r] < self.block_episodes[block[r]] {
                    continue;
                }
                episodes_in_block[r] = 0;
                if block[r] < post {
                    adapt_now.push(r);
                } else {
                    done[r] = true;
                    finished_at[r] = frames;
                }
                block[r] += 1;
            }
            if !adapt_now.is_empty() {
                self.adapt_rows(&adapt_now, &block, maml, od);
            }
        }
        for c in &self.chunks {
            let c = c.lock().expect("acting chunk");
            self.rngs[c.first..c.first + c.rngs.len()].clone_from_slice(&c.rngs);
        }
        // Post-adaptation advantages and the behaviour policy's log-stds.
        let all: Vec<usize> = (0..rows).collect();
        self.advantages_of(&all, post, od, maml.threads);
        for r in 0..rows {
            let th = self.thetas[r].last().expect("adapted theta");
            self.tasks[r].post.old_log_std = self.policy.log_std(th).to_vec();
        }
        self.needs_reset =
            finished_at.iter().any(|&f| f != frames) || !(0..rows).all(|r| self.out.trial_end[r]);
        let results = (0..rows)
            .map(|r| RowResult {
                block_returns: self.blocks[r]
                    .iter()
                    .map(|b| mean(&b.episode_returns))
                    .collect(),
                block_success: self.blocks[r]
                    .iter()
                    .map(|b| {
                        let s: Vec<f64> =
                            b.episode_success.iter().map(|&s| s as u8 as f64).collect();
                        mean(&s)
                    })
                    .collect(),
                episode_returns: self.blocks[r]
                    .iter()
                    .flat_map(|b| b.episode_returns.iter().copied())
                    .collect(),
                episode_success: self.blocks[r]
                    .iter()
                    .flat_map(|b| b.episode_success.iter().copied())
                    .collect(),
                task: task_of[r],
            })
            .collect();
        (frames, results)
    }

    /// Sizes acting's chunks and pool for `rows` rows on `threads` threads (once).
    fn prepare_chunks(&mut self, rows: usize, threads: usize) {
        let threads = threads.clamp(1, rows.max(1));
        if self.chunks.len() == threads && self.pool.is_some() {
            return;
        }
        let chunk = rows.div_ceil(threads);
        let (aw, o) = (self.policy.action_width(), self.policy.out_dim());
        self.chunks = (0..threads)
            .map(|i| {
                let first = (i * chunk).min(rows);
                let len = chunk.min(rows - first);
                Mutex::new(ActChunk {
                    first,
                    actor: Actor::with_rows(&self.policy, len),
                    rngs: self.rngs[first..first + len].to_vec(),
                    actions: vec![0.0; len * aw],
                    heads: vec![0.0; len * o],
                })
            })
            .collect();
        self.pool = Some(Pool::new(threads));
    }

    /// Every running row's action and head outputs for the current observations, in
    /// `self.actions` / `self.heads`: rows still in the first block share `theta` and
    /// are computed together; the others each with their adapted parameters.
    fn act_all(&mut self, theta: &[f64], block: &[usize], done: &[bool]) {
        let (policy, thetas, obs) = (&self.policy, &self.thetas, &self.obs);
        let (greedy, aw, o) = (&self.block_greedy, policy.action_width(), policy.out_dim());
        let work = |c: &mut ActChunk| {
            let ActChunk {
                first,
                actor,
                rngs,
                actions,
                heads,
            } = c;
            let first = *first;
            let rows = first..first + rngs.len();
            actor.group.clear();
            actor
                .group
                .extend(rows.clone().filter(|&r| !done[r] && block[r] == 0));
            if !actor.group.is_empty() {
                let group = std::mem::take(&mut actor.group);
                let k = group.len();
                // The group's outputs go to its first rows' slots, then move out
                // (backwards, so no slot is overwritten before it is read).
                actor.forward_rows(policy, theta, obs, &group, &mut heads[..k * o]);
                for (i, &r) in group.iter().enumerate().rev() {
                    let local = r - first;
                    if local != i {
                        heads.copy_within(i * o..(i + 1) * o, local * o);
                    }
                }
                actor.group = group;
            }
            for r in rows {
                let local = r - first;
                if done[r] {
                    continue;
                }
                let th = &thetas[r][block[r]];
                let head = &mut heads[local * o..(local + 1) * o];
                if block[r] != 0 {
                    actor.forward_rows(policy, th, obs, &[r], head);
                }
                actor.sample(
                    policy,
                    th,
                    head,
                    greedy[block[r]],
                    &mut rngs[local],
                    &mut actions[local * aw..(local + 1) * aw],
                );
            }
        };
        let next = AtomicUsize::new(0);
        let chunks = &self.chunks;
        let job = || loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(c) = chunks.get(i) else { break };
            work(&mut c.lock().expect("acting chunk"));
        };
        self.pool.as_ref().expect("prepared").run(&job);
        for c in &self.chunks {
            let c = c.lock().expect("acting chunk");
            let n = c.rngs.len();
            self.actions[c.first * aw..(c.first + n) * aw].copy_from_slice(&c.actions);
            self.heads[c.first * o..(c.first + n) * o].copy_from_slice(&c.heads);
        }
    }

    /// Computes the advantages of block `b` on `rows` (in parallel).
    fn advantages_of(&mut self, rows: &[usize], b: usize, od: usize, threads: usize) {
        let post = self.block_episodes.len() - 1;
        let settings = self.advantages;
        let items: Vec<(usize, &Block, &[f64])> = rows
            .iter()
            .map(|&r| {
                let obs: &[f64] = if b < post {
                    &self.tasks[r].adapt[b].obs
                } else {
                    &self.tasks[r].post.obs
                };
                (r, &self.blocks[r][b], obs)
            })
            .collect();
        let advs = par_map(&items, threads, |(_, bl, obs), _| {
            let n = bl.rewards.len();
            let mut ret = vec![0.0; n];
            returns_to_go(&bl.rewards, &bl.ends, settings.gamma, &mut ret);
            let baseline = LinearBaseline::fit(obs, &bl.steps, &ret, od);
            let mut values = vec![0.0; n];
            baseline.predict(obs, &bl.steps, od, &mut values);
            let mut adv = vec![0.0; n];
            gae(
                &bl.rewards,
                &values,
                &bl.ends,
                settings.gamma,
                settings.gae_lambda,
                &mut adv,
            );
            if settings.normalize {
                standardize(&mut adv);
            }
            adv
        });
        for (&r, adv) in rows.iter().zip(advs) {
            if b < post {
                self.tasks[r].adapt[b].advantages = adv;
            } else {
                self.tasks[r].post.advantages = adv;
            }
        }
    }

    /// Advantages of the block each row in `rows` just finished, then its inner step.
    fn adapt_rows(&mut self, rows: &[usize], block: &[usize], maml: &Maml, od: usize) {
        // Rows finishing on the same step finished the same block (equal episode
        // counts), except with unequal episode lengths: group by block.
        let mut by_block: Vec<(usize, Vec<usize>)> = Vec::new();
        for &r in rows {
            let b = block[r] - 1;
            match by_block.iter_mut().find(|(bb, _)| *bb == b) {
                Some((_, v)) => v.push(r),
                None => by_block.push((b, vec![r])),
            }
        }
        for (b, rs) in by_block {
            self.advantages_of(&rs, b, od, maml.threads);
            let items: Vec<(&[f64], &super::meta::AdaptBatch)> = rs
                .iter()
                .map(|&r| (self.thetas[r][b].as_slice(), &self.tasks[r].adapt[b]))
                .collect();
            let next = par_map(&items, maml.threads, |(th, batch), tape| {
                maml.inner_step(th, batch, tape)
            });
            for (&r, th) in rs.iter().zip(next) {
                self.thetas[r].push(th);
            }
        }
    }
}

/// Bytes of one row's samples of a meta-batch with `block_episodes` episodes per block
/// (adaptation blocks, then post-adaptation) of at most `episode_len` steps: what
/// [`Collector::collect`] reserves.
pub fn row_sample_bytes(policy: &Policy, block_episodes: &[usize], episode_len: usize) -> u128 {
    let (od, aw, o) = (policy.obs_dim, policy.action_width(), policy.out_dim());
    let f64s = |n: usize| 8 * n as u128;
    let post = block_episodes.len() - 1;
    block_episodes
        .iter()
        .enumerate()
        .map(|(b, &episodes)| {
            let n = episodes.saturating_mul(episode_len);
            // Observations, actions, advantages; the post-adaptation block also keeps
            // the behaviour policy's log-probabilities and head outputs.
            let samples = if b < post {
                f64s(n.saturating_mul(od + aw + 1))
            } else {
                f64s(n.saturating_mul(od + aw + 2 + o))
            };
            samples + Block::bytes(n, episodes)
        })
        .sum()
}

fn mean(xs: &[f64]) -> f64 {
    if xs.is_empty() {
        f64::NAN
    } else {
        xs.iter().sum::<f64>() / xs.len() as f64
    }
}
