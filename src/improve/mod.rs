//! Policy improvers: how a policy gets better from experience. PPO with GAE, and the
//! Belief-SMC planner ([`smc`]) whose targets VariBASeD's EM step fits. Improvers read from rollout buffers and never
//! reach back into environments or beliefs.

pub mod baseline;
pub mod em;
pub mod maml;
pub mod normalize;
pub mod ppo;
pub mod smc;

use crate::nn::{Adam, Params};

/// Number of chunks a minibatch's gradient is computed in, independent of threads, so
/// the thread count never changes results.
pub const CHUNKS: usize = 2;

/// One optimiser step on a minibatch split into `chunks`: each chunk's gradient (in
/// parallel when `threads > 1`), their sum in chunk order, gradient-norm clipping, an
/// Adam step. `chunk_grad(params, chunk, grad)` fills a zeroed gradient and returns
/// the chunk's `S` loss statistics. Returns the statistics summed over chunks (in
/// order) and the pre-clipping gradient norm; `grad` is scratch of `params.len()`.
#[allow(clippy::too_many_arguments)]
pub fn minibatch_step<C: Sync, const S: usize>(
    chunks: &[C],
    params: &mut Params,
    adam: &mut Adam,
    max_grad_norm: f64,
    lr: f64,
    threads: usize,
    grad: &mut [f32],
    chunk_grad: impl Fn(&Params, &C, &mut [f32]) -> [f64; S] + Sync,
) -> ([f64; S], f64) {
    let mut grads = vec![vec![0.0f32; params.len()]; chunks.len()];
    let mut stats = vec![[0.0f64; S]; chunks.len()];
    let p: &Params = params;
    let f = &chunk_grad;
    if threads > 1 && chunks.len() > 1 {
        std::thread::scope(|s| {
            for ((c, g), st) in chunks.iter().zip(grads.iter_mut()).zip(stats.iter_mut()) {
                s.spawn(move || *st = f(p, c, g));
            }
        });
    } else {
        for ((c, g), st) in chunks.iter().zip(grads.iter_mut()).zip(stats.iter_mut()) {
            *st = f(p, c, g);
        }
    }
    grad.iter_mut().for_each(|g| *g = 0.0);
    for g in &grads {
        grad.iter_mut().zip(g).for_each(|(a, b)| *a += b);
    }
    let norm = Adam::clip_grad_norm(grad, max_grad_norm);
    adam.step(&mut params.data, grad, lr);
    let total = stats.iter().fold([0.0; S], |mut acc, s| {
        acc.iter_mut().zip(s).for_each(|(a, b)| *a += b);
        acc
    });
    (total, norm)
}
