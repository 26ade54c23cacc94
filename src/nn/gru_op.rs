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
use super::rows32;
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

impl GruTape {
    pub fn steps(&self) -> usize {
        self.steps
    }
    pub fn rows(&self) -> usize {
        self.rows
    }
    /// The hidden state entering step `t` (`0..=steps`) of every row, `[rows, H]`: the
    /// kept state (after trial-start resets) inside the pass, and after its last step
    /// the state that step produced (the forward pass's own arithmetic, bit for bit).
    pub fn state_entering(&self, t: usize) -> Vec<f32> {
        let width = self.rows * (self.h_prev.len() / (self.steps * self.rows));
        if t < self.steps {
            return self.h_prev[t * width..(t + 1) * width].to_vec();
        }
        assert_eq!(t, self.steps, "a step of the pass or the one after it");
        let last = (t - 1) * width..t * width;
        let (z, n, h) = (
            &self.z[last.clone()],
            &self.n[last.clone()],
            &self.h_prev[last],
        );
        (0..width)
            .map(|j| (1.0 - z[j]) * n[j] + z[j] * h[j])
            .collect()
    }
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
    let mut pass = Forward::new(p, cell, x, reset, h0, steps, rows);
    let mut hs = vec![0.0f32; steps * rows * cell.hidden()];
    pass.run(&mut hs);
    (hs, pass.finish())
}

/// A forward pass that advances a block of steps at a time ([`Forward::run`]), so that
/// the hidden states of finished blocks can be used while the next block runs. Blocks
/// change nothing: every step is computed as in one pass.
pub struct Forward<'a> {
    wh: &'a [f32],
    bh: &'a [f32],
    hd: usize,
    /// The input projection of every step, turned into gates step by step.
    gx: Vec<f32>,
    h: Vec<f32>,
    gh: Vec<f32>,
    tape: GruTape,
    /// Steps done.
    t: usize,
}

impl<'a> Forward<'a> {
    /// Starts a pass: the input projection of all steps at once.
    pub fn new(
        p: &'a Params,
        cell: &GruCell,
        x: &[f32],
        reset: &[f32],
        h0: &[f32],
        steps: usize,
        rows: usize,
    ) -> Self {
        let (hd, id) = (cell.hidden(), cell.input());
        let g = 3 * hd;
        let nr = steps * rows;
        // Buffers are built by appending (every element is written once: no zeroing pass
        // over memory that is overwritten anyway).
        let bx = p.get(cell.bx);
        let mut gx = Vec::with_capacity(nr * g);
        for _ in 0..nr {
            gx.extend_from_slice(bx);
        }
        mm_acc(x, p.get(cell.wx), &mut gx, nr, id, g);
        Forward {
            wh: p.get(cell.wh),
            bh: p.get(cell.bh),
            hd,
            gx,
            h: h0.to_vec(),
            gh: vec![0.0f32; rows * g],
            tape: GruTape {
                steps,
                rows,
                x: x.to_vec(),
                h_prev: Vec::with_capacity(nr * hd),
                r: Vec::with_capacity(nr * hd),
                z: Vec::with_capacity(nr * hd),
                n: Vec::with_capacity(nr * hd),
                ghn: Vec::with_capacity(nr * hd),
                reset: reset.to_vec(),
            },
            t: 0,
        }
    }

    /// Runs the next `hs.len() / (rows * H)` steps, writing their hidden states into
    /// `hs` (`[steps*rows, H]`).
    pub fn run(&mut self, hs: &mut [f32]) {
        let (hd, rows) = (self.hd, self.tape.rows);
        let g = 3 * hd;
        let steps = hs.len() / (rows * hd);
        assert!(
            steps * rows * hd == hs.len() && self.t + steps <= self.tape.steps,
            "a block of whole steps inside the sequence"
        );
        let (h, gh, tape) = (&mut self.h, &mut self.gh, &mut self.tape);
        for (k, t) in (self.t..self.t + steps).enumerate() {
            for r in 0..rows {
                if tape.reset[t * rows + r] != 0.0 {
                    h[r * hd..(r + 1) * hd].iter_mut().for_each(|v| *v = 0.0);
                }
            }
            for row in gh.chunks_mut(g) {
                row.copy_from_slice(self.bh);
            }
            if rows < FEW_ROWS {
                mm_acc_few_rows(h, self.wh, gh, rows, hd, g);
            } else {
                mm_acc(h, self.wh, gh, rows, hd, g);
            }
            tape.h_prev.extend_from_slice(h);
            for r in 0..rows {
                let i = t * rows + r;
                let gxr = &mut self.gx[i * g..(i + 1) * g];
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
                let o = (k * rows + r) * hd;
                hs[o..o + hd].copy_from_slice(hr);
            }
        }
        self.t += steps;
    }

    /// The tape of the whole pass (every step must have run).
    pub fn finish(self) -> GruTape {
        assert_eq!(self.t, self.tape.steps, "every step ran");
        self.tape
    }
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
    let mut pass = Backward::new(p, cell, tape);
    pass.run(dh_out);
    let sums = pass.finish();
    let slots = [
        cell.wx.range(),
        cell.wh.range(),
        cell.bx.range(),
        cell.bh.range(),
    ];
    let [wx, wh, bx, bh] = disjoint_mut(grad, slots);
    let sums = &sums;
    let recurrent = move || sums.recurrent_weights(wh);
    let input = move || sums.input_side(p, cell, wx, bx, bh, dx);
    crate::par::join(threads, input, recurrent);
}

/// The recurrence of a backward pass, a block of steps at a time from the end
/// ([`Backward::run`]), so that the gradient w.r.t. the hidden states of earlier blocks
/// can still be in the making. Blocks change nothing: every step is computed as in one
/// pass.
pub struct Backward<'a> {
    tape: &'a GruTape,
    wh: &'a [f32],
    /// Few rows: the per-step product by Whᵀ as row-times-matrix with Whᵀ stored once.
    wh_t: Vec<f32>,
    hd: usize,
    /// dLoss/d(pre-activations) of every step, for the input (`dgx`) and the hidden
    /// (`dgh`) projections. Each step writes its whole block before anything reads it,
    /// so the buffers start uninitialised instead of being zeroed first.
    dgx: Vec<f32>,
    dgh: Vec<f32>,
    dh: Vec<f32>,
    dh_prev: Vec<f32>,
    /// Steps not yet back-propagated (`0..t`).
    t: usize,
}

impl<'a> Backward<'a> {
    pub fn new(p: &'a Params, cell: &GruCell, tape: &'a GruTape) -> Self {
        let hd = cell.hidden();
        let g = 3 * hd;
        let (steps, rows) = (tape.steps, tape.rows);
        let nr = steps * rows;
        let wh = p.get(cell.wh);
        // Row-major `W_h'` for the per-step products that do not go through the
        // library's packing (which reads a transposed view as it is).
        let wh_t = if rows < FEW_ROWS || (rows <= rows32::MAX_ROWS && rows32::available()) {
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
        Backward {
            tape,
            wh,
            wh_t,
            hd,
            dgx: Vec::with_capacity(nr * g),
            dgh: Vec::with_capacity(nr * g),
            dh: vec![0.0f32; rows * hd],
            dh_prev: vec![0.0f32; rows * hd],
            t: steps,
        }
    }

    /// Back-propagates through the last `dh_out.len() / (rows * H)` steps not yet done,
    /// `dh_out` holding those steps' dLoss/dh_t (`[steps*rows, H]`).
    pub fn run(&mut self, dh_out: &[f32]) {
        let (hd, rows) = (self.hd, self.tape.rows);
        let g = 3 * hd;
        let steps = dh_out.len() / (rows * hd);
        assert!(
            steps * rows * hd == dh_out.len() && steps <= self.t,
            "a block of whole steps inside the sequence"
        );
        let first = self.t - steps;
        let nr = self.tape.steps * rows;
        let tape = self.tape;
        let (dh, dh_prev) = (&mut self.dh, &mut self.dh_prev);
        let dgx_u = &mut self.dgx.spare_capacity_mut()[..nr * g];
        let dgh_u = &mut self.dgh.spare_capacity_mut()[..nr * g];
        for t in (first..self.t).rev() {
            let base = t * rows;
            for r in 0..rows {
                let i = base + r;
                let local = (i - first * rows) * hd;
                for j in 0..hd {
                    let k = i * hd + j;
                    let dhk = dh[r * hd + j] + dh_out[local + j];
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
                mm_acc_few_rows(dgh, &self.wh_t, dh_prev, rows, g, hd);
            } else if !self.wh_t.is_empty() {
                // The library's bits either way (`rows32`), without packing `W_h'`.
                mm_acc(dgh, &self.wh_t, dh_prev, rows, g, hd);
            } else {
                mm_a_bt_acc(dgh, self.wh, dh_prev, rows, g, hd);
            }
            for r in 0..rows {
                let keep = tape.reset[base + r] == 0.0;
                for j in 0..hd {
                    dh[r * hd + j] = if keep { dh_prev[r * hd + j] } else { 0.0 };
                }
            }
        }
        self.t = first;
    }

    /// The per-step sums the parameter gradients need (every step must have run).
    pub fn finish(mut self) -> StepGradients<'a> {
        assert_eq!(self.t, 0, "every step ran");
        let n = self.tape.steps * self.tape.rows * 3 * self.hd;
        // SAFETY: every step 0..steps wrote its whole block of both buffers (see
        // `run`), so all n elements are initialised.
        unsafe {
            self.dgx.set_len(n);
            self.dgh.set_len(n);
        }
        StepGradients {
            tape: self.tape,
            dgx: self.dgx,
            dgh: self.dgh,
        }
    }
}

/// dLoss/d(pre-activations) of every step of a finished [`Backward`] pass: the
/// parameter gradients and dLoss/dx follow as two independent items
/// ([`Self::recurrent_weights`], [`Self::input_side`]) that write disjoint outputs,
/// so they may run side by side.
pub struct StepGradients<'a> {
    tape: &'a GruTape,
    dgx: Vec<f32>,
    dgh: Vec<f32>,
}

impl StepGradients<'_> {
    /// Adds `H_prevᵀ dG_h` into `wh` (the gradient of the recurrent weights).
    pub fn recurrent_weights(&self, wh: &mut [f32]) {
        let (steps, rows) = (self.tape.steps, self.tape.rows);
        let hd = self.tape.h_prev.len() / (steps * rows).max(1);
        mm_at_b_acc(&self.tape.h_prev, &self.dgh, wh, steps * rows, hd, 3 * hd);
    }

    /// Adds `Xᵀ dG_x` into `wx` and the biases' gradients into `bx` and `bh`; writes
    /// dLoss/dx into `dx`.
    pub fn input_side(
        &self,
        p: &Params,
        cell: &GruCell,
        wx: &mut [f32],
        bx: &mut [f32],
        bh: &mut [f32],
        dx: &mut [f32],
    ) {
        let (hd, id) = (cell.hidden(), cell.input());
        let g = 3 * hd;
        let nr = self.tape.steps * self.tape.rows;
        let (dgx, dgh) = (&self.dgx, &self.dgh);
        mm_at_b_acc(&self.tape.x, dgx, wx, nr, id, g);
        for i in 0..nr {
            for c in 0..g {
                bx[c] += dgx[i * g + c];
                bh[c] += dgh[i * g + c];
            }
        }
        let wx_t = Mat::transposed(p.get(cell.wx), id, g);
        matmul(dx, Mat::rows(dgx, nr, g), wx_t, false);
    }
}

/// Mutable views of non-overlapping ranges of `data`, in the order given.
pub(crate) fn disjoint_mut<const N: usize>(
    data: &mut [f32],
    ranges: [Range<usize>; N],
) -> [&mut [f32]; N] {
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
