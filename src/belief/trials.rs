//! Complete trials as training data for learned beliefs: the record of one trial's
//! transitions `(s, a, r, s')`, a ring buffer of recent trials, and the collector that
//! assembles trials from the batched stream of transitions while acting. VariBAD's
//! VAE and GLiBRL's marginal likelihood both train from a [`TrialBuffer`].

use super::Transition;
use crate::rng::Rng;
use serde::{Deserialize, Serialize};

/// One trial: for `t = 0..T`, the observation before step t (`s_t`), the action, the
/// raw reward and the observation after the step (`s'_t`; at an episode end the
/// episode's final observation, so `s'_t != s_{t+1}` there). Observations are row-major
/// `[T, obs_dim]`, actions `[T, action_width]` (discrete: the index as f32, width 1).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TrialRecord {
    pub obs: Vec<f32>,
    pub actions: Vec<f32>,
    pub rewards: Vec<f32>,
    pub next_obs: Vec<f32>,
}

impl TrialRecord {
    pub fn len(&self) -> usize {
        self.rewards.len()
    }
    pub fn is_empty(&self) -> bool {
        self.rewards.is_empty()
    }

    /// Appends one transition.
    pub fn push_step(&mut self, obs: &[f32], action: &[f32], reward: f32, next_obs: &[f32]) {
        self.obs.extend_from_slice(obs);
        self.actions.extend_from_slice(action);
        self.rewards.push(reward);
        self.next_obs.extend_from_slice(next_obs);
    }

    /// Discrete action index of step `t` (width-1 actions).
    pub fn action_index(&self, t: usize) -> usize {
        self.actions[t] as usize
    }

    fn with_capacity(steps: usize, obs_dim: usize, action_width: usize) -> Self {
        TrialRecord {
            obs: Vec::with_capacity(steps * obs_dim),
            actions: Vec::with_capacity(steps * action_width),
            rewards: Vec::with_capacity(steps),
            next_obs: Vec::with_capacity(steps * obs_dim),
        }
    }
}

/// A ring buffer of the most recent complete trials.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrialBuffer {
    pub capacity: usize,
    pub obs_dim: usize,
    pub action_width: usize,
    trials: Vec<TrialRecord>,
    /// Slot the next trial is written to once the buffer is full.
    next: usize,
}

impl TrialBuffer {
    pub fn new(capacity: usize, obs_dim: usize, action_width: usize) -> Self {
        assert!(capacity > 0, "TrialBuffer capacity must be positive");
        TrialBuffer {
            capacity,
            obs_dim,
            action_width,
            trials: Vec::new(),
            next: 0,
        }
    }

    /// Adds a trial, overwriting the oldest one when full.
    pub fn push(&mut self, trial: TrialRecord) {
        let t = trial.len();
        assert_eq!(trial.obs.len(), t * self.obs_dim, "trial observations");
        assert_eq!(
            trial.next_obs.len(),
            t * self.obs_dim,
            "trial next observations"
        );
        assert_eq!(trial.actions.len(), t * self.action_width, "trial actions");
        if self.trials.len() < self.capacity {
            self.trials.push(trial);
        } else {
            self.trials[self.next] = trial;
        }
        self.next = (self.next + 1) % self.capacity;
    }

    pub fn len(&self) -> usize {
        self.trials.len()
    }
    pub fn is_empty(&self) -> bool {
        self.trials.is_empty()
    }

    /// Slot `i` (slots are not in age order once the ring has wrapped).
    pub fn get(&self, i: usize) -> &TrialRecord {
        &self.trials[i]
    }

    /// The trials from oldest to newest.
    pub fn iter_oldest_first(&self) -> impl Iterator<Item = &TrialRecord> {
        let split = if self.trials.len() < self.capacity {
            0
        } else {
            self.next
        };
        self.trials[split..].iter().chain(&self.trials[..split])
    }

    /// `min(batch, len)` distinct slot indices, uniformly at random (the VariBAD
    /// reference samples without replacement).
    pub fn sample(&self, batch: usize, rng: &mut Rng) -> Vec<usize> {
        let n = self.trials.len();
        let k = batch.min(n);
        let mut idx: Vec<usize> = (0..n).collect();
        for i in 0..k {
            let j = i + rng.below((n - i) as u64) as usize;
            idx.swap(i, j);
        }
        idx.truncate(k);
        idx
    }

    /// The trials at `indices`.
    pub fn gather(&self, indices: &[usize]) -> Vec<&TrialRecord> {
        indices.iter().map(|&i| &self.trials[i]).collect()
    }
}

/// A [`TrialBuffer`] as flat columns, slot by slot: the form a checkpoint stores as
/// tensors (one copy of each field, no per-value encoding).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TrialColumns {
    pub capacity: usize,
    pub obs_dim: usize,
    pub action_width: usize,
    /// The ring's write position.
    pub next: usize,
    /// Steps of each filled slot, in slot order.
    pub lengths: Vec<u32>,
    /// The slots' fields concatenated in slot order.
    pub obs: Vec<f32>,
    pub actions: Vec<f32>,
    pub rewards: Vec<f32>,
    pub next_obs: Vec<f32>,
}

impl TrialBuffer {
    /// The buffer as columns (see [`TrialColumns`]).
    pub fn to_columns(&self) -> TrialColumns {
        let steps: usize = self.trials.iter().map(TrialRecord::len).sum();
        let mut c = TrialColumns {
            capacity: self.capacity,
            obs_dim: self.obs_dim,
            action_width: self.action_width,
            next: self.next,
            lengths: Vec::with_capacity(self.trials.len()),
            obs: Vec::with_capacity(steps * self.obs_dim),
            actions: Vec::with_capacity(steps * self.action_width),
            rewards: Vec::with_capacity(steps),
            next_obs: Vec::with_capacity(steps * self.obs_dim),
        };
        for t in &self.trials {
            c.lengths.push(t.len() as u32);
            c.obs.extend_from_slice(&t.obs);
            c.actions.extend_from_slice(&t.actions);
            c.rewards.extend_from_slice(&t.rewards);
            c.next_obs.extend_from_slice(&t.next_obs);
        }
        c
    }

    /// The buffer [`TrialBuffer::to_columns`] was taken from; an error names the first
    /// inconsistency (columns that do not add up).
    pub fn from_columns(c: &TrialColumns) -> Result<TrialBuffer, String> {
        let steps: usize = c.lengths.iter().map(|&n| n as usize).sum();
        let (od, aw) = (c.obs_dim, c.action_width);
        if c.capacity == 0 || c.lengths.len() > c.capacity || c.next >= c.capacity {
            return Err(format!(
                "trial buffer: {} trials, write position {}, capacity {}",
                c.lengths.len(),
                c.next,
                c.capacity
            ));
        }
        if c.obs.len() != steps * od
            || c.next_obs.len() != steps * od
            || c.actions.len() != steps * aw
            || c.rewards.len() != steps
        {
            return Err(format!(
                "trial buffer: columns of {} / {} / {} / {} values do not hold {steps} steps of observation width {od} and action width {aw}",
                c.obs.len(),
                c.actions.len(),
                c.rewards.len(),
                c.next_obs.len()
            ));
        }
        let mut trials = Vec::with_capacity(c.lengths.len());
        let (mut s, mut o, mut a) = (0, 0, 0);
        for &n in &c.lengths {
            let n = n as usize;
            trials.push(TrialRecord {
                obs: c.obs[o..o + n * od].to_vec(),
                actions: c.actions[a..a + n * aw].to_vec(),
                rewards: c.rewards[s..s + n].to_vec(),
                next_obs: c.next_obs[o..o + n * od].to_vec(),
            });
            (s, o, a) = (s + n, o + n * od, a + n * aw);
        }
        Ok(TrialBuffer {
            capacity: c.capacity,
            obs_dim: od,
            action_width: aw,
            trials,
            next: c.next,
        })
    }
}

/// Assembles the trials of a batch of streaming rows (one per environment) from the
/// transitions fed to the belief, and hands each complete trial to a [`TrialBuffer`].
/// Serialisable, so partial trials survive a checkpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrialCollector {
    pub obs_dim: usize,
    pub action_width: usize,
    pub running: Vec<TrialRecord>,
}

impl TrialCollector {
    pub fn new(rows: usize, obs_dim: usize, action_width: usize) -> Self {
        TrialCollector {
            obs_dim,
            action_width,
            running: vec![TrialRecord::default(); rows],
        }
    }

    /// Appends `(s, a, r, s')` of every row.
    pub fn record(&mut self, tr: &Transition<'_>) {
        let (od, aw) = (self.obs_dim, self.action_width);
        for (r, t) in self.running.iter_mut().enumerate() {
            t.push_step(
                &tr.obs[r * od..(r + 1) * od],
                &tr.action[r * aw..(r + 1) * aw],
                tr.reward[r],
                &tr.next_obs[r * od..(r + 1) * od],
            );
        }
    }

    /// Moves the trials of the rows flagged in `trial_end` (if non-empty) into `buf`.
    pub fn finish(&mut self, trial_end: &[bool], buf: &mut TrialBuffer) {
        for (t, &end) in self.running.iter_mut().zip(trial_end) {
            if end && !t.is_empty() {
                let fresh = TrialRecord::with_capacity(t.len(), self.obs_dim, self.action_width);
                buf.push(std::mem::replace(t, fresh));
            }
        }
    }
}
