//! Adam on the host, with global gradient-norm clipping, over a flat parameter vector.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Adam {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub t: u64,
    pub m: Vec<f32>,
    pub v: Vec<f32>,
}

impl Adam {
    pub fn new(n: usize, eps: f64) -> Self {
        Adam {
            beta1: 0.9,
            beta2: 0.999,
            eps,
            t: 0,
            m: vec![0.0; n],
            v: vec![0.0; n],
        }
    }

    /// Scales `grad` in place so its global L2 norm is at most `max_norm`; returns the
    /// norm before clipping.
    pub fn clip_grad_norm(grad: &mut [f32], max_norm: f64) -> f64 {
        let norm = grad
            .iter()
            .map(|&g| (g as f64) * (g as f64))
            .sum::<f64>()
            .sqrt();
        if norm > max_norm && norm.is_finite() {
            let scale = (max_norm / (norm + 1e-6)) as f32;
            grad.iter_mut().for_each(|g| *g *= scale);
        }
        norm
    }

    /// One Adam step (PyTorch's formulation: bias-corrected, eps outside the sqrt).
    pub fn step(&mut self, params: &mut [f32], grad: &[f32], lr: f64) {
        assert_eq!(params.len(), grad.len());
        assert_eq!(params.len(), self.m.len());
        self.t += 1;
        let (b1, b2) = (self.beta1 as f32, self.beta2 as f32);
        let bc1 = 1.0 - self.beta1.powi(self.t as i32);
        let bc2 = 1.0 - self.beta2.powi(self.t as i32);
        let step = (lr / bc1) as f32;
        let bc2_sqrt = bc2.sqrt() as f32;
        let eps = self.eps as f32;
        for i in 0..params.len() {
            let g = grad[i];
            let m = b1 * self.m[i] + (1.0 - b1) * g;
            let v = b2 * self.v[i] + (1.0 - b2) * g * g;
            self.m[i] = m;
            self.v[i] = v;
            params[i] -= step * m / (v.sqrt() / bc2_sqrt + eps);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimises_a_quadratic() {
        let mut x = vec![3.0f32, -2.0];
        let mut opt = Adam::new(2, 1e-8);
        for _ in 0..2000 {
            let g: Vec<f32> = x.iter().map(|v| 2.0 * v).collect();
            opt.step(&mut x, &g, 0.01);
        }
        assert!(x.iter().all(|v| v.abs() < 1e-2), "{x:?}");
    }

    #[test]
    fn first_step_moves_by_lr() {
        // With bias correction the first step is lr * sign(g) (up to eps).
        let mut x = vec![1.0f32];
        let mut opt = Adam::new(1, 1e-8);
        opt.step(&mut x, &[0.3], 0.1);
        assert!((x[0] - 0.9).abs() < 1e-6);
    }

    #[test]
    fn clipping_bounds_the_norm() {
        let mut g = vec![3.0f32, 4.0];
        let n = Adam::clip_grad_norm(&mut g, 1.0);
        assert!((n - 5.0).abs() < 1e-9);
        let after = (g[0] * g[0] + g[1] * g[1]).sqrt();
        assert!((after - 1.0).abs() < 1e-4);
    }
}
