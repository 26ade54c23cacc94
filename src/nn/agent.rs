//! The actor-critic network every PPO-trained method uses, with an optional memory in
//! front: RL2's GRU or a causal transformer over the trial ([`super::transformer`]).
//!
//! Input per step is a flat vector `x_t`. Without memory, the actor and critic MLPs read
//! `x_t` directly (e.g. observation + belief features). With memory (RL2), `x_t` is laid
//! out as `[obs | previous action (one-hot) | previous reward | episode-done flag]`; each
//! part is embedded (ReLU), concatenated with the flag, and fed to a GRU whose hidden
//! state is what the actor and critic read. The hidden state is reset to zero at trial
//! starts only, so it carries what was learned across the episodes of a trial. With a
//! transformer core the same embedded vector is a token, the row's state is its
//! key/value cache, and the actor and critic read the newest token's output.

use super::graph::{self, GraphParams};
use super::gru_op;
use super::head::Head;
use super::host::{self, Act};
use super::lanes;
use super::mlp_op;
use super::overlap;
use super::params::{Dense, GruCell, Params, Slot};
use super::transformer::{self, StepScratch, Transformer, TransformerSpec};
use crate::par;
use crate::rng::Rng;
use burn::tensor::{Device, Gradients, Tensor};
use serde::{Deserialize, Serialize};

/// Sizes of the recurrent memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemorySpec {
    pub obs_dim: usize,
    pub action_dim: usize,
    pub obs_embed: usize,
    /// 0 = feed the one-hot action to the GRU without an embedding layer.
    pub action_embed: usize,
    pub reward_embed: usize,
    /// The GRU's hidden size (unused by a transformer core).
    pub hidden: usize,
    /// Which sequence model reads the embedded steps.
    #[serde(default)]
    pub core: CoreSpec,
}

/// The memory's sequence model.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CoreSpec {
    /// RL2's GRU ([`super::gru_op`]).
    #[default]
    Gru,
    /// A causal transformer over the trial ([`super::transformer`]).
    Transformer(TransformerSpec),
}

/// The memory's sequence model with its parameter slots. Serialised flat under the
/// key `gru` or `transformer`, so checkpoints from before the enum still load.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Core {
    Gru(GruCell),
    Transformer(Transformer),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Memory {
    pub spec: MemorySpec,
    pub obs_embed: Dense,
    pub action_embed: Option<Dense>,
    pub reward_embed: Dense,
    #[serde(flatten)]
    pub core: Core,
}

impl Memory {
    /// Width of the raw per-step input `x_t`.
    pub fn input_dim(&self) -> usize {
        self.spec.obs_dim + self.spec.action_dim + 2
    }
    /// Width of what the actor and critic read.
    pub fn output_dim(&self) -> usize {
        match &self.core {
            Core::Gru(cell) => cell.hidden(),
            Core::Transformer(tf) => tf.spec.width,
        }
    }
    /// Floats of per-row state carried between steps (zeroed at trial starts).
    pub fn state_dim(&self) -> usize {
        match &self.core {
            Core::Gru(cell) => cell.hidden(),
            Core::Transformer(tf) => tf.state_dim(),
        }
    }
    fn gru_input_dim(spec: &MemorySpec) -> usize {
        let a = if spec.action_embed == 0 {
            spec.action_dim
        } else {
            spec.action_embed
        };
        spec.obs_embed + a + spec.reward_embed + 1
    }
}

/// Which policy head [`AgentNet::with_head`] builds (the distributions are [`Head`]'s).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeadSpec {
    /// Softmax over one logit per action.
    Categorical,
    /// The actor outputs the mean; one learnt log-std per action dimension.
    Gaussian,
    /// Meta-World+'s head: the actor outputs the mean and log-std of each state, both
    /// through tanh. Its small output gain starts it near mean 0, std 1.
    StateGaussian,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AgentNet {
    pub input_dim: usize,
    pub num_actions: usize,
    pub act: Act,
    pub memory: Option<Memory>,
    pub actor: Vec<Dense>,
    pub critic: Vec<Dense>,
    /// Diagonal-Gaussian policy: the actor outputs the mean and this state-independent
    /// `[1, dim]` slot holds log standard deviations. None: categorical over logits.
    #[serde(default)]
    pub log_std: Option<Slot>,
    /// Meta-World+'s Gaussian head: the actor outputs `2 * num_actions` values, the
    /// mean and log standard deviations before tanh ([`Head::StateGaussian`]).
    #[serde(default)]
    pub state_std: bool,
}

/// Reusable buffers for host inference of a batch of `rows`.
pub struct Scratch {
    embed: Vec<f32>,
    gru: Vec<f32>,
    a: Vec<f32>,
    b: Vec<f32>,
    /// Transformer core: its step buffers and the newest tokens' outputs.
    tf: Option<StepScratch>,
    features: Vec<f32>,
}

impl AgentNet {
    /// Builds the network with a categorical head (or a Gaussian one by
    /// [`AgentNet::with_gaussian_head`]) and appends its parameters to `p`.
    pub fn new(
        p: &mut Params,
        input_dim: usize,
        num_actions: usize,
        hidden: &[usize],
        act: Act,
        memory: Option<MemorySpec>,
        rng: &mut Rng,
    ) -> Self {
        Self::with_head(
            p,
            input_dim,
            num_actions,
            HeadSpec::Categorical,
            hidden,
            act,
            memory,
            rng,
        )
    }

    /// Builds the network with the policy head `head` and appends its parameters to
    /// `p` (a Gaussian head's log-std slot last, as [`AgentNet::with_gaussian_head`]).
    #[allow(clippy::too_many_arguments)]
    pub fn with_head(
        p: &mut Params,
        input_dim: usize,
        num_actions: usize,
        head: HeadSpec,
        hidden: &[usize],
        act: Act,
        memory: Option<MemorySpec>,
        rng: &mut Rng,
    ) -> Self {
        let state_std = head == HeadSpec::StateGaussian;
        let memory = memory.map(|spec| {
            assert_eq!(input_dim, spec.obs_dim + spec.action_dim + 2);
            let relu_gain = 2f32.sqrt();
            Memory {
                spec,
                obs_embed: Dense::new(
                    p,
                    "mem.obs_embed",
                    spec.obs_dim,
                    spec.obs_embed,
                    relu_gain,
                    rng,
                ),
                action_embed: (spec.action_embed > 0).then(|| {
                    Dense::new(
                        p,
                        "mem.action_embed",
                        spec.action_dim,
                        spec.action_embed,
                        relu_gain,
                        rng,
                    )
                }),
                reward_embed: Dense::new(
                    p,
                    "mem.reward_embed",
                    1,
                    spec.reward_embed,
                    relu_gain,
                    rng,
                ),
                core: match spec.core {
                    CoreSpec::Gru => Core::Gru(GruCell::new(
                        p,
                        "mem.gru",
                        Memory::gru_input_dim(&spec),
                        spec.hidden,
                        rng,
                    )),
                    CoreSpec::Transformer(ts) => Core::Transformer(Transformer::new(
                        p,
                        "mem.tf",
                        Memory::gru_input_dim(&spec),
                        ts,
                        rng,
                    )),
                },
            }
        });
        let feat = memory.as_ref().map_or(input_dim, |m| m.output_dim());
        let gain = match act {
            Act::Relu => 2f32.sqrt(),
            _ => 5.0 / 3.0,
        };
        let mlp = |p: &mut Params, name: &str, out: usize, out_gain: f32, rng: &mut Rng| {
            let mut layers = Vec::new();
            let mut n_in = feat;
            for (i, &h) in hidden.iter().enumerate() {
                layers.push(Dense::new(p, &format!("{name}.{i}"), n_in, h, gain, rng));
                n_in = h;
            }
            layers.push(Dense::new(
                p,
                &format!("{name}.out"),
                n_in,
                out,
                out_gain,
                rng,
            ));
            layers
        };
        // Small policy output gain: near-uniform initial policy, as is standard for PPO.
        let out = if state_std {
            2 * num_actions
        } else {
            num_actions
        };
        let actor = mlp(p, "actor", out, 0.01, rng);
        let critic = mlp(p, "critic", 1, 1.0, rng);
        let net = AgentNet {
            input_dim,
            num_actions,
            act,
            memory,
            actor,
            critic,
            log_std: None,
            state_std,
        };
        if head == HeadSpec::Gaussian {
            net.with_gaussian_head(p)
        } else {
            net
        }
    }

    /// Width of one row of the actor's outputs.
    pub fn out_width(&self) -> usize {
        Head::of(self).out_width(self.num_actions)
    }

    /// Turns the actor's outputs into the mean of a diagonal Gaussian with learnable
    /// log standard deviations (initial std 1, as the reference's `policy_init_std`).
    pub fn with_gaussian_head(mut self, p: &mut Params) -> Self {
        debug_assert!(!self.state_std, "a net has one Gaussian head");
        self.log_std = Some(p.bias("actor.log_std", self.num_actions, 0.0));
        self
    }

    /// Width of the recurrent state per row (0 without memory).
    pub fn state_dim(&self) -> usize {
        self.memory.as_ref().map_or(0, |m| m.state_dim())
    }

    pub fn scratch(&self, rows: usize) -> Scratch {
        let widest = self
            .actor
            .iter()
            .chain(&self.critic)
            .map(|l| l.fan_out().max(l.fan_in()))
            .max()
            .unwrap_or(1)
            .max(self.input_dim)
            .max(self.memory.as_ref().map_or(0, |m| m.output_dim()));
        let (embed, gru) = match &self.memory {
            Some(m) => (
                rows * Memory::gru_input_dim(&m.spec)
                    .max(m.spec.obs_embed + m.spec.action_embed + m.spec.reward_embed),
                match &m.core {
                    Core::Gru(cell) => 2 * rows * 3 * cell.hidden(),
                    Core::Transformer(_) => 0,
                },
            ),
            None => (0, 0),
        };
        let tf = match self.memory.as_ref().map(|m| &m.core) {
            Some(Core::Transformer(tf)) => Some(tf.scratch(rows)),
            _ => None,
        };
        let features = tf.as_ref().map_or(0, |_| {
            rows * self.memory.as_ref().map_or(0, |m| m.output_dim())
        });
        Scratch {
            embed: vec![0.0; embed.max(rows * 64)],
            gru: vec![0.0; gru],
            a: vec![0.0; rows * widest],
            b: vec![0.0; rows * widest],
            tf,
            features: vec![0.0; features],
        }
    }

    /// Host forward of one step for `rows` rows: advances `state` (`rows * state_dim()`,
    /// zeroed beforehand by the caller at trial starts) and writes action logits
    /// (`rows * num_actions`) and values (`rows`).
    #[allow(clippy::too_many_arguments)]
    pub fn step(
        &self,
        p: &Params,
        x: &[f32],
        rows: usize,
        state: &mut [f32],
        s: &mut Scratch,
        logits: &mut [f32],
        values: &mut [f32],
    ) {
        let features: &[f32] = match &self.memory {
            Some(m) => {
                self.memory_input(p, m, x, rows, s);
                let gi = Memory::gru_input_dim(&m.spec);
                let tokens = &s.embed[..rows * gi];
                match &m.core {
                    Core::Gru(cell) => {
                        host::gru_step(p, cell, tokens, state, rows, &mut s.gru);
                        state
                    }
                    Core::Transformer(tf) => {
                        let out = &mut s.features[..rows * tf.spec.width];
                        let ts = s.tf.as_mut().expect("scratch built for this net");
                        tf.step(p, tokens, rows, state, ts, out);
                        out
                    }
                }
            }
            None => x,
        };
        Self::mlp_host(
            p,
            &self.actor,
            self.act,
            features,
            rows,
            &mut s.a,
            &mut s.b,
            logits,
        );
        Self::mlp_host(
            p,
            &self.critic,
            self.act,
            features,
            rows,
            &mut s.a,
            &mut s.b,
            values,
        );
    }

    /// The values of [`Self::step`] alone (the critic), for a net without memory.
    pub fn values(&self, p: &Params, x: &[f32], rows: usize, s: &mut Scratch, values: &mut [f32]) {
        assert!(
            self.memory.is_none(),
            "values alone need a net without memory"
        );
        Self::mlp_host(
            p,
            &self.critic,
            self.act,
            x,
            rows,
            &mut s.a,
            &mut s.b,
            values,
        );
    }

    fn memory_input(&self, p: &Params, m: &Memory, x: &[f32], rows: usize, s: &mut Scratch) {
        let spec = &m.spec;
        let gi = Memory::gru_input_dim(spec);
        let xi = self.input_dim;
        for r in 0..rows {
            let xr = &x[r * xi..(r + 1) * xi];
            let out = &mut s.embed[r * gi..(r + 1) * gi];
            let (o_obs, rest) = out.split_at_mut(spec.obs_embed);
            host::dense(p, &m.obs_embed, &xr[..spec.obs_dim], 1, Act::Relu, o_obs);
            let a_in = &xr[spec.obs_dim..spec.obs_dim + spec.action_dim];
            let a_w = if spec.action_embed == 0 {
                spec.action_dim
            } else {
                spec.action_embed
            };
            let (o_act, rest) = rest.split_at_mut(a_w);
            match &m.action_embed {
                Some(l) => host::dense(p, l, a_in, 1, Act::Relu, o_act),
                None => o_act.copy_from_slice(a_in),
            }
            let (o_rew, o_done) = rest.split_at_mut(spec.reward_embed);
            let ri = spec.obs_dim + spec.action_dim;
            host::dense(p, &m.reward_embed, &xr[ri..ri + 1], 1, Act::Relu, o_rew);
            o_done[0] = xr[ri + 1];
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn mlp_host(
        p: &Params,
        layers: &[Dense],
        act: Act,
        x: &[f32],
        rows: usize,
        a: &mut [f32],
        b: &mut [f32],
        out: &mut [f32],
    ) {
        let (last, hidden) = layers.split_last().expect("an output layer");
        // Batches of narrow layers (the planner's particles, rollouts over many envs)
        // go through the lane kernel: the same bits without the GEMM library's packing
        // and the hidden values' trips through memory.
        if rows >= lanes::MLP_MIN_ROWS && lanes::mlp_fits(layers) {
            lanes::mlp(p, layers, act, x, rows, &mut out[..rows * last.fan_out()]);
            return;
        }
        let Some((first, rest)) = hidden.split_first() else {
            host::dense(
                p,
                last,
                x,
                rows,
                Act::None,
                &mut out[..rows * last.fan_out()],
            );
            return;
        };
        host::dense(p, first, x, rows, act, &mut a[..rows * first.fan_out()]);
        let (mut cur, mut nxt) = (a, b);
        for l in rest {
            host::dense(
                p,
                l,
                &cur[..rows * l.fan_in()],
                rows,
                act,
                &mut nxt[..rows * l.fan_out()],
            );
            std::mem::swap(&mut cur, &mut nxt);
        }
        host::dense(
            p,
            last,
            &cur[..rows * last.fan_in()],
            rows,
            Act::None,
            &mut out[..rows * last.fan_out()],
        );
    }

    /// The GRU's input for every step, `[n, gru_input]`: the embedded parts of `x`.
    pub fn memory_input_graph(&self, gp: &GraphParams, m: &Memory, xt: Tensor<2>) -> Tensor<2> {
        let n = xt.dims()[0];
        let sp = &m.spec;
        let obs = xt.clone().slice([0..n, 0..sp.obs_dim]);
        let act = xt
            .clone()
            .slice([0..n, sp.obs_dim..sp.obs_dim + sp.action_dim]);
        let ri = sp.obs_dim + sp.action_dim;
        let rew = xt.clone().slice([0..n, ri..ri + 1]);
        let done = xt.slice([0..n, ri + 1..ri + 2]);
        let e_obs = gp.dense(&m.obs_embed, obs, Act::Relu);
        let e_act = match &m.action_embed {
            Some(l) => gp.dense(l, act, Act::Relu),
            None => act,
        };
        let e_rew = gp.dense(&m.reward_embed, rew, Act::Relu);
        Tensor::cat(vec![e_obs, e_act, e_rew, done], 1)
    }

    /// Actor logits `[n, A]` and critic values `[n, 1]` from features `[n, F]`.
    pub fn heads_graph(&self, gp: &GraphParams, features: Tensor<2>) -> (Tensor<2>, Tensor<2>) {
        let mlp = |layers: &[Dense]| {
            let mut h = features.clone();
            for (i, l) in layers.iter().enumerate() {
                let act = if i + 1 == layers.len() {
                    Act::None
                } else {
                    self.act
                };
                h = gp.dense(l, h, act);
            }
            h
        };
        (mlp(&self.actor), mlp(&self.critic))
    }

    /// Training forward over `steps` x `rows` time-major inputs, entirely in burn
    /// (the reference the fused path is tested against). Returns logits
    /// `[steps*rows, A]` and values `[steps*rows, 1]`.
    #[allow(clippy::too_many_arguments)]
    pub fn forward_graph(
        &self,
        gp: &GraphParams,
        x: &[f32],
        reset: &[f32],
        h0: &[f32],
        steps: usize,
        rows: usize,
        device: &Device,
    ) -> (Tensor<2>, Tensor<2>) {
        let n = steps * rows;
        let xt = graph::constant(x, n, self.input_dim, device);
        let features = match &self.memory {
            Some(m) => {
                let gin = self.memory_input_graph(gp, m, xt);
                match &m.core {
                    Core::Gru(cell) => {
                        let h0 = graph::constant(h0, rows, cell.hidden(), device);
                        gp.gru_sequence(cell, gin, reset, h0, steps, rows)
                    }
                    Core::Transformer(tf) => {
                        transformer::graph::sequence(gp, tf, gin, reset, h0, steps, rows)
                    }
                }
            }
            None => xt,
        };
        self.heads_graph(gp, features)
    }

    /// Training forward with the GRU run by the fused host op
    /// ([`super::gru_op`]). Returns logits, values and, for a recurrent net, the pending
    /// part of the backward pass: call [`FusedPending::finish`] with the gradients of the
    /// loss to complete the parameter gradient.
    #[allow(clippy::too_many_arguments)]
    pub fn forward_fused(
        &self,
        gp: &GraphParams,
        params: &Params,
        x: &[f32],
        reset: &[f32],
        h0: &[f32],
        steps: usize,
        rows: usize,
        device: &Device,
    ) -> (Tensor<2>, Tensor<2>, Option<FusedPending>) {
        let n = steps * rows;
        let xt = graph::constant(x, n, self.input_dim, device);
        match &self.memory {
            Some(m) => {
                let gin = self.memory_input_graph(gp, m, xt);
                let gin_host = graph::to_vec(gin.clone().detach());
                let (hs, tape) = match &m.core {
                    Core::Gru(cell) => {
                        let (hs, tape) =
                            gru_op::forward(params, cell, &gin_host, reset, h0, steps, rows);
                        (hs, CoreTape::Gru(tape, *cell))
                    }
                    Core::Transformer(tf) => {
                        let (hs, tape) = transformer::sequence::forward(
                            params, tf, &gin_host, reset, h0, steps, rows,
                        );
                        (hs, CoreTape::Transformer(Box::new(tape), tf.clone()))
                    }
                };
                let h_leaf = graph::constant(&hs, n, m.output_dim(), device).require_grad();
                let (l, v) = self.heads_graph(gp, h_leaf.clone());
                (l, v, Some(FusedPending { gin, h_leaf, tape }))
            }
            None => {
                let (l, v) = self.heads_graph(gp, xt);
                (l, v, None)
            }
        }
    }

    /// Training forward entirely on the host ([`super::mlp_op`], [`super::gru_op`]):
    /// logits `[steps*rows, A]`, values `[steps*rows]` and the tape for
    /// [`Self::backward_host`]. Computes the same function as [`Self::forward_graph`].
    /// Runs on up to `threads` threads (actor and critic side by side) with a result
    /// that does not depend on `threads`.
    #[allow(clippy::too_many_arguments)]
    pub fn forward_host(
        &self,
        p: &Params,
        x: &[f32],
        reset: &[f32],
        h0: &[f32],
        steps: usize,
        rows: usize,
        threads: usize,
    ) -> (Vec<f32>, Vec<f32>, HostTape) {
        let n = steps * rows;
        let (features, memory) = match &self.memory {
            Some(m) => {
                let sp = &m.spec;
                let xi = self.input_dim;
                let columns = |from: usize, width: usize| -> Vec<f32> {
                    x.chunks_exact(xi)
                        .flat_map(|r| r[from..from + width].iter().copied())
                        .collect()
                };
                let ri = sp.obs_dim + sp.action_dim;
                let (e_obs, obs) = mlp_op::forward(
                    p,
                    std::slice::from_ref(&m.obs_embed),
                    Act::Relu,
                    Act::Relu,
                    &columns(0, sp.obs_dim),
                    n,
                );
                let act_in = columns(sp.obs_dim, sp.action_dim);
                let (e_act, act) = match &m.action_embed {
                    Some(l) => {
                        let (e, t) = mlp_op::forward(
                            p,
                            std::slice::from_ref(l),
                            Act::Relu,
                            Act::Relu,
                            &act_in,
                            n,
                        );
                        (e, Some(t))
                    }
                    None => (act_in, None),
                };
                let (e_rew, rew) = mlp_op::forward(
                    p,
                    std::slice::from_ref(&m.reward_embed),
                    Act::Relu,
                    Act::Relu,
                    &columns(ri, 1),
                    n,
                );
                let widths = [e_obs.len() / n, e_act.len() / n, e_rew.len() / n];
                let gi = Memory::gru_input_dim(sp);
                let mut gin = Vec::with_capacity(n * gi);
                for i in 0..n {
                    gin.extend_from_slice(&e_obs[i * widths[0]..(i + 1) * widths[0]]);
                    gin.extend_from_slice(&e_act[i * widths[1]..(i + 1) * widths[1]]);
                    gin.extend_from_slice(&e_rew[i * widths[2]..(i + 1) * widths[2]]);
                    gin.push(x[i * xi + ri + 1]);
                }
                let (hs, core) = match &m.core {
                    Core::Gru(cell) => {
                        // The GRU and the heads overlapped in blocks of time steps.
                        let tapes = overlap::forward(
                            p,
                            cell,
                            &self.heads(),
                            &gin,
                            reset,
                            h0,
                            steps,
                            rows,
                            threads,
                        );
                        let overlap::Tapes { gru, actor, critic } = tapes;
                        let memory = MemoryTape {
                            obs,
                            act,
                            rew,
                            core: CoreTape::Gru(gru, *cell),
                            widths,
                        };
                        return (
                            actor.output().to_vec(),
                            critic.output().to_vec(),
                            HostTape {
                                rows: n,
                                actor,
                                critic,
                                memory: Some(memory),
                            },
                        );
                    }
                    Core::Transformer(tf) => {
                        let (hs, tape) =
                            transformer::sequence::forward(p, tf, &gin, reset, h0, steps, rows);
                        (hs, CoreTape::Transformer(Box::new(tape), tf.clone()))
                    }
                };
                (
                    hs,
                    Some(MemoryTape {
                        obs,
                        act,
                        rew,
                        core,
                        widths,
                    }),
                )
            }
            None => (x.to_vec(), None),
        };
        let actor = || mlp_op::forward(p, &self.actor, self.act, Act::None, &features, n);
        let critic = || mlp_op::forward(p, &self.critic, self.act, Act::None, &features, n);
        let ((logits, actor), (values, critic)) = par::join(threads, actor, critic);
        (
            logits,
            values,
            HostTape {
                rows: n,
                actor,
                critic,
                memory,
            },
        )
    }

    /// Adds the parameter gradient of a loss into `grad` from its gradients w.r.t. the
    /// logits and values of [`Self::forward_host`], on up to `threads` threads with a
    /// result that does not depend on `threads`.
    pub fn backward_host(
        &self,
        p: &Params,
        tape: &HostTape,
        dlogits: &[f32],
        dvalues: &[f32],
        grad: &mut [f32],
        threads: usize,
    ) {
        let n = tape.rows;
        let Some((m, mt)) = self.memory.as_ref().zip(tape.memory.as_ref()) else {
            mlp_op::backward(p, &self.actor, &tape.actor, dlogits, grad, None);
            mlp_op::backward(p, &self.critic, &tape.critic, dvalues, grad, None);
            return;
        };
        let gi = Memory::gru_input_dim(&m.spec);
        let mut dgin = vec![0.0f32; n * gi];
        match &mt.core {
            CoreTape::Gru(gru, cell) => {
                let tapes = overlap::TapesRef {
                    gru,
                    actor: &tape.actor,
                    critic: &tape.critic,
                };
                let heads = self.heads();
                overlap::backward(
                    p, cell, &heads, tapes, dlogits, dvalues, grad, &mut dgin, threads,
                );
            }
            CoreTape::Transformer(core, tf) => {
                self.heads_backward_then(p, tape, dlogits, dvalues, grad, threads, |dh, grad| {
                    transformer::sequence::backward(p, tf, core, dh, grad, &mut dgin)
                })
            }
        }
        self.embeddings_backward(p, m, mt, &dgin, grad);
    }

    /// The actor and critic layers, for [`overlap`].
    fn heads(&self) -> overlap::Heads<'_> {
        overlap::Heads {
            actor: &self.actor,
            critic: &self.critic,
            act: self.act,
        }
    }

    /// The heads' backward over all rows (actor and critic side by side), then `core`
    /// on the summed gradient w.r.t. the features.
    #[allow(clippy::too_many_arguments)]
    fn heads_backward_then(
        &self,
        p: &Params,
        tape: &HostTape,
        dlogits: &[f32],
        dvalues: &[f32],
        grad: &mut [f32],
        threads: usize,
        core: impl FnOnce(&[f32], &mut [f32]),
    ) {
        let n = tape.rows;
        let hd = tape.actor.input_width();
        let mut dh = vec![0.0f32; n * hd];
        // The critic's weight gradient goes to a buffer of its own (added below), so
        // that actor and critic can run side by side; they own disjoint parameters.
        let len = grad.len();
        let critic = || {
            let mut g = vec![0.0f32; len];
            let mut dh_critic = vec![0.0f32; n * hd];
            let (c, t) = (&self.critic, &tape.critic);
            mlp_op::backward(p, c, t, dvalues, &mut g, Some(&mut dh_critic));
            (g, dh_critic)
        };
        let actor = || mlp_op::backward(p, &self.actor, &tape.actor, dlogits, grad, Some(&mut dh));
        let ((), (g_critic, dh_critic)) = par::join(threads, actor, critic);
        grad.iter_mut().zip(&g_critic).for_each(|(a, b)| *a += b);
        dh.iter_mut().zip(&dh_critic).for_each(|(a, b)| *a += b);
        core(&dh, grad);
    }

    /// The embeddings' backward from dLoss/d(GRU or transformer input).
    fn embeddings_backward(
        &self,
        p: &Params,
        m: &Memory,
        mt: &MemoryTape,
        dgin: &[f32],
        grad: &mut [f32],
    ) {
        let gi = Memory::gru_input_dim(&m.spec);
        let [wo, wa, wr] = mt.widths;
        let part = |from: usize, width: usize| -> Vec<f32> {
            dgin.chunks_exact(gi)
                .flat_map(|r| r[from..from + width].iter().copied())
                .collect()
        };
        let obs = std::slice::from_ref(&m.obs_embed);
        mlp_op::backward(p, obs, &mt.obs, &part(0, wo), grad, None);
        if let (Some(l), Some(t)) = (&m.action_embed, &mt.act) {
            mlp_op::backward(p, std::slice::from_ref(l), t, &part(wo, wa), grad, None);
        }
        let rew = std::slice::from_ref(&m.reward_embed);
        mlp_op::backward(p, rew, &mt.rew, &part(wo + wa, wr), grad, None);
    }
}

/// What [`AgentNet::backward_host`] needs from [`AgentNet::forward_host`].
pub struct HostTape {
    rows: usize,
    actor: mlp_op::MlpTape,
    critic: mlp_op::MlpTape,
    memory: Option<MemoryTape>,
}

impl HostTape {
    /// The GRU state entering step `t` of every row of the pass (`rows * hidden`
    /// values; `None` without a GRU memory): where a time-ordered BPTT piece that
    /// starts at `t` picks up.
    pub fn gru_state_entering(&self, t: usize) -> Option<Vec<f32>> {
        match &self.memory.as_ref()?.core {
            CoreTape::Gru(gru, _) => Some(gru.state_entering(t)),
            CoreTape::Transformer(..) => None,
        }
    }
}

struct MemoryTape {
    obs: mlp_op::MlpTape,
    act: Option<mlp_op::MlpTape>,
    rew: mlp_op::MlpTape,
    core: CoreTape,
    /// Widths of the embedded observation, action and reward in the GRU input.
    widths: [usize; 3],
}

/// The rest of a fused backward pass: hidden-state gradient -> GRU parameters and
/// inputs (host), inputs -> embedding parameters (burn, by surrogate).
pub struct FusedPending {
    gin: Tensor<2>,
    h_leaf: Tensor<2>,
    tape: CoreTape,
}

/// The host op's tape and its core.
enum CoreTape {
    Gru(gru_op::GruTape, GruCell),
    Transformer(Box<transformer::sequence::SequenceTape>, Transformer),
}

impl FusedPending {
    pub fn finish(self, gp: &GraphParams, params: &Params, grads: &Gradients, grad: &mut [f32]) {
        let dh = graph::to_vec(
            self.h_leaf
                .grad(grads)
                .expect("loss depends on the hidden states"),
        );
        let [n, gi] = self.gin.dims();
        let mut dgin = vec![0.0f32; n * gi];
        match &self.tape {
            CoreTape::Gru(tape, cell) => gru_op::backward(params, cell, tape, &dh, grad, &mut dgin),
            CoreTape::Transformer(tape, tf) => {
                transformer::sequence::backward(params, tf, tape, &dh, grad, &mut dgin)
            }
        }
        let device = self.gin.device();
        let surrogate = (self.gin * graph::constant(&dgin, n, gi, &device)).sum();
        let g2 = surrogate.backward();
        gp.add_flat_grad(&g2, grad);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_host_equals_graph(memory: Option<MemorySpec>, input_dim: usize, act: Act) {
        let mut rng = Rng::new(3);
        let mut p = Params::new();
        let net = AgentNet::new(&mut p, input_dim, 5, &[16, 8], act, memory, &mut rng);
        let (steps, rows) = (7, 3);
        let x: Vec<f32> = (0..steps * rows * input_dim)
            .map(|_| rng.normal() as f32)
            .collect();
        let mut reset = vec![0.0f32; steps * rows];
        reset[..rows].iter_mut().for_each(|v| *v = 1.0);
        reset[4 * rows + 1] = 1.0; // a trial starts mid-sequence on row 1
        let sd = net.state_dim();
        let h0: Vec<f32> = (0..rows * sd).map(|_| rng.normal() as f32 * 0.3).collect();

        let device = Device::flex().autodiff();
        let gp = GraphParams::new(&p, &device);
        let (lg, vg) = net.forward_graph(&gp, &x, &reset, &h0, steps, rows, &device);
        let (lg, vg) = (graph::to_vec(lg), graph::to_vec(vg));

        let mut s = net.scratch(rows);
        let mut h = h0.clone();
        let mut logits = vec![0.0; rows * 5];
        let mut values = vec![0.0; rows];
        for t in 0..steps {
            for r in 0..rows {
                if reset[t * rows + r] != 0.0 {
                    h[r * sd..(r + 1) * sd].iter_mut().for_each(|v| *v = 0.0);
                }
            }
            let xs = &x[t * rows * input_dim..(t + 1) * rows * input_dim];
            net.step(&p, xs, rows, &mut h, &mut s, &mut logits, &mut values);
            for i in 0..rows * 5 {
                assert!(
                    (logits[i] - lg[t * rows * 5 + i]).abs() < 1e-5,
                    "logit t={t} i={i}"
                );
            }
            for r in 0..rows {
                assert!(
                    (values[r] - vg[t * rows + r]).abs() < 1e-4,
                    "value t={t} r={r}"
                );
            }
        }
    }

    #[test]
    fn host_forward_equals_graph_forward_feedforward() {
        check_host_equals_graph(None, 6, Act::Tanh);
        check_host_equals_graph(None, 6, Act::Relu);
    }

    #[test]
    fn host_forward_equals_graph_forward_recurrent() {
        let spec = MemorySpec {
            obs_dim: 2,
            action_dim: 5,
            obs_embed: 4,
            action_embed: 3,
            reward_embed: 2,
            hidden: 6,
            core: CoreSpec::Gru,
        };
        check_host_equals_graph(Some(spec), 9, Act::Tanh);
        let spec = MemorySpec {
            action_embed: 0,
            ..spec
        };
        check_host_equals_graph(Some(spec), 9, Act::Relu);
    }

    #[test]
    fn host_forward_equals_graph_forward_transformer() {
        use super::transformer::Positions;
        for positions in [Positions::Rotary, Positions::None] {
            let spec = MemorySpec {
                obs_dim: 2,
                action_dim: 5,
                obs_embed: 4,
                action_embed: 3,
                reward_embed: 2,
                hidden: 0,
                core: CoreSpec::Transformer(TransformerSpec {
                    layers: 2,
                    heads: 2,
                    width: 8,
                    window: 4,
                    mlp: 12,
                    positions,
                }),
            };
            check_host_equals_graph(Some(spec), 9, Act::Tanh);
        }
    }
}
