//! A fused GRU sequence op on the host: forward over a whole (time-major) minibatch of
//! sequences and the exact backward (back-propagation through time), written out by
//! hand.
//!
//! Why: in burn's CPU back-end a GRU step is ~20 tiny graph nodes, and for the short,
//! narrow sequences of meta-RL the autodiff bookkeeping costs far more than the
//! arithmetic. Training runs the embeddings and heads in burn and this op in between:
//! the heads' gradient w.r.t. the hidden states comes back from burn, this op turns it
//! into the GRU's parameter gradients and the gradient w.r.t. its inputs, which is fed
//! back into burn through the surrogate `sum(dX.detach() * X)`. Tests check it against
//! burn's autodiff GRU ([`super::graph::GraphParams::gru_sequence`]).

use super::gemm::{matmul, mm_a_bt_acc, mm_acc, mm_acc_few_rows, mm_at_b_acc, Mat, FEW_ROWS};
use super::host::gru_gates;
use super::params::{GruCell, Params};
use crate::par;
use std::ops::Range;

/// What the backward pass needs from the forward pass.
pub struct GruTape {
    steps: usize,
    rows: usize,
    /// Inputs `[steps*rows, I]`.
    x: Vec<f32>,
    /// Hidden state entering each step, after trial-start resets `[steps*rows, H]`.
    h_prev: Vec<f32>,
    /// Gates per step `[steps*rows, H]` each.
    r: Vec<f32>,
    z: Vec<f32>,
    n: Vec<f32>,
    /// The hidden projection's n-part (incl. bias), `[steps*rows, H]`.
    ghn: Vec<f32>,
    reset: Vec<f32>,
}

/// Runs the GRU over `steps` x `rows` time-major inputs `x` (`[steps*rows, I]`) from `h0`
/// (`[rows, H]`), zeroing the state before steps flagged in `reset`. Returns all hidden
/// states (`[steps*rows, H]`) and the tape for [`backward`].
pub fn forward(
    p: &Params,
    cell: &GruCell,
    x: &[f32],
    reset: &[f32],
    h0: &[f32],
    steps: usize,
    rows: usize,
) -> (Vec<f32>, GruTape) {
    let (hd, id) = (cell.hidden(), cell.input());
    let g = 3 * hd;
    let nr = steps * rows;
    // Input projection for all steps at once. Buffers are built by appending (every
    // element is written once: no zeroing pass over memory that is overwritten anyway).
    let bx = p.get(cell.bx);
    let mut gx = Vec::with_capacity(nr * g);
    for _ in 0..nr {
        gx.extend_from_slice(bx);
    }
    mm_acc(x, p.get(cell.wx), &mut gx, nr, id, g);
    let wh = p.get(cell.wh);
    let bh = p.get(cell.bh);
    let mut tape = GruTape {
        steps,
        rows,
        x: x.to_vec(),
        h_prev: Vec::with_capacity(nr * hd),
        r: Vec::with_capacity(nr * hd),
        z: Vec::with_capacity(nr * hd),
        n: Vec::with_capacity(nr * hd),
        ghn: Vec::with_capacity(nr * hd),
        reset: reset.to_vec(),
    };
    let mut hs = Vec::with_capacity(nr * hd);
    let mut h = h0.to_vec();
    let mut gh = vec![0.0f32; rows * g];
    for t in 0..steps {
        for r in 0..rows {
            if reset[t * rows + r] != 0.0 {
                h[r * hd..(r + 1) * hd].iter_mut().for_each(|v| *v = 0.0);
            }
        }
        for row in gh.chunks_mut(g) {
            row.copy_from_slice(bh);
        }
        if rows < FEW_ROWS {
            mm_acc_few_rows(&h, wh, &mut gh, rows, hd, g);
        } else {
            mm_acc(&h, wh, &mut gh, rows, hd, g);
        }
        tape.h_prev.extend_from_slice(&h);
        for r in 0..rows {
            let i = t * rows + r;
            let gxr = &mut gx[i * g..(i + 1) * g];
            let ghr = &gh[r * g..(r + 1) * g];
            gru_gates(gxr, ghr, hd);
            let (rg, zg, ng) = (&gxr[..hd], &gxr[hd..2 * hd], &gxr[2 * hd..]);
            tape.r.extend_from_slice(rg);
            tape.z.extend_from_slice(zg);
            tape.n.extend_from_slice(ng);
            tape.ghn.extend_from_slice(&ghr[2 * hd..]);
            let hr = &mut h[r * hd..(r + 1) * hd];
            for j in 0..hd {
                hr[j] = (1.0 - zg[j]) * ng[j] + zg[j] * hr[j];
            }
            hs.extend_from_slice(hr);
        }
    }
    (hs, tape)
}

/// Back-propagates `dh_out` (`[steps*rows, H]`, dLoss/dh_t of every output) through the
/// sequence. Adds the parameter gradients into `grad` (laid out like `Params::data`)
/// and writes dLoss/dx into `dx` (`[steps*rows, I]`). The initial state is a constant.
pub fn backward(
    p: &Params,
    cell: &GruCell,
    tape: &GruTape,
    dh_out: &[f32],
    grad: &mut [f32],
    dx: &mut [f32],
) {
    backward_on(p, cell, tape, dh_out, grad, dx, 1)
}

/// [`backward`] on up to `threads` threads: the recurrence runs on one (each step needs
/// the previous one), the parameter gradients after it as two fixed independent
/// products side by side, so the result does not depend on `threads`.
pub fn backward_on(
    p: &Params,
    cell: &GruCell,
    tape: &GruTape,
    dh_out: &[f32],
    grad: &mut [f32],
    dx: &mut [f32],
    threads: usize,
) {
    let hd = cell.hidden();
    let g = 3 * hd;
    let (steps, rows) = (tape.steps, tape.rows);
    let nr = steps * rows;
    let wh = p.get(cell.wh);
    // dLoss/d(pre-activations) of every step, for the input (`dgx`) and the hidden
    // (`dgh_all`) projections. Each step writes its whole block before anything reads
    // it, so the buffers start uninitialised instead of being zeroed first.
    let mut dgx: Vec<f32> = Vec::with_capacity(nr * g);
    let mut dgh_all: Vec<f32> = Vec::with_capacity(nr * g);
    let mut dh = vec![0.0f32; rows * hd];
    let mut dh_prev = vec![0.0f32; rows * hd];
    // Few rows: the per-step product by Whᵀ as row-times-matrix with Whᵀ stored once.
    let wh_t = if rows < FEW_ROWS {
        let mut t = vec![0.0f32; hd * g];
        for r in 0..hd {
            for c in 0..g {
                t[c * hd + r] = wh[r * g + c];
            }
        }
        t
    } else {
        Vec::new()
    };
    {
        let dgx_u = &mut dgx.spare_capacity_mut()[..nr * g];
        let dgh_u = &mut dgh_all.spare_capacity_mut()[..nr * g];
        for t in (0..steps).rev() {
            let base = t * rows;
            for r in 0..rows {
                let i = base + r;
                for j in 0..hd {
                    let k = i * hd + j;
                    let dhk = dh[r * hd + j] + dh_out[k];
                    let (rg, zg, n, ghn, hp) =
                        (tape.r[k], tape.z[k], tape.n[k], tape.ghn[k], tape.h_prev[k]);
                    let dn = dhk * (1.0 - zg);
                    let dz = dhk * (hp - n);
                    dh_prev[r * hd + j] = dhk * zg;
                    let dan = dn * (1.0 - n * n);
                    let dr = dan * ghn;
                    let dar = dr * rg * (1.0 - rg);
                    let daz = dz * zg * (1.0 - zg);
                    let o = i * g;
                    dgx_u[o + j].write(dar);
                    dgx_u[o + hd + j].write(daz);
                    dgx_u[o + 2 * hd + j].write(dan);
                    dgh_u[o + j].write(dar);
                    dgh_u[o + hd + j].write(daz);
                    dgh_u[o + 2 * hd + j].write(dan * rg);
                }
            }
            // dh_{t-1} = dh_direct + dgh Whᵀ, zero where the state was reset before step t.
            let block = &dgh_u[base * g..(base + rows) * g];
            // SAFETY: the loop above wrote every element of this step's block
            // (rows x [j, hd + j, 2hd + j] for j < hd covers all of its rows * 3hd).
            let dgh: &[f32] =
                unsafe { std::slice::from_raw_parts(block.as_ptr().cast::<f32>(), block.len()) };
            if rows < FEW_ROWS {
                mm_acc_few_rows(dgh, &wh_t, &mut dh_prev, rows, g, hd);
            } else {
                mm_a_bt_acc(dgh, wh, &mut dh_prev, rows, g, hd);
            }
            for r in 0..rows {
                let keep = tape.reset[base + r] == 0.0;
                for j in 0..hd {
                    dh[r * hd + j] = if keep { dh_prev[r * hd + j] } else { 0.0 };
                }
            }
        }
    }
    // SAFETY: every step 0..steps wrote its whole block (see above), so all nr * g
    // elements of both buffers are initialised.
    unsafe {
        dgx.set_len(nr * g);
        dgh_all.set_len(nr * g);
    }
    parameter_gradients(p, cell, tape, &dgx, &dgh_all, grad, dx, threads);
}

/// Adds the parameter gradients (one pass over all steps) and writes dLoss/dx, as two
/// independent items that run side by side when `threads > 1`: the recurrent weights'
/// product, and the input weights', the biases and dx. Each writes only its own
/// outputs with the same operations either way, so the result does not depend on
/// `threads`.
#[allow(clippy::too_many_arguments)]
fn parameter_gradients(
    p: &Params,
    cell: &GruCell,
    tape: &GruTape,
    dgx: &[f32],
    dgh_all: &[f32],
    grad: &mut [f32],
    dx: &mut [f32],
    threads: usize,
) {
    let (hd, id) = (cell.hidden(), cell.input());
    let g = 3 * hd;
    let nr = tape.steps * tape.rows;
    let slots = [
        cell.wx.range(),
        cell.wh.range(),
        cell.bx.range(),
        cell.bh.range(),
    ];
    let [wx, wh, bx, bh] = disjoint_mut(grad, slots);
    let recurrent = move || mm_at_b_acc(&tape.h_prev, dgh_all, wh, nr, hd, g);
    let input = move || {
        mm_at_b_acc(&tape.x, dgx, wx, nr, id, g);
        for i in 0..nr {
            for c in 0..g {
                bx[c] += dgx[i * g + c];
                bh[c] += dgh_all[i * g + c];
            }
        }
        let wx_t = Mat::transposed(p.get(cell.wx), id, g);
        matmul(dx, Mat::rows(dgx, nr, g), wx_t, false);
    };
    par::join(threads, input, recurrent);
}

/// Mutable views of non-overlapping ranges of `data`, in the order given.
fn disjoint_mut<const N: usize>(data: &mut [f32], ranges: [Range<usize>; N]) -> [&mut [f32]; N] {
    let mut order: Vec<usize> = (0..N).collect();
    order.sort_by_key(|&i| ranges[i].start);
    for w in order.windows(2) {
        assert!(
            ranges[w[0]].end <= ranges[w[1]].start,
            "overlapping parameter slots"
        );
    }
    assert!(ranges
        .iter()
        .all(|r| r.start <= r.end && r.end <= data.len()));
    let base = data.as_mut_ptr();
    // SAFETY: the ranges lie inside `data` and do not overlap (asserted above), so the
    // views alias nothing, and they borrow `data` mutably for their whole lifetime.
    ranges.map(|r| unsafe { std::slice::from_raw_parts_mut(base.add(r.start), r.len()) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::graph::{self, GraphParams};
    use crate::rng::Rng;
    use burn::tensor::Device;

    #[test]
    fn fused_gru_matches_burn_autodiff() {
        let mut rng = Rng::new(9);
        let mut p = Params::new();
        let (id, hd, steps, rows) = (5, 7, 6, 3);
        let cell = GruCell::new(&mut p, "gru", id, hd, &mut rng);
        // Non-zero biases so every term is exercised.
        for v in p.data.iter_mut() {
            *v += 0.05 * rng.normal() as f32;
        }
        let x: Vec<f32> = (0..steps * rows * id)
            .map(|_| rng.normal() as f32)
            .collect();
        let h0: Vec<f32> = (0..rows * hd).map(|_| 0.5 * rng.normal() as f32).collect();
        let mut reset = vec![0.0f32; steps * rows];
        reset[3 * rows + 2] = 1.0;
        let w: Vec<f32> = (0..steps * rows * hd)
            .map(|_| rng.normal() as f32)
            .collect();

        // burn: loss = sum(w * H)
        let device = Device::flex().autodiff();
        let gp = GraphParams::new(&p, &device);
        let xt = graph::constant(&x, steps * rows, id, &device).require_grad();
        let hs_b = gp.gru_sequence(
            &cell,
            xt.clone(),
            &reset,
            graph::constant(&h0, rows, hd, &device),
            steps,
            rows,
        );
        let loss = (hs_b.clone() * graph::constant(&w, steps * rows, hd, &device)).sum();
        let grads = loss.backward();
        let mut g_burn = vec![0.0f32; p.len()];
        gp.add_flat_grad(&grads, &mut g_burn);
        let dx_burn = graph::to_vec(xt.grad(&grads).unwrap());
        let hs_burn = graph::to_vec(hs_b);

        let (hs, tape) = forward(&p, &cell, &x, &reset, &h0, steps, rows);
        let mut g = vec![0.0f32; p.len()];
        let mut dx = vec![0.0f32; x.len()];
        backward(&p, &cell, &tape, &w, &mut g, &mut dx);

        for (a, b) in hs.iter().zip(&hs_burn) {
            assert!((a - b).abs() < 1e-5, "forward {a} vs {b}");
        }
        for (i, (a, b)) in g.iter().zip(&g_burn).enumerate() {
            assert!(
                (a - b).abs() < 1e-4 * (1.0 + b.abs()),
                "param grad {i} ({}): {a} vs {b}",
                p.names.len()
            );
        }
        for (a, b) in dx.iter().zip(&dx_burn) {
            assert!(
                (a - b).abs() < 1e-4 * (1.0 + b.abs()),
                "input grad {a} vs {b}"
            );
        }
    }

    #[test]
    fn fused_gru_gradient_matches_finite_differences() {
        let mut rng = Rng::new(4);
        let mut p = Params::new();
        let (id, hd, steps, rows) = (3, 4, 5, 2);
        let cell = GruCell::new(&mut p, "gru", id, hd, &mut rng);
        let x: Vec<f32> = (0..steps * rows * id)
            .map(|_| rng.normal() as f32)
            .collect();
        let h0 = vec![0.1f32; rows * hd];
        let reset = vec![0.0f32; steps * rows];
        let w: Vec<f32> = (0..steps * rows * hd)
            .map(|_| rng.normal() as f32)
            .collect();
        let loss = |p: &Params| -> f64 {
            let (hs, _) = forward(p, &cell, &x, &reset, &h0, steps, rows);
            hs.iter()
                .zip(&w)
                .map(|(a, b)| (*a as f64) * (*b as f64))
                .sum()
        };
        let (_, tape) = forward(&p, &cell, &x, &reset, &h0, steps, rows);
        let mut g = vec![0.0f32; p.len()];
        let mut dx = vec![0.0f32; x.len()];
        backward(&p, &cell, &tape, &w, &mut g, &mut dx);
        let eps = 1e-2f32;
        for i in (0..p.len()).step_by(7) {
            let mut pp = p.clone();
            pp.data[i] += eps;
            let up = loss(&pp);
            pp.data[i] -= 2.0 * eps;
            let down = loss(&pp);
            let fd = (up - down) / (2.0 * eps as f64);
            assert!(
                (fd - g[i] as f64).abs() < 2e-3 * (1.0 + fd.abs()),
                "param {i}: fd {fd} vs {}",
                g[i]
            );
        }
    }
}
