//! The same functions as [`super::host`], built as burn autodiff graphs for training.
//!
//! [`GraphParams`] lifts a [`Params`] vector into one leaf tensor per slot; after
//! `backward`, [`GraphParams::flat_grad`] writes the gradients back into a flat vector
//! laid out exactly like `Params::data`, for the host optimiser.

use super::host::Act;
use super::params::{Dense, GruCell, Params, Slot};
use burn::tensor::{activation, Device, Gradients, Tensor, TensorData};

/// Leaf tensors for every slot of a [`Params`].
pub struct GraphParams {
    offsets: Vec<usize>,
    slots: Vec<Slot>,
    tensors: Vec<Tensor<2>>,
}

impl GraphParams {
    /// Leaves that require gradients, on `device` (an autodiff device).
    pub fn new(p: &Params, device: &Device) -> Self {
        let tensors = p
            .slots
            .iter()
            .map(|s| {
                Tensor::<2>::from_data(
                    TensorData::new(p.get(*s).to_vec(), [s.rows, s.cols]),
                    device,
                )
                .require_grad()
            })
            .collect();
        GraphParams {
            offsets: p.slots.iter().map(|s| s.offset).collect(),
            slots: p.slots.clone(),
            tensors,
        }
    }

    pub fn get(&self, slot: Slot) -> Tensor<2> {
        let i = self
            .offsets
            .binary_search(&slot.offset)
            .expect("slot belongs to these params");
        self.tensors[i].clone()
    }

    /// Adds the gradients of all leaves into `out` (same layout as `Params::data`);
    /// leaves the loss does not depend on contribute zero.
    pub fn add_flat_grad(&self, grads: &Gradients, out: &mut [f32]) {
        for (t, s) in self.tensors.iter().zip(&self.slots) {
            if let Some(g) = t.grad(grads) {
                let v = g.into_data().try_into_vec::<f32>().expect("f32 gradient");
                for (o, gi) in out[s.range()].iter_mut().zip(v) {
                    *o += gi;
                }
            }
        }
    }

    pub fn dense(&self, layer: &Dense, x: Tensor<2>, act: Act) -> Tensor<2> {
        let y = x.matmul(self.get(layer.w)) + self.get(layer.b);
        apply(y, act)
    }

    /// Runs a GRU over `steps` time steps of `rows` sequences. `x` is time-major
    /// `[steps * rows, input]`; `reset` (`steps * rows`, 1.0 = start of a trial) zeroes
    /// the hidden state before that step's input is consumed; `h0` is `[rows, H]`.
    /// Returns the hidden state after every step, time-major `[steps * rows, H]`.
    pub fn gru_sequence(
        &self,
        cell: &GruCell,
        x: Tensor<2>,
        reset: &[f32],
        h0: Tensor<2>,
        steps: usize,
        rows: usize,
    ) -> Tensor<2> {
        let hd = cell.hidden();
        let device = x.device();
        let gx_all = x.matmul(self.get(cell.wx)) + self.get(cell.bx);
        let wh = self.get(cell.wh);
        let bh = self.get(cell.bh);
        let mut h = h0;
        let mut outs = Vec::with_capacity(steps);
        for t in 0..steps {
            let rs = &reset[t * rows..(t + 1) * rows];
            if rs.iter().any(|&v| v != 0.0) {
                let keep: Vec<f32> = rs.iter().map(|&v| 1.0 - v).collect();
                let keep = Tensor::<2>::from_data(TensorData::new(keep, [rows, 1]), &device);
                h = h * keep;
            }
            let gx = gx_all.clone().slice([t * rows..(t + 1) * rows, 0..3 * hd]);
            let gh = h.clone().matmul(wh.clone()) + bh.clone();
            let r = activation::sigmoid(
                gx.clone().slice([0..rows, 0..hd]) + gh.clone().slice([0..rows, 0..hd]),
            );
            let z = activation::sigmoid(
                gx.clone().slice([0..rows, hd..2 * hd]) + gh.clone().slice([0..rows, hd..2 * hd]),
            );
            let n = (gx.slice([0..rows, 2 * hd..3 * hd]) + r * gh.slice([0..rows, 2 * hd..3 * hd]))
                .tanh();
            h = n.clone() + z * (h - n);
            outs.push(h.clone());
        }
        Tensor::cat(outs, 0)
    }
}

pub fn apply(y: Tensor<2>, act: Act) -> Tensor<2> {
    match act {
        Act::Tanh => y.tanh(),
        Act::Relu => activation::relu(y),
        Act::None => y,
    }
}

/// A host slice as a constant `[rows, cols]` tensor.
pub fn constant(v: &[f32], rows: usize, cols: usize, device: &Device) -> Tensor<2> {
    Tensor::<2>::from_data(TensorData::new(v.to_vec(), [rows, cols]), device)
}

/// A tensor's values as a host vector.
pub fn to_vec(t: Tensor<2>) -> Vec<f32> {
    t.into_data().try_into_vec::<f32>().expect("f32 tensor")
}
