//! RL2's training pass (the GRU and the actor and critic heads on its hidden states)
//! with the GRU's recurrence overlapped with the heads, in fixed blocks of time steps.
//!
//! Why: a PPO minibatch of one long sequence (ML10: 5,000 steps) is one chunk of
//! the loss, so nothing else fills the second core, and the recurrence (one
//! matrix-vector product per step each way) cannot be split over threads without a
//! barrier per step. What can run beside it is the heads' work: in the forward pass the
//! heads of block `k` run while the recurrence computes block `k + 1`; in the backward
//! pass the heads' row-wise part (dLoss/dh of block `k`) runs ahead of the recurrence
//! going backwards, and the heads' weight gradients while it finishes. Synchronisation
//! is once per block (hundreds of steps), so a thread the OS deschedules on a loaded
//! machine delays the other by at most a block.
//!
//! The blocks never change a result: every hidden state and every row of the heads
//! is computed exactly as in one pass ([`gru_op::Forward`], [`mlp_op::forward_rows`];
//! the products are row-stable, [`super::gemm`]), and every weight gradient is one
//! product over all rows, as before. Work items write disjoint outputs, so the result
//! is the same on any number of threads (tested below).
//!
//! ```
//! use bamdp::nn::host::Act;
//! use bamdp::nn::overlap::{self, Heads};
//! use bamdp::nn::params::{Dense, GruCell, Params};
//! use bamdp::rng::Rng;
//! let (mut p, mut rng) = (Params::new(), Rng::new(1));
//! let cell = GruCell::new(&mut p, "gru", 3, 4, &mut rng);
//! let actor = [Dense::new(&mut p, "a", 4, 2, 1.0, &mut rng)];
//! let critic = [Dense::new(&mut p, "c", 4, 1, 1.0, &mut rng)];
//! let heads = Heads { actor: &actor, critic: &critic, act: Act::Tanh };
//! let (steps, rows) = (5, 2);
//! let x = vec![0.5f32; steps * rows * 3];
//! let reset = vec![0.0f32; steps * rows];
//! let tapes = overlap::forward(&p, &cell, &heads, &x, &reset, &[0.0; 8], steps, rows, 2);
//! assert_eq!(tapes.logits().len(), steps * rows * 2);
//! let mut grad = vec![0.0f32; p.len()];
//! let mut dx = vec![0.0f32; x.len()];
//! let (dl, dv) = (vec![1.0f32; steps * rows * 2], vec![1.0f32; steps * rows]);
//! overlap::backward(&p, &cell, &heads, tapes.as_ref(), &dl, &dv, &mut grad, &mut dx, 2);
//! ```

use super::gru_op::{self, disjoint_mut, GruTape, StepGradients};
use super::host::Act;
use super::mlp_op::{self, split_rows, Deltas, MlpTape};
use super::params::{Dense, GruCell, Params};
use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, OnceLock};

/// Samples (steps x rows) per block of time steps: enough rows for efficient products
/// in the heads, few enough that the pipeline fills and drains quickly (ML10: 20
/// blocks of 256 steps).
pub const BLOCK_SAMPLES: usize = 256;

/// The actor and critic MLPs on the GRU's hidden states (linear output layers).
pub struct Heads<'a> {
    pub actor: &'a [Dense],
    pub critic: &'a [Dense],
    /// Activation of the hidden layers.
    pub act: Act,
}

/// What [`backward`] needs from [`forward`].
pub struct Tapes {
    pub gru: GruTape,
    pub actor: MlpTape,
    pub critic: MlpTape,
}

/// The parts of [`Tapes`], wherever they are kept.
#[derive(Clone, Copy)]
pub struct TapesRef<'a> {
    pub gru: &'a GruTape,
    pub actor: &'a MlpTape,
    pub critic: &'a MlpTape,
}

impl Tapes {
    pub fn as_ref(&self) -> TapesRef<'_> {
        TapesRef {
            gru: &self.gru,
            actor: &self.actor,
            critic: &self.critic,
        }
    }
    /// The actor's outputs, `[steps*rows, A]`.
    pub fn logits(&self) -> &[f32] {
        self.actor.output()
    }
    /// The critic's outputs, `[steps*rows]`.
    pub fn values(&self) -> &[f32] {
        self.critic.output()
    }
}

/// The blocks of time steps, independent of the thread count.
fn blocks(steps: usize, rows: usize) -> Vec<Range<usize>> {
    let per = (BLOCK_SAMPLES / rows.max(1)).max(1);
    crate::par::ranges(steps, steps.div_ceil(per))
}

/// The GRU over `steps` x `rows` time-major inputs `gin` from `h0` (see
/// [`gru_op::forward`]), then the actor and critic on every hidden state, on up to
/// `threads` threads.
#[allow(clippy::too_many_arguments)]
pub fn forward(
    p: &Params,
    cell: &GruCell,
    heads: &Heads<'_>,
    gin: &[f32],
    reset: &[f32],
    h0: &[f32],
    steps: usize,
    rows: usize,
    threads: usize,
) -> Tapes {
    let hd = cell.hidden();
    let n = steps * rows;
    let samples: Vec<Range<usize>> = blocks(steps, rows)
        .iter()
        .map(|b| b.start * rows..b.end * rows)
        .collect();
    let mut hs = vec![0.0f32; n * hd];
    let mut actor = MlpTape::zeroed(heads.actor, heads.act, Act::None, n);
    let mut critic = MlpTape::zeroed(heads.critic, heads.act, Act::None, n);
    let mut pass = gru_op::Forward::new(p, cell, gin, reset, h0, steps, rows);
    {
        let finished: Vec<OnceLock<&[f32]>> = samples.iter().map(|_| OnceLock::new()).collect();
        let progress = Progress::default();
        let (finished, progress) = (&finished, &progress);
        let mut jobs: Vec<Job<'_>> = Vec::new();
        let head_blocks = actor
            .blocks_mut(&samples)
            .into_iter()
            .zip(critic.blocks_mut(&samples));
        for (k, (a, c)) in head_blocks.enumerate() {
            for (layers, mut block) in [(heads.actor, a), (heads.critic, c)] {
                jobs.push(Box::new(move || {
                    progress.wait_for(k + 1);
                    let x = finished[k].get().expect("block published before counted");
                    mlp_op::forward_rows(p, layers, heads.act, Act::None, x, &mut block);
                }));
            }
        }
        let jobs = Jobs::new(jobs);
        let hs_blocks = split_rows(&mut hs, hd, &samples);
        let recurrence = || {
            for (k, block) in hs_blocks.into_iter().enumerate() {
                pass.run(block);
                let done: &[f32] = block;
                finished[k].set(done).expect("each block published once");
                progress.add();
            }
            jobs.run_all();
        };
        if threads > 1 {
            std::thread::scope(|s| {
                s.spawn(|| jobs.run_all());
                recurrence();
            });
        } else {
            recurrence();
        }
    }
    Tapes {
        gru: pass.finish(),
        actor,
        critic,
    }
}

/// Adds the parameter gradient of a loss with gradients `dlogits` and `dvalues` w.r.t.
/// the outputs of [`forward`] into `grad` (laid out like `Params::data`; the GRU's and
/// the heads' slots must hold zeros or earlier gradients, nothing else writes them) and
/// writes dLoss/d`gin` into `dgin`, on up to `threads` threads.
#[allow(clippy::too_many_arguments)]
pub fn backward(
    p: &Params,
    cell: &GruCell,
    heads: &Heads<'_>,
    tapes: TapesRef<'_>,
    dlogits: &[f32],
    dvalues: &[f32],
    grad: &mut [f32],
    dgin: &mut [f32],
    threads: usize,
) {
    let hd = cell.hidden();
    let (steps, rows) = (tapes.gru.steps(), tapes.gru.rows());
    let n = steps * rows;
    let samples: Vec<Range<usize>> = blocks(steps, rows)
        .iter()
        .map(|b| b.start * rows..b.end * rows)
        .collect();
    let mut deltas = [
        Deltas::zeroed(heads.actor, n),
        Deltas::zeroed(heads.critic, n),
    ];
    let mut dh_heads = [vec![0.0f32; n * hd], vec![0.0f32; n * hd]];
    let span = |layers: &[Dense]| {
        let (lo, hi) = layers
            .iter()
            .flat_map(|l| [l.w.range(), l.b.range()])
            .fold((usize::MAX, 0), |(lo, hi), r| {
                (lo.min(r.start), hi.max(r.end))
            });
        lo..hi
    };
    let spans = [span(heads.actor), span(heads.critic)];
    let [g_actor, g_critic, wx, wh, bx, bh] = disjoint_mut(
        grad,
        [
            spans[0].clone(),
            spans[1].clone(),
            cell.wx.range(),
            cell.wh.range(),
            cell.bx.range(),
            cell.bh.range(),
        ],
    );
    // dLoss/dh of each block from each head, published as the heads finish them.
    let published: Vec<[OnceLock<&[f32]>; 2]> = samples
        .iter()
        .map(|_| [OnceLock::new(), OnceLock::new()])
        .collect();
    let ready = Progress::default();
    let sums: OnceLock<StepGradients<'_>> = OnceLock::new();
    let recurrence_done = Progress::default();
    let (published, ready, sums, recurrence_done) = (&published, &ready, &sums, &recurrence_done);
    let samples = &samples;
    let [da, dc] = &mut deltas;
    let [dha, dhc] = &mut dh_heads;
    let dh_blocks = [split_rows(dha, hd, samples), split_rows(dhc, hd, samples)];
    let head_weights = [g_actor, g_critic];
    // The heads, from the last block to the first (the order the recurrence needs
    // them in), then their weight gradients from all rows.
    let helper = move |with_gru_jobs: bool, gru_jobs: &Jobs<'_>| {
        let mut dh_blocks = dh_blocks.map(|v| v.into_iter().map(Some).collect::<Vec<_>>());
        {
            let mut d_blocks = [da.blocks_mut(samples), dc.blocks_mut(samples)];
            for k in (0..samples.len()).rev() {
                let range = samples[k].clone();
                for h in 0..2 {
                    let (layers, tape, dy, width) = match h {
                        0 => (heads.actor, tapes.actor, dlogits, dlogits.len() / n),
                        _ => (heads.critic, tapes.critic, dvalues, 1),
                    };
                    let dh = dh_blocks[h][k].take().expect("each block once");
                    mlp_op::backward_rows(
                        p,
                        layers,
                        tape,
                        range.clone(),
                        &dy[range.start * width..range.end * width],
                        &mut d_blocks[h][k],
                        Some(&mut *dh),
                    );
                    let done: &[f32] = dh;
                    published[k][h]
                        .set(done)
                        .expect("each block published once");
                }
                ready.add();
            }
        }
        let [ga, gc] = head_weights;
        let (base_a, base_c) = (spans[0].start, spans[1].start);
        mlp_op::backward_weights(heads.actor, tapes.actor, da, ga, base_a);
        mlp_op::backward_weights(heads.critic, tapes.critic, dc, gc, base_c);
        if with_gru_jobs {
            gru_jobs.run_all();
        }
    };
    let gru_jobs = Jobs::new(vec![
        Box::new(move || {
            recurrence_done.wait_for(1);
            sums.get()
                .expect("set before counted")
                .recurrent_weights(wh);
        }),
        Box::new(move || {
            recurrence_done.wait_for(1);
            let s = sums.get().expect("set before counted");
            s.input_side(p, cell, wx, bx, bh, dgin);
        }),
    ]);
    // The recurrence backwards, block by block as the heads publish them.
    let recurrence = |gru_jobs: &Jobs<'_>| {
        let mut pass = gru_op::Backward::new(p, cell, tapes.gru);
        let mut dh = Vec::new();
        for k in (0..samples.len()).rev() {
            ready.wait_for(samples.len() - k);
            let [a, c] = &published[k];
            let (a, c) = (a.get().expect("published"), c.get().expect("published"));
            dh.clear();
            dh.extend(a.iter().zip(c.iter()).map(|(a, c)| a + c));
            pass.run(&dh);
        }
        if sums.set(pass.finish()).is_err() {
            unreachable!("the recurrence runs once");
        }
        recurrence_done.add();
        gru_jobs.run_all();
    };
    if threads > 1 {
        std::thread::scope(|s| {
            let gru_jobs = &gru_jobs;
            s.spawn(move || helper(true, gru_jobs));
            recurrence(gru_jobs);
        });
    } else {
        helper(false, &gru_jobs);
        recurrence(&gru_jobs);
    }
}

/// A job of a list: runs once, on whichever thread takes it.
type Job<'a> = Box<dyn FnOnce() + Send + 'a>;

/// Jobs taken in list order by whichever thread is free; each writes its own outputs.
struct Jobs<'a> {
    next: AtomicUsize,
    jobs: Vec<Mutex<Option<Job<'a>>>>,
}

impl<'a> Jobs<'a> {
    fn new(jobs: Vec<Job<'a>>) -> Self {
        Jobs {
            next: AtomicUsize::new(0),
            jobs: jobs.into_iter().map(|j| Mutex::new(Some(j))).collect(),
        }
    }

    /// Runs jobs until none is left to take.
    fn run_all(&self) {
        while let Some(slot) = self.jobs.get(self.next.fetch_add(1, Ordering::Relaxed)) {
            let job = slot
                .lock()
                .expect("a job panicked")
                .take()
                .expect("each job taken once");
            job();
        }
    }
}

/// A count of finished blocks that other threads wait on.
#[derive(Default)]
struct Progress {
    count: Mutex<usize>,
    changed: Condvar,
}

impl Progress {
    fn add(&self) {
        *self.count.lock().expect("progress lock") += 1;
        self.changed.notify_all();
    }

    fn wait_for(&self, at_least: usize) {
        let mut count = self.count.lock().expect("progress lock");
        while *count < at_least {
            count = self.changed.wait(count).expect("progress lock");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    /// The overlapped pass on 1 and 2 threads, against the GRU and the heads run one
    /// after the other over all rows: bit-identical outputs and gradients.
    #[test]
    fn overlapped_pass_equals_the_plain_pass_on_any_thread_count() {
        let mut rng = Rng::new(21);
        let mut p = Params::new();
        let (id, hd, steps) = (5, 8, 700);
        let cell = GruCell::new(&mut p, "gru", id, hd, &mut rng);
        let mlp = |p: &mut Params, name: &str, out: usize, rng: &mut Rng| {
            vec![
                Dense::new(p, &format!("{name}.0"), hd, 16, 1.0, rng),
                Dense::new(p, &format!("{name}.1"), 16, 16, 1.0, rng),
                Dense::new(p, &format!("{name}.out"), 16, out, 1.0, rng),
            ]
        };
        let actor = mlp(&mut p, "actor", 3, &mut rng);
        let critic = mlp(&mut p, "critic", 1, &mut rng);
        for v in p.data.iter_mut() {
            *v += 0.05 * rng.normal() as f32;
        }
        let heads = Heads {
            actor: &actor,
            critic: &critic,
            act: Act::Tanh,
        };
        // One sequence (the ML10 case, several blocks) and three (blocks of fewer steps).
        for rows in [1, 3] {
            let n = steps * rows;
            let x: Vec<f32> = (0..n * id).map(|_| rng.normal() as f32).collect();
            let mut reset = vec![0.0f32; n];
            reset[..rows].iter_mut().for_each(|v| *v = 1.0);
            reset[170 * rows] = 1.0;
            let h0 = vec![0.0f32; rows * hd];
            let dl: Vec<f32> = (0..n * 3).map(|_| rng.normal() as f32).collect();
            let dv: Vec<f32> = (0..n).map(|_| rng.normal() as f32).collect();

            // The plain pass: GRU, then each head over all rows.
            let (hs, gru_tape) = gru_op::forward(&p, &cell, &x, &reset, &h0, steps, rows);
            let (logits, at) = mlp_op::forward(&p, &actor, Act::Tanh, Act::None, &hs, n);
            let (values, ct) = mlp_op::forward(&p, &critic, Act::Tanh, Act::None, &hs, n);
            let mut g_plain = vec![0.0f32; p.len()];
            let mut dh = vec![0.0f32; n * hd];
            let mut dh_c = vec![0.0f32; n * hd];
            mlp_op::backward(&p, &actor, &at, &dl, &mut g_plain, Some(&mut dh));
            mlp_op::backward(&p, &critic, &ct, &dv, &mut g_plain, Some(&mut dh_c));
            dh.iter_mut().zip(&dh_c).for_each(|(a, b)| *a += b);
            let mut dx_plain = vec![0.0f32; n * id];
            gru_op::backward(&p, &cell, &gru_tape, &dh, &mut g_plain, &mut dx_plain);
            assert!(blocks(steps, rows).len() > 2, "several blocks");

            for threads in [1, 2, 3] {
                let tapes = forward(&p, &cell, &heads, &x, &reset, &h0, steps, rows, threads);
                assert_eq!(tapes.logits(), &logits[..], "logits, {threads} threads");
                assert_eq!(tapes.values(), &values[..], "values, {threads} threads");
                let mut g = vec![0.0f32; p.len()];
                let mut dx = vec![0.0f32; n * id];
                backward(
                    &p,
                    &cell,
                    &heads,
                    tapes.as_ref(),
                    &dl,
                    &dv,
                    &mut g,
                    &mut dx,
                    threads,
                );
                assert_eq!(g, g_plain, "gradient, {rows} rows, {threads} threads");
                assert_eq!(dx, dx_plain, "dx, {rows} rows, {threads} threads");
            }
        }
    }
}
