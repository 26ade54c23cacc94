//! MAML-TRPO (Finn et al. 2017, Algorithm 3 with TRPO as the meta-optimiser), over
//! samples already collected: the inner step, the meta-objective with its exact
//! second-order gradient (or the first-order approximation), the Fisher-vector
//! product through the inner step, and the TRPO outer step.
//!
//! For task `i` with adaptation batches `D_i^0 .. D_i^{K-1}` and post-adaptation batch
//! `D_i'`:
//!
//! - inner step: `theta_{k+1} = theta_k + alpha grad L_in(theta_k; D_i^k)` with the
//!   vanilla policy-gradient surrogate `L_in(theta; D) = (1/|D|) sum_t A_t log pi_theta(a_t|s_t)`;
//! - outer objective: `L_out(theta_K; D_i') = (1/|D'|) sum_t pi_theta_K(a_t|s_t) / pi_old(a_t|s_t) A_t`;
//! - meta-gradient: `J' grad L_out(theta_K)` with `J = d theta_K / d theta =
//!   prod_k (I + alpha H_k)`, `H_k = Hess L_in(theta_k; D_i^k)` (symmetric, so `J'`
//!   applies the factors from `k = K-1` down to `0`), each factor a Hessian-vector
//!   product by the R-operator; `first_order` takes `J = I`;
//! - trust region: the mean KL between the post-adaptation policies before and after
//!   the update, whose Hessian at the current theta is `J' F(theta_K) J`.
//!
//! The tasks are independent: every per-task quantity is computed in parallel and the
//! results summed in task order, so the thread count never changes results. Every
//! product of one outer step reuses each task's [`TaskPasses`] (forward passes and
//! backward deltas at the current parameters), computed once with the inner step.

use super::policy::{Frozen, Policy, Scratch, Tape};
use super::trpo::{self, LineSearch};
use crate::par;

/// Adaptation samples of one task: observations, stored actions and advantages.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AdaptBatch {
    pub obs: Vec<f64>,
    pub actions: Vec<f64>,
    pub advantages: Vec<f64>,
}

/// Post-adaptation samples of one task with what the behaviour policy (the adapted
/// parameters at collection time) said about them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PostBatch {
    pub obs: Vec<f64>,
    pub actions: Vec<f64>,
    pub advantages: Vec<f64>,
    pub old_log_probs: Vec<f64>,
    /// Head outputs (means or logits), `n * out_dim`.
    pub old_out: Vec<f64>,
    /// The behaviour policy's log-stds (empty for categorical heads).
    pub old_log_std: Vec<f64>,
}

/// All samples of one task in one meta-iteration.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TaskBatch {
    /// One batch per inner step.
    pub adapt: Vec<AdaptBatch>,
    pub post: PostBatch,
}

/// One task's passes at the outer step's parameters, which every product of the step
/// reuses: the inner trajectory `theta_0 .. theta_K`, each inner step's forward pass and
/// backward deltas on its batch with its weights `A_t / |D|` (empty when first-order),
/// and the post-adaptation batch's forward pass at `theta_K`.
#[derive(Clone, Debug, Default)]
pub struct TaskPasses {
    pub thetas: Vec<Vec<f64>>,
    adapt: Vec<Frozen>,
    weights: Vec<Vec<f64>>,
    post: Frozen,
}

/// Settings of the TRPO outer step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TrpoSettings {
    pub max_kl: f64,
    pub cg_iters: usize,
    pub cg_damping: f64,
    pub line_search_steps: usize,
    pub backtrack_ratio: f64,
}

/// What one outer step did.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct OuterStats {
    pub objective_before: f64,
    pub objective_after: f64,
    pub kl: f64,
    pub accepted: bool,
    pub line_search_tries: usize,
    pub grad_norm: f64,
}

/// The MAML meta-learner over a policy's flat parameters.
#[derive(Clone, Debug)]
pub struct Maml<'a> {
    pub policy: &'a Policy,
    pub inner_lr: f64,
    pub first_order: bool,
    pub threads: usize,
}

impl Maml<'_> {
    fn n(&self, batch_obs: &[f64]) -> usize {
        batch_obs.len() / self.policy.obs_dim
    }

    /// One inner step from `theta` on `batch`.
    pub fn inner_step(&self, theta: &[f64], batch: &AdaptBatch, tape: &mut Tape) -> Vec<f64> {
        let n = self.n(&batch.obs);
        let w: Vec<f64> = batch.advantages.iter().map(|a| a / n as f64).collect();
        let mut grad = vec![0.0; theta.len()];
        self.policy
            .grad_logp(theta, &batch.obs, &batch.actions, &w, tape, &mut grad);
        theta
            .iter()
            .zip(&grad)
            .map(|(t, g)| t + self.inner_lr * g)
            .collect()
    }

    /// `[theta_0 = theta, theta_1, ..., theta_K]` along the task's adaptation batches.
    pub fn adapt(&self, theta: &[f64], adapt: &[AdaptBatch], tape: &mut Tape) -> Vec<Vec<f64>> {
        let mut thetas = vec![theta.to_vec()];
        for batch in adapt {
            let next = self.inner_step(thetas.last().expect("theta_0"), batch, tape);
            thetas.push(next);
        }
        thetas
    }

    /// The weights of the inner surrogate's log-likelihood terms, `A_t / |D|`.
    fn inner_weights(&self, batch: &AdaptBatch) -> Vec<f64> {
        let n = self.n(&batch.obs);
        batch.advantages.iter().map(|a| a / n as f64).collect()
    }

    /// Task `task`'s passes from `theta`: the inner steps (exactly
    /// [`Maml::inner_step`]'s arithmetic), each keeping its forward pass and backward
    /// deltas for the Hessian-vector products (not when first-order), and the
    /// post-adaptation batch's forward pass at `theta_K`.
    pub fn task_passes(&self, theta: &[f64], task: &TaskBatch, s: &mut Scratch) -> TaskPasses {
        let mut passes = TaskPasses {
            thetas: vec![theta.to_vec()],
            ..TaskPasses::default()
        };
        for batch in &task.adapt {
            let th = passes.thetas.last().expect("theta_k");
            let n = self.n(&batch.obs);
            let w = self.inner_weights(batch);
            let mut f = Frozen::default();
            self.policy.freeze(th, &batch.obs, n, &mut f);
            let mut grad = vec![0.0; th.len()];
            if self.first_order {
                self.policy
                    .grad_frozen(th, &f, &batch.actions, &w, s, &mut grad);
                f = Frozen::default();
            } else {
                self.policy.keep_for_products(&mut f);
                self.policy
                    .backward_deltas(th, &mut f, &batch.actions, &w, s, Some(&mut grad));
            }
            let next = th
                .iter()
                .zip(&grad)
                .map(|(t, g)| t + self.inner_lr * g)
                .collect();
            passes.thetas.push(next);
            passes.adapt.push(f);
            passes.weights.push(w);
        }
        let n = self.n(&task.post.obs);
        let theta_k = passes.thetas.last().expect("theta_K");
        self.policy
            .freeze(theta_k, &task.post.obs, n, &mut passes.post);
        self.policy.keep_for_products(&mut passes.post);
        passes
    }

    /// `v + alpha H_k v` for the inner step `k` (H the Hessian of its surrogate).
    fn inner_factor(
        &self,
        p: &TaskPasses,
        k: usize,
        batch: &AdaptBatch,
        v: &[f64],
        s: &mut Scratch,
    ) -> Vec<f64> {
        let mut hv = vec![0.0; v.len()];
        self.policy.hvp_frozen(
            &p.thetas[k],
            &p.adapt[k],
            &batch.actions,
            &p.weights[k],
            v,
            s,
            &mut hv,
        );
        v.iter()
            .zip(&hv)
            .map(|(a, b)| a + self.inner_lr * b)
            .collect()
    }

    /// `J' g` (back through the inner steps); `g` itself when first-order.
    fn back_through_inner(
        &self,
        p: &TaskPasses,
        adapt: &[AdaptBatch],
        g: Vec<f64>,
        s: &mut Scratch,
    ) -> Vec<f64> {
        if self.first_order {
            return g;
        }
        let mut g = g;
        for k in (0..adapt.len()).rev() {
            g = self.inner_factor(p, k, &adapt[k], &g, s);
        }
        g
    }

    /// `J v` (forward through the inner steps); `v` itself when first-order.
    fn forward_through_inner(
        &self,
        p: &TaskPasses,
        adapt: &[AdaptBatch],
        v: &[f64],
        s: &mut Scratch,
    ) -> Vec<f64> {
        let mut u = v.to_vec();
        if self.first_order {
            return u;
        }
        for (k, batch) in adapt.iter().enumerate() {
            u = self.inner_factor(p, k, batch, &u, s);
        }
        u
    }

    /// Post-adaptation surrogate `L_out(theta_K)` and mean KL(old || theta_K).
    pub fn post_objective_kl(
        &self,
        theta_k: &[f64],
        post: &PostBatch,
        tape: &mut Tape,
    ) -> (f64, f64) {
        let n = self.n(&post.obs);
        self.policy.forward(theta_k, &post.obs, n, tape);
        let mut logp = vec![0.0; n];
        self.policy
            .log_probs(theta_k, tape, &post.actions, &mut logp);
        let objective = (0..n)
            .map(|t| (logp[t] - post.old_log_probs[t]).exp() * post.advantages[t])
            .sum::<f64>()
            / n as f64;
        let kl = self
            .policy
            .mean_kl(theta_k, tape, &post.old_out, &post.old_log_std);
        (objective, kl)
    }

    /// `L_out(theta_K)` and its gradient with respect to `theta_K`, on the task's
    /// frozen post-adaptation forward pass.
    fn post_objective_grad(
        &self,
        p: &TaskPasses,
        post: &PostBatch,
        s: &mut Scratch,
    ) -> (f64, Vec<f64>) {
        let theta_k = p.thetas.last().expect("theta_K");
        let n = self.n(&post.obs);
        let mut logp = vec![0.0; n];
        self.policy
            .frozen_log_probs(theta_k, &p.post, &post.actions, &mut logp);
        let w: Vec<f64> = (0..n)
            .map(|t| (logp[t] - post.old_log_probs[t]).exp() * post.advantages[t] / n as f64)
            .collect();
        let objective = w.iter().sum();
        let mut grad = vec![0.0; theta_k.len()];
        self.policy
            .grad_frozen(theta_k, &p.post, &post.actions, &w, s, &mut grad);
        (objective, grad)
    }

    /// Mean over tasks of the post-adaptation objective reached from `theta` and of
    /// its KL from the behaviour policies (what the line search evaluates).
    pub fn meta_objective_kl(&self, theta: &[f64], tasks: &[TaskBatch]) -> (f64, f64) {
        self.meta_objective_kl_with(theta, tasks, &mut Vec::new())
    }

    fn meta_objective_kl_with(
        &self,
        theta: &[f64],
        tasks: &[TaskBatch],
        pool: &mut Vec<Tape>,
    ) -> (f64, f64) {
        let per_task = par::map_with(tasks, self.threads, pool, |task, tape| {
            let thetas = self.adapt(theta, &task.adapt, tape);
            self.post_objective_kl(thetas.last().expect("theta_K"), &task.post, tape)
        });
        let m = tasks.len() as f64;
        per_task
            .iter()
            .fold((0.0, 0.0), |acc, r| (acc.0 + r.0 / m, acc.1 + r.1 / m))
    }

    /// Every task's [`TaskPasses`] from `theta` (in parallel).
    fn all_passes(
        &self,
        theta: &[f64],
        tasks: &[TaskBatch],
        pool: &mut Vec<Tape>,
    ) -> Vec<TaskPasses> {
        par::map_with(tasks, self.threads, pool, |task, tape| {
            self.task_passes(theta, task, &mut tape.scratch)
        })
    }

    /// Mean post-adaptation objective and its meta-gradient at `theta`, given each
    /// task's inner trajectory `thetas[i]` from [`Maml::adapt`].
    pub fn meta_gradient(&self, thetas: &[Vec<Vec<f64>>], tasks: &[TaskBatch]) -> (f64, Vec<f64>) {
        let mut pool = Vec::new();
        let passes = self.all_passes(&thetas[0][0], tasks, &mut pool);
        debug_assert!(passes.iter().zip(thetas).all(|(p, th)| &p.thetas == th));
        self.meta_gradient_with(&passes, tasks, &mut pool)
    }

    fn meta_gradient_with(
        &self,
        passes: &[TaskPasses],
        tasks: &[TaskBatch],
        pool: &mut Vec<Tape>,
    ) -> (f64, Vec<f64>) {
        let items: Vec<_> = passes.iter().zip(tasks).collect();
        let per_task = par::map_with(&items, self.threads, pool, |(p, task), tape| {
            let s = &mut tape.scratch;
            let (objective, g) = self.post_objective_grad(p, &task.post, s);
            (objective, self.back_through_inner(p, &task.adapt, g, s))
        });
        let m = tasks.len() as f64;
        let mut grad = vec![0.0; self.policy.len()];
        let mut objective = 0.0;
        for (o, g) in &per_task {
            objective += o / m;
            grad.iter_mut().zip(g).for_each(|(a, b)| *a += b / m);
        }
        (objective, grad)
    }

    /// `(1/M) sum_i J_i' F_i J_i v`: the Hessian of the mean post-adaptation KL at the
    /// current parameters, times `v` (without damping).
    pub fn meta_fisher_vp(
        &self,
        thetas: &[Vec<Vec<f64>>],
        tasks: &[TaskBatch],
        v: &[f64],
    ) -> Vec<f64> {
        let mut pool = Vec::new();
        let passes = self.all_passes(&thetas[0][0], tasks, &mut pool);
        debug_assert!(passes.iter().zip(thetas).all(|(p, th)| &p.thetas == th));
        self.meta_fisher_vp_with(&passes, tasks, v, &mut pool)
    }

    fn meta_fisher_vp_with(
        &self,
        passes: &[TaskPasses],
        tasks: &[TaskBatch],
        v: &[f64],
        pool: &mut Vec<Tape>,
    ) -> Vec<f64> {
        let items: Vec<_> = passes.iter().zip(tasks).collect();
        let per_task = par::map_with(&items, self.threads, pool, |(p, task), tape| {
            let s = &mut tape.scratch;
            let u = self.forward_through_inner(p, &task.adapt, v, s);
            let mut fu = vec![0.0; u.len()];
            let theta_k = p.thetas.last().expect("theta_K");
            self.policy
                .fisher_vp_frozen(theta_k, &p.post, &u, s, &mut fu);
            self.back_through_inner(p, &task.adapt, fu, s)
        });
        let m = tasks.len() as f64;
        let mut out = vec![0.0; v.len()];
        for g in &per_task {
            out.iter_mut().zip(g).for_each(|(a, b)| *a += b / m);
        }
        out
    }

    /// One TRPO meta-update of `theta` on the meta-batch `tasks`.
    pub fn outer_step(
        &self,
        theta: &mut Vec<f64>,
        tasks: &[TaskBatch],
        s: &TrpoSettings,
    ) -> OuterStats {
        // One pool of per-thread scratch for every product of this step, and every
        // task's passes at theta, which all of the conjugate gradient's products reuse.
        let mut pool: Vec<Tape> = Vec::new();
        let passes = self.all_passes(theta, tasks, &mut pool);
        let (objective_before, g) = self.meta_gradient_with(&passes, tasks, &mut pool);
        let grad_norm = trpo::dot(&g, &g).sqrt();
        let mut avp = |v: &[f64]| {
            let mut out = self.meta_fisher_vp_with(&passes, tasks, v, &mut pool);
            out.iter_mut()
                .zip(v)
                .for_each(|(a, b)| *a += s.cg_damping * b);
            out
        };
        let direction = trpo::conjugate_gradient(&mut avp, &g, s.cg_iters);
        let shs = trpo::dot(&direction, &avp(&direction));
        // The line search needs none of them: free them before its own tapes grow.
        drop(passes);
        let scale = (2.0 * s.max_kl / (shs + 1e-8)).sqrt();
        let full_step: Vec<f64> = direction.iter().map(|d| d * scale).collect();
        let LineSearch {
            theta: new_theta,
            accepted,
            tries,
            objective,
            kl,
        } = trpo::line_search(
            theta,
            &full_step,
            objective_before,
            s.max_kl,
            s.backtrack_ratio,
            s.line_search_steps,
            |candidate| self.meta_objective_kl_with(candidate, tasks, &mut pool),
        );
        *theta = new_theta;
        OuterStats {
            objective_before,
            objective_after: if accepted {
                objective
            } else {
                objective_before
            },
            kl: if accepted { kl } else { 0.0 },
            accepted,
            line_search_tries: tries,
            grad_norm,
        }
    }
}

/// `f` on every item, in parallel on `threads` threads (each with its own scratch
/// tape); results in item order.
pub fn par_map<T: Sync, R: Send>(
    items: &[T],
    threads: usize,
    f: impl Fn(&T, &mut Tape) -> R + Sync,
) -> Vec<R> {
    par::map_with(items, threads, &mut Vec::new(), f)
}
