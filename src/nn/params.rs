//! Flat parameter storage with named, shaped slots.

use crate::rng::Rng;
use serde::{Deserialize, Serialize};

/// Where one parameter tensor lives inside [`Params::data`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Slot {
    pub offset: usize,
    pub rows: usize,
    pub cols: usize,
}

impl Slot {
    pub fn len(&self) -> usize {
        self.rows * self.cols
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn range(&self) -> std::ops::Range<usize> {
        self.offset..self.offset + self.len()
    }
}

/// All trainable parameters of a model, one contiguous vector. Matrices are stored
/// row-major as `[in, out]` so that `y = x W + b`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Params {
    pub names: Vec<String>,
    pub slots: Vec<Slot>,
    pub data: Vec<f32>,
}

impl Params {
    pub fn new() -> Self {
        Self::default()
    }

    fn push(&mut self, name: &str, rows: usize, cols: usize, values: Vec<f32>) -> Slot {
        let slot = Slot {
            offset: self.data.len(),
            rows,
            cols,
        };
        self.data.extend(values);
        self.names.push(name.to_string());
        self.slots.push(slot);
        slot
    }

    /// A weight matrix `[fan_in, fan_out]` with orthogonal-like scaled init
    /// (uniform with the variance of a normal of std `gain / sqrt(fan_in)`).
    pub fn weight(
        &mut self,
        name: &str,
        fan_in: usize,
        fan_out: usize,
        gain: f32,
        rng: &mut Rng,
    ) -> Slot {
        let std = gain / (fan_in as f32).sqrt();
        let v = (0..fan_in * fan_out)
            .map(|_| rng.normal() as f32 * std)
            .collect();
        self.push(name, fan_in, fan_out, v)
    }

    /// A `[rows, cols]` tensor with the given initial values.
    pub fn tensor(&mut self, name: &str, rows: usize, cols: usize, values: Vec<f32>) -> Slot {
        assert_eq!(values.len(), rows * cols, "initial values of {name}");
        self.push(name, rows, cols, values)
    }

    /// A bias row `[1, n]` initialised to `value`.
    pub fn bias(&mut self, name: &str, n: usize, value: f32) -> Slot {
        self.push(name, 1, n, vec![value; n])
    }

    pub fn get(&self, slot: Slot) -> &[f32] {
        &self.data[slot.range()]
    }

    pub fn len(&self) -> usize {
        self.data.len()
    }
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

/// A dense layer: weight and bias slots.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dense {
    pub w: Slot,
    pub b: Slot,
}

impl Dense {
    pub fn new(
        p: &mut Params,
        name: &str,
        fan_in: usize,
        fan_out: usize,
        gain: f32,
        rng: &mut Rng,
    ) -> Self {
        Dense {
            w: p.weight(&format!("{name}.w"), fan_in, fan_out, gain, rng),
            b: p.bias(&format!("{name}.b"), fan_out, 0.0),
        }
    }
    pub fn fan_in(&self) -> usize {
        self.w.rows
    }
    pub fn fan_out(&self) -> usize {
        self.w.cols
    }
}

/// A GRU cell in PyTorch's convention (reset gate applied after the hidden matmul),
/// gates ordered (r, z, n) along the columns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GruCell {
    /// `[input, 3H]`
    pub wx: Slot,
    /// `[H, 3H]`
    pub wh: Slot,
    pub bx: Slot,
    pub bh: Slot,
}

impl GruCell {
    pub fn new(p: &mut Params, name: &str, input: usize, hidden: usize, rng: &mut Rng) -> Self {
        GruCell {
            wx: p.weight(&format!("{name}.wx"), input, 3 * hidden, 1.0, rng),
            wh: p.weight(&format!("{name}.wh"), hidden, 3 * hidden, 1.0, rng),
            bx: p.bias(&format!("{name}.bx"), 3 * hidden, 0.0),
            bh: p.bias(&format!("{name}.bh"), 3 * hidden, 0.0),
        }
    }
    pub fn hidden(&self) -> usize {
        self.wh.rows
    }
    pub fn input(&self) -> usize {
        self.wx.rows
    }
}
