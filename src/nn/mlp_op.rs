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
    let mut d = dy.to_vec();
    let mut y: &[f32] = &tape.output;
    for (i, l) in layers.iter().enumerate().rev() {
        let act = if i + 1 == layers.len() {
            tape.out
        } else {
            tape.hidden
        };
        through_act(act, y, &mut d);
        let (n_in, n_out) = (l.fan_in(), l.fan_out());
        let x = &tape.inputs[i];
        mm_at_b_acc(x, &d, &mut grad[l.w.range()], rows, n_in, n_out);
        let gb = &mut grad[l.b.range()];
        for row in d.chunks_exact(n_out) {
            gb.iter_mut().zip(row).for_each(|(g, v)| *g += v);
        }
        if i == 0 {
            if let Some(dx) = dx {
                matmul(
                    dx,
                    Mat::rows(&d, rows, n_out),
                    Mat::transposed(p.get(l.w), n_in, n_out),
                    false,
                );
            }
            break;
        }
        let mut dprev = vec![0.0f32; rows * n_in];
        mm_a_bt_acc(&d, p.get(l.w), &mut dprev, rows, n_out, n_in);
        d = dprev;
        y = x;
    }
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
