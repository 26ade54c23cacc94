//! A stack of dense layers (an MLP or a single embedding layer) for training on the
//! host: forward over a whole minibatch with a tape, and the exact backward, every
//! product through [`super::gemm`].
//!
//! Why: in burn's CPU back-end each small layer is several graph nodes whose
//! bookkeeping costs more than the arithmetic at the sizes of meta-RL policies; this
//! op is the dense counterpart of [`super::gru_op`]. Tests check it against burn's
//! autodiff ([`super::graph::GraphParams::dense`]).
//!
//! ```
//! use bamdp::nn::host::Act;
//! use bamdp::nn::params::{Dense, Params};
//! use bamdp::nn::mlp_op;
//! use bamdp::rng::Rng;
//! let mut p = Params::new();
//! let mut rng = Rng::new(1);
//! let layers = [Dense::new(&mut p, "l0", 3, 4, 1.0, &mut rng), Dense::new(&mut p, "l1", 4, 2, 1.0, &mut rng)];
//! let x = [0.5f32; 2 * 3];
//! let (y, tape) = mlp_op::forward(&p, &layers, Act::Tanh, Act::None, &x, 2);
//! let mut grad = vec![0.0; p.len()];
//! let mut dx = vec![0.0; x.len()];
//! mlp_op::backward(&p, &layers, &tape, &[1.0; 4], &mut grad, Some(&mut dx));
//! assert_eq!(y.len(), 4);
//! ```

use super::gemm::{matmul, mm_a_bt_acc, mm_at_b_acc, Mat};
use super::host::Act;
use super::params::{Dense, Params};
use std::ops::Range;

/// What [`backward`] needs: every layer's input and activated output.
pub struct MlpTape {
    rows: usize,
    hidden: Act,
    out: Act,
    /// `inputs[l]`: the input of layer `l`, `[rows, fan_in]`.
    inputs: Vec<Vec<f32>>,
    /// The last layer's activated output, `[rows, fan_out]`.
    output: Vec<f32>,
}

/// `act(x W + b)` for every row, through GEMM.
pub fn dense(p: &Params, layer: &Dense, x: &[f32], rows: usize, act: Act) -> Vec<f32> {
    let (n_in, n_out) = (layer.fan_in(), layer.fan_out());
    let mut y = Vec::with_capacity(rows * n_out);
    for _ in 0..rows {
        y.extend_from_slice(p.get(layer.b));
    }
    matmul(
        &mut y,
        Mat::rows(x, rows, n_in),
        Mat::rows(p.get(layer.w), n_in, n_out),
        true,
    );
    act.apply_slice(&mut y);
    y
}

/// Runs `layers` on `x` (`[rows, fan_in]`): `hidden` after every layer but the last,
/// `out` after the last. Returns the output and the tape.
pub fn forward(
    p: &Params,
    layers: &[Dense],
    hidden: Act,
    out: Act,
    x: &[f32],
    rows: usize,
) -> (Vec<f32>, MlpTape) {
    let mut inputs = Vec::with_capacity(layers.len());
    let mut cur = x.to_vec();
    for (i, l) in layers.iter().enumerate() {
        let act = if i + 1 == layers.len() { out } else { hidden };
        let y = dense(p, l, &cur, rows, act);
        inputs.push(std::mem::replace(&mut cur, y));
    }
    let tape = MlpTape {
        rows,
        hidden,
        out,
        inputs,
        output: cur.clone(),
    };
    (cur, tape)
}

impl MlpTape {
    /// A tape of `rows` rows of `layers`, filled block by block with [`forward_rows`]
    /// (on several threads, each block by one).
    pub fn zeroed(layers: &[Dense], hidden: Act, out: Act, rows: usize) -> Self {
        let (last, _) = layers.split_last().expect("an output layer");
        MlpTape {
            rows,
            hidden,
            out,
            inputs: layers
                .iter()
                .map(|l| vec![0.0; rows * l.fan_in()])
                .collect(),
            output: vec![0.0; rows * last.fan_out()],
        }
    }

    /// Width of the first layer's input.
    pub fn input_width(&self) -> usize {
        self.inputs[0].len() / self.rows.max(1)
    }

    /// The last layer's activated output, `[rows, fan_out]`.
    pub fn output(&self) -> &[f32] {
        &self.output
    }

    /// The rows `ranges` (disjoint, in order) of every buffer of the tape: one block
    /// per range, each filled by one call of [`forward_rows`].
    pub fn blocks_mut(&mut self, ranges: &[Range<usize>]) -> Vec<RowBlock<'_>> {
        let rows = self.rows;
        let mut per_buffer: Vec<Vec<&mut [f32]>> = self
            .inputs
            .iter_mut()
            .chain(std::iter::once(&mut self.output))
            .map(|b| {
                let width = b.len() / rows.max(1);
                split_rows(b, width, ranges)
            })
            .collect();
        let mut blocks: Vec<RowBlock<'_>> = ranges
            .iter()
            .map(|r| RowBlock {
                rows: r.len(),
                bufs: Vec::new(),
            })
            .collect();
        for buffer in per_buffer.iter_mut() {
            for (k, v) in buffer.drain(..).enumerate() {
                blocks[k].bufs.push(v);
            }
        }
        blocks
    }
}

/// Rows of every buffer of an [`MlpTape`]: `bufs[0]` the input, `bufs[l + 1]` layer
/// `l`'s activated output.
pub struct RowBlock<'a> {
    rows: usize,
    bufs: Vec<&'a mut [f32]>,
}

/// Cuts `buf` (`[rows, width]`) into the rows of each range (disjoint, in order).
pub fn split_rows<'a>(
    mut buf: &'a mut [f32],
    width: usize,
    ranges: &[Range<usize>],
) -> Vec<&'a mut [f32]> {
    let mut at = 0;
    ranges
        .iter()
        .map(|r| {
            assert!(r.start >= at, "row ranges must be disjoint and in order");
            let rest = std::mem::take(&mut buf);
            let (_, rest) = rest.split_at_mut((r.start - at) * width);
            let (block, rest) = rest.split_at_mut(r.len() * width);
            buf = rest;
            at = r.end;
            block
        })
        .collect()
}

/// [`forward`] of one block of rows into its part of a tape (`x`: the block's inputs).
/// Every row is computed exactly as [`forward`] computes it (the products are
/// row-stable, [`super::gemm`]), whatever the blocks.
pub fn forward_rows(
    p: &Params,
    layers: &[Dense],
    hidden: Act,
    out: Act,
    x: &[f32],
    block: &mut RowBlock<'_>,
) {
    let rows = block.rows;
    block.bufs[0].copy_from_slice(x);
    for (i, l) in layers.iter().enumerate() {
        let act = if i + 1 == layers.len() { out } else { hidden };
        let (n_in, n_out) = (l.fan_in(), l.fan_out());
        let (done, rest) = block.bufs.split_at_mut(i + 1);
        let y = &mut *rest[0];
        for row in y.chunks_exact_mut(n_out) {
            row.copy_from_slice(p.get(l.b));
        }
        matmul(
            y,
            Mat::rows(&done[i][..], rows, n_in),
            Mat::rows(p.get(l.w), n_in, n_out),
            true,
        );
        act.apply_slice(y);
    }
}

/// `dLoss/dpre` from `dLoss/dy` for `y = act(pre)`, in place.
fn through_act(act: Act, y: &[f32], d: &mut [f32]) {
    match act {
        Act::Tanh => d.iter_mut().zip(y).for_each(|(g, &y)| *g *= 1.0 - y * y),
        Act::Relu => d.iter_mut().zip(y).for_each(|(g, &y)| {
            if y <= 0.0 {
                *g = 0.0
            }
        }),
        Act::None => {}
    }
}

/// dLoss/d(pre-activation) of every layer, `[rows, fan_out]` each: what the weight
/// gradients ([`backward_weights`]) need from the row-wise backward ([`backward_rows`]).
pub struct Deltas {
    rows: usize,
    d: Vec<Vec<f32>>,
}

impl Deltas {
    pub fn zeroed(layers: &[Dense], rows: usize) -> Self {
        Deltas {
            rows,
            d: layers
                .iter()
                .map(|l| vec![0.0; rows * l.fan_out()])
                .collect(),
        }
    }

    /// The rows `ranges` (disjoint, in order) of every layer's deltas, one list of
    /// views (by layer) per range.
    pub fn blocks_mut(&mut self, ranges: &[Range<usize>]) -> Vec<Vec<&mut [f32]>> {
        let rows = self.rows;
        let mut per_layer: Vec<Vec<&mut [f32]>> = self
            .d
            .iter_mut()
            .map(|b| {
                let width = b.len() / rows.max(1);
                split_rows(b, width, ranges)
            })
            .collect();
        let mut out: Vec<Vec<&mut [f32]>> = (0..ranges.len()).map(|_| Vec::new()).collect();
        for layer in per_layer.iter_mut() {
            for (k, v) in layer.drain(..).enumerate() {
                out[k].push(v);
            }
        }
        out
    }
}

/// The row-wise half of [`backward`] for the rows `range` of `tape`: from `dy` (those
/// rows of dLoss/dy of the last layer) writes every layer's deltas of those rows into
/// `d` (by layer, views of a [`Deltas`]) and, if given, dLoss/dx of those rows into
/// `dx`. Rows are independent here, so blocks may run on different threads.
pub fn backward_rows(
    p: &Params,
    layers: &[Dense],
    tape: &MlpTape,
    range: Range<usize>,
    dy: &[f32],
    d: &mut [&mut [f32]],
    dx: Option<&mut [f32]>,
) {
    let rows = range.len();
    let last = layers.len() - 1;
    let n_last = layers[last].fan_out();
    d[last].copy_from_slice(dy);
    let y = &tape.output[range.start * n_last..range.end * n_last];
    through_act(tape.out, y, d[last]);
    for i in (1..layers.len()).rev() {
        let l = &layers[i];
        let (n_in, n_out) = (l.fan_in(), l.fan_out());
        let (below, above) = d.split_at_mut(i);
        let dprev = &mut *below[i - 1];
        dprev.fill(0.0);
        mm_a_bt_acc(&above[0][..], p.get(l.w), dprev, rows, n_out, n_in);
        let y = &tape.inputs[i][range.start * n_in..range.end * n_in];
        through_act(tape.hidden, y, dprev);
    }
    if let Some(dx) = dx {
        let l = &layers[0];
        let (n_in, n_out) = (l.fan_in(), l.fan_out());
        matmul(
            dx,
            Mat::rows(&d[0][..], rows, n_out),
            Mat::transposed(p.get(l.w), n_in, n_out),
            false,
        );
    }
}

/// The weight half of [`backward`]: adds every layer's weight and bias gradient, from
/// all rows' deltas, into `grad`, which holds the parameters `base..base + grad.len()`
/// (laid out like `Params::data`).
pub fn backward_weights(
    layers: &[Dense],
    tape: &MlpTape,
    deltas: &Deltas,
    grad: &mut [f32],
    base: usize,
) {
    let rows = tape.rows;
    for (i, l) in layers.iter().enumerate().rev() {
        let (n_in, n_out) = (l.fan_in(), l.fan_out());
        let d = &deltas.d[i];
        let w = l.w.range();
        mm_at_b_acc(
            &tape.inputs[i],
            d,
            &mut grad[w.start - base..w.end - base],
            rows,
            n_in,
            n_out,
        );
        let b = l.b.range();
        let gb = &mut grad[b.start - base..b.end - base];
        for row in d.chunks_exact(n_out) {
            gb.iter_mut().zip(row).for_each(|(g, v)| *g += v);
        }
    }
}

/// Back-propagates `dy` (`[rows, fan_out]` of the last layer) through the stack: adds
/// the parameter gradients into `grad` (laid out like `Params::data`) and, if given,
/// writes dLoss/dx into `dx`.
pub fn backward(
    p: &Params,
    layers: &[Dense],
    tape: &MlpTape,
    dy: &[f32],
    grad: &mut [f32],
    dx: Option<&mut [f32]>,
) {
    let rows = tape.rows;
    let mut deltas = Deltas::zeroed(layers, rows);
    {
        let mut d: Vec<&mut [f32]> = deltas.d.iter_mut().map(|v| &mut v[..]).collect();
        backward_rows(p, layers, tape, 0..rows, dy, &mut d, dx);
    }
    backward_weights(layers, tape, &deltas, grad, 0);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::graph::{self, GraphParams};
    use crate::rng::Rng;
    use burn::tensor::Device;

    #[test]
    fn mlp_op_matches_burn_autodiff() {
        for (hidden, out) in [(Act::Tanh, Act::None), (Act::Relu, Act::Relu)] {
            let mut rng = Rng::new(2);
            let mut p = Params::new();
            let layers = [
                Dense::new(&mut p, "a", 5, 7, 1.0, &mut rng),
                Dense::new(&mut p, "b", 7, 6, 1.0, &mut rng),
                Dense::new(&mut p, "c", 6, 3, 1.0, &mut rng),
            ];
            for v in p.data.iter_mut() {
                *v += 0.05 * rng.normal() as f32;
            }
            let rows = 9;
            let x: Vec<f32> = (0..rows * 5).map(|_| rng.normal() as f32).collect();
            let w: Vec<f32> = (0..rows * 3).map(|_| rng.normal() as f32).collect();

            let device = Device::flex().autodiff();
            let gp = GraphParams::new(&p, &device);
            let xt = graph::constant(&x, rows, 5, &device).require_grad();
            let mut h = xt.clone();
            for (i, l) in layers.iter().enumerate() {
                h = gp.dense(l, h, if i == 2 { out } else { hidden });
            }
            let loss = (h.clone() * graph::constant(&w, rows, 3, &device)).sum();
            let grads = loss.backward();
            let mut g_burn = vec![0.0f32; p.len()];
            gp.add_flat_grad(&grads, &mut g_burn);
            let dx_burn = graph::to_vec(xt.grad(&grads).unwrap());
            let y_burn = graph::to_vec(h);

            let (y, tape) = forward(&p, &layers, hidden, out, &x, rows);
            let mut g = vec![0.0f32; p.len()];
            let mut dx = vec![0.0f32; x.len()];
            backward(&p, &layers, &tape, &w, &mut g, Some(&mut dx));
            for (a, b) in y.iter().zip(&y_burn) {
                assert!((a - b).abs() < 1e-5, "forward {a} vs {b}");
            }
            for (a, b) in g.iter().zip(&g_burn).chain(dx.iter().zip(&dx_burn)) {
                assert!((a - b).abs() < 1e-4 * (1.0 + b.abs()), "grad {a} vs {b}");
            }
        }
    }
}
