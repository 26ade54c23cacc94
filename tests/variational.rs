//! VariBAD belief: KL, ELBO terms against hand and f64 computations, streaming versus
//! training encoder, gradients, trial buffer.

use bamdp::belief::trials::TrialRecord;
use bamdp::belief::variational::{
    kl_diag_gaussian, ElboDraw, GruPath, RewardDecoderKind, VaribadConfig, VaribadModel,
    VaribadSpec, VaribadState,
};
use bamdp::belief::{Belief, Transition};
use bamdp::nn::params::{Dense, GruCell};
use bamdp::rng::Rng;
mod common;
use common::allocs;

fn spec(action_embed: usize, kl_to_prior: bool, kl_sum: bool) -> VaribadSpec {
    VaribadSpec {
        obs_dim: 2,
        action_dim: 5,
        num_cells: 25,
        config: VaribadConfig {
            state_embed: 4,
            action_embed,
            reward_embed: 3,
            gru_hidden: 6,
            latent: 3,
            decoder_hidden: vec![8, 5],
            kl_weight: 0.3,
            kl_to_prior,
            kl_sum_over_trials: kl_sum,
            ..VaribadConfig::default()
        },
        ..VaribadSpec::gridnavi()
    }
}

/// A model with all parameters (including biases) randomised, so every term matters.
fn model(s: VaribadSpec, seed: u64) -> VaribadModel {
    let mut rng = Rng::new(seed);
    let mut m = VaribadModel::new(s, &mut rng);
    for v in m.params.data.iter_mut() {
        *v += 0.2 * rng.normal() as f32;
    }
    m
}

/// A random walk of `steps` on the 5x5 grid with a goal: reward +1 on the goal.
fn random_trial(steps: usize, rng: &mut Rng) -> TrialRecord {
    let goal = (2 + rng.below(3) as i32, rng.below(5) as i32);
    let (mut x, mut y) = (0i32, 0i32);
    let mut tr = TrialRecord::default();
    for _ in 0..steps {
        let s = [x as f32, y as f32];
        let a = rng.below(5) as u32;
        let (dx, dy) = [(0, 0), (0, 1), (1, 0), (0, -1), (-1, 0)][a as usize];
        x = (x + dx).clamp(0, 4);
        y = (y + dy).clamp(0, 4);
        let r = if (x, y) == goal { 1.0 } else { -0.1 };
        tr.push_step(&s, &[a as f32], r, &[x as f32, y as f32]);
    }
    tr
}

fn trials(n: usize, steps: usize, seed: u64) -> Vec<TrialRecord> {
    let mut rng = Rng::new(seed);
    let mut v: Vec<TrialRecord> = (0..n).map(|_| random_trial(steps, &mut rng)).collect();
    // Make sure +1 rewards occur.
    v[0].next_obs[2..4].copy_from_slice(&[3.0, 3.0]);
    v[0].rewards[1] = 1.0;
    v
}

// ---------- an independent f64 implementation of the ELBO ----------

fn dense64(d: &[f64], l: &Dense, x: &[f64], relu: bool) -> Vec<f64> {
    let (ni, no) = (l.fan_in(), l.fan_out());
    let (w, b) = (&d[l.w.range()], &d[l.b.range()]);
    (0..no)
        .map(|j| {
            let s = b[j] + (0..ni).map(|i| x[i] * w[i * no + j]).sum::<f64>();
            if relu {
                s.max(0.0)
            } else {
                s
            }
        })
        .collect()
}

fn gru64(d: &[f64], c: &GruCell, x: &[f64], h: &[f64]) -> Vec<f64> {
    let hd = c.hidden();
    let gx = dense64(d, &Dense { w: c.wx, b: c.bx }, x, false);
    let gh = dense64(d, &Dense { w: c.wh, b: c.bh }, h, false);
    let sig = |v: f64| 1.0 / (1.0 + (-v).exp());
    (0..hd)
        .map(|j| {
            let r = sig(gx[j] + gh[j]);
            let z = sig(gx[hd + j] + gh[hd + j]);
            let n = (gx[2 * hd + j] + r * gh[2 * hd + j]).tanh();
            (1.0 - z) * n + z * h[j]
        })
        .collect()
}

fn softplus(x: f64) -> f64 {
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

fn kl64(m1: &[f64], l1: &[f64], m2: &[f64], l2: &[f64]) -> f64 {
    (0..m1.len())
        .map(|i| {
            let (s1, s2) = ((l1[i] / 2.0).exp(), (l2[i] / 2.0).exp());
            (s2 / s1).ln() + (s1 * s1 + (m1[i] - m2[i]).powi(2)) / (2.0 * s2 * s2) - 0.5
        })
        .sum()
}

/// (loss, mean reconstruction, mean KL) in f64 with parameters `d`.
fn elbo64(m: &VaribadModel, d: &[f64], trs: &[&TrialRecord], draw: &ElboDraw) -> (f64, f64, f64) {
    let e = elbo64_full(m, d, trs, draw);
    (e.0, e.1, e.2)
}

/// The action input of step `t` in f64: one-hot or the raw vector.
fn action64(sp: &VaribadSpec, tr: &TrialRecord, t: usize) -> Vec<f64> {
    if sp.continuous_actions {
        let ad = sp.action_dim;
        tr.actions[t * ad..(t + 1) * ad]
            .iter()
            .map(|&v| v as f64)
            .collect()
    } else {
        let mut oh = vec![0.0; sp.action_dim];
        oh[tr.actions[t] as usize] = 1.0;
        oh
    }
}

fn mlp64(d: &[f64], layers: &[Dense], x: Vec<f64>) -> Vec<f64> {
    let mut z = x;
    for (i, layer) in layers.iter().enumerate() {
        z = dense64(d, layer, &z, i + 1 < layers.len());
    }
    z
}

/// (loss, mean reward reconstruction, mean KL, mean state reconstruction) in f64,
/// straight from the definitions: every (term, decode) pair evaluated on its own.
fn elbo64_full(
    m: &VaribadModel,
    d: &[f64],
    trs: &[&TrialRecord],
    draw: &ElboDraw,
) -> (f64, f64, f64, f64) {
    let sp = &m.spec;
    let od = sp.obs_dim;
    let (bn, steps, l) = (trs.len(), trs[0].len(), sp.config.latent);
    let (mut recon, mut srecon, mut kl) = (0.0, 0.0, 0.0);
    let f = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<f64>>();
    for (b, tr) in trs.iter().enumerate() {
        let mut h = vec![0.0; sp.config.gru_hidden];
        let mut post = vec![(
            dense64(d, &m.mu, &h, false),
            dense64(d, &m.logvar, &h, false),
        )];
        for t in 0..steps {
            let s = f(&tr.next_obs[od * t..od * (t + 1)]);
            let mut x = dense64(d, &m.state_embed, &s, true);
            if let Some(ae) = &m.action_embed {
                x.extend(dense64(d, ae, &action64(sp, tr, t), true));
            }
            x.extend(dense64(d, &m.reward_embed, &[tr.rewards[t] as f64], true));
            h = gru64(d, &m.gru, &x, &h);
            post.push((
                dense64(d, &m.mu, &h, false),
                dense64(d, &m.logvar, &h, false),
            ));
        }
        for t in 0..=steps {
            let row = t * bn + b;
            let (mu, lv) = &post[t];
            let z: Vec<f64> = (0..l)
                .map(|j| mu[j] + (lv[j] / 2.0).exp() * draw.eps[row * l + j] as f64)
                .collect();
            let logits = (sp.config.reward_decoder == RewardDecoderKind::Multihead)
                .then(|| mlp64(d, &m.decoder, z.clone()));
            for tau in 0..steps {
                let w = draw.decode_counts[row * steps + tau] as f64;
                if w == 0.0 {
                    continue;
                }
                let s = f(&tr.obs[od * tau..od * (tau + 1)]);
                let s2 = f(&tr.next_obs[od * tau..od * (tau + 1)]);
                let r = tr.rewards[tau] as f64;
                recon += w * match &logits {
                    Some(z) => {
                        let logit = z[m.head_of(&tr.next_obs[od * tau..od * (tau + 1)])];
                        if tr.rewards[tau] == 1.0 {
                            softplus(-logit)
                        } else {
                            softplus(logit)
                        }
                    }
                    None => {
                        let se = m.reward_state_embed.as_ref().unwrap();
                        let mut x = z.clone();
                        x.extend(dense64(d, se, &s2, true));
                        if let Some(ae) = &m.reward_action_embed {
                            x.extend(dense64(d, ae, &action64(sp, tr, tau), true));
                        }
                        if sp.config.reward_input_state {
                            x.extend(dense64(d, se, &s, true));
                        }
                        (mlp64(d, &m.decoder, x)[0] - r).powi(2)
                    }
                };
                if sp.config.decode_state {
                    let mut x = z.clone();
                    x.extend(dense64(
                        d,
                        m.transition_state_embed.as_ref().unwrap(),
                        &s,
                        true,
                    ));
                    if let Some(ae) = &m.transition_action_embed {
                        x.extend(dense64(d, ae, &action64(sp, tr, tau), true));
                    }
                    let pred = mlp64(d, &m.state_decoder, x);
                    let se: f64 = (0..od).map(|k| (pred[k] - s2[k]).powi(2)).sum();
                    srecon += w * se / od as f64;
                }
            }
            let zero = vec![0.0; l];
            let (pm, pl) = if sp.config.kl_to_prior || t == 0 {
                (&zero, &zero)
            } else {
                (&post[t - 1].0, &post[t - 1].1)
            };
            kl += draw.elbo_counts[row] as f64 * kl64(mu, lv, pm, pl);
        }
    }
    let nb = bn as f64;
    let k = if sp.config.kl_sum_over_trials {
        kl
    } else {
        kl / nb
    };
    let loss = sp.config.reward_loss_coeff * recon / nb
        + sp.config.state_loss_coeff * srecon / nb * if sp.config.decode_state { 1.0 } else { 0.0 }
        + sp.config.kl_weight * k;
    (loss, recon / nb, kl / nb, srecon / nb)
}

fn params64(m: &VaribadModel) -> Vec<f64> {
    m.params.data.iter().map(|&v| v as f64).collect()
}

// ---------- KL ----------

#[test]
fn kl_diag_gaussian_matches_closed_form_and_monte_carlo() {
    let mut rng = Rng::new(5);
    let n = 4;
    let r = |rng: &mut Rng, s: f64| {
        (0..n)
            .map(|_| (s * rng.normal()) as f32)
            .collect::<Vec<_>>()
    };
    let (m1, l1, m2, l2) = (
        r(&mut rng, 1.0),
        r(&mut rng, 0.5),
        r(&mut rng, 1.0),
        r(&mut rng, 0.5),
    );
    let f = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<_>>();
    let exact = kl64(&f(&m1), &f(&l1), &f(&m2), &f(&l2));
    let got = kl_diag_gaussian(&m1, &l1, &m2, &l2);
    assert!((got - exact).abs() < 1e-12, "{got} vs {exact}");
    assert!(got > 0.0);
    assert_eq!(kl_diag_gaussian(&m1, &l1, &m1, &l1), 0.0);
    // Against N(0, I): -0.5 * sum(1 + lv - mu^2 - exp(lv)) (the reference's formula).
    let z = vec![0.0f32; n];
    let std_form: f64 = (0..n)
        .map(|i| {
            let (m, l) = (m1[i] as f64, l1[i] as f64);
            -0.5 * (1.0 + l - m * m - l.exp())
        })
        .sum();
    assert!((kl_diag_gaussian(&m1, &l1, &z, &z) - std_form).abs() < 1e-12);
    // Monte Carlo: E_q1[log q1(x) - log q2(x)].
    let logpdf = |x: &[f64], m: &[f32], l: &[f32]| -> f64 {
        (0..n)
            .map(|i| {
                let v = (l[i] as f64).exp();
                -0.5 * ((x[i] - m[i] as f64).powi(2) / v
                    + l[i] as f64
                    + (2.0 * std::f64::consts::PI).ln())
            })
            .sum()
    };
    let samples = 200_000;
    let mut acc = 0.0;
    let mut x = vec![0.0; n];
    for _ in 0..samples {
        for i in 0..n {
            x[i] = m1[i] as f64 + (l1[i] as f64 / 2.0).exp() * rng.normal();
        }
        acc += logpdf(&x, &m1, &l1) - logpdf(&x, &m2, &l2);
    }
    let mc = acc / samples as f64;
    assert!(
        (mc - got).abs() < 0.03 * (1.0 + got),
        "Monte Carlo {mc} vs closed form {got}"
    );
}

// ---------- ELBO by hand ----------

/// Latent 1, GRU hidden 1 with zero weights (so the hidden state follows from the
/// biases alone), a linear decoder: every number is computed here by hand.
#[test]
fn elbo_terms_match_hand_computation() {
    let s = VaribadSpec {
        obs_dim: 2,
        action_dim: 5,
        num_cells: 25,
        config: VaribadConfig {
            state_embed: 2,
            action_embed: 0,
            reward_embed: 2,
            gru_hidden: 1,
            latent: 1,
            decoder_hidden: vec![],
            kl_weight: 0.5,
            kl_to_prior: false,
            kl_sum_over_trials: false,
            ..VaribadConfig::default()
        },
        ..VaribadSpec::gridnavi()
    };
    let mut m = VaribadModel::new(s, &mut Rng::new(3));
    let p = &mut m.params;
    p.data.iter_mut().for_each(|v| *v = 0.0);
    // GRU biases: r = sig(0.4), z = sig(-0.3), n = tanh(0.7 + r * 0.2).
    let (bx, bh) = (m.gru.bx.range(), m.gru.bh.range());
    p.data[bx.start] = 0.4;
    p.data[bx.start + 1] = -0.3;
    p.data[bx.start + 2] = 0.7;
    p.data[bh.start + 2] = 0.2;
    // mu = 2 h + 0.1, logvar = -h - 0.2.
    p.data[m.mu.w.offset] = 2.0;
    p.data[m.mu.b.offset] = 0.1;
    p.data[m.logvar.w.offset] = -1.0;
    p.data[m.logvar.b.offset] = -0.2;
    // Decoder: logit_c = w_c z + b_c, only the heads of cells 13 and 24 matter.
    let dec = m.decoder[0];
    p.data[dec.w.offset + 13] = 1.5;
    p.data[dec.b.offset + 13] = -0.5;
    p.data[dec.w.offset + 24] = -0.8;
    p.data[dec.b.offset + 24] = 0.3;

    // Two steps: to (2, 3) = cell 13 with reward -0.1, then (4, 4) = cell 24 with +1.
    let tr = TrialRecord {
        obs: vec![2.0, 2.0, 2.0, 3.0],
        actions: vec![1.0, 2.0],
        rewards: vec![-0.1, 1.0],
        next_obs: vec![2.0, 3.0, 4.0, 4.0],
    };
    let eps = vec![0.3f32, -1.2, 0.7];

    let sig = |v: f64| 1.0 / (1.0 + (-v).exp());
    let (r, z) = (sig(0.4), sig(-0.3));
    let n = (0.7 + r * 0.2f64).tanh();
    let h = [0.0, (1.0 - z) * n, (1.0 - z) * n + z * (1.0 - z) * n];
    let mu: Vec<f64> = h.iter().map(|h| 2.0 * h + 0.1).collect();
    let lv: Vec<f64> = h.iter().map(|h| -h - 0.2).collect();
    let mut recon = 0.0;
    for t in 0..3 {
        let zt = mu[t] + (lv[t] / 2.0).exp() * eps[t] as f64;
        let (l13, l24) = (1.5 * zt - 0.5, -0.8 * zt + 0.3);
        recon += -(1.0 - sig(l13)).ln() - sig(l24).ln();
    }
    let kl1 = |m1: f64, l1: f64, m2: f64, l2: f64| {
        0.5 * (l2 - l1 - 1.0 + (l1 - l2).exp() + (m1 - m2).powi(2) / l2.exp())
    };
    let kl = kl1(mu[0], lv[0], 0.0, 0.0)
        + kl1(mu[1], lv[1], mu[0], lv[0])
        + kl1(mu[2], lv[2], mu[1], lv[1]);
    let loss = recon + 0.5 * kl;

    // The streaming encoder gives the same posteriors.
    let mut st = m.init(1);
    let mut f = [0.0f32; 2];
    m.features(&st, &mut f);
    assert!((f[0] as f64 - mu[0]).abs() < 1e-6 && (f[1] as f64 - lv[0]).abs() < 1e-6);
    for t in 0..2 {
        let obs = [0.0f32; 2];
        m.update(
            &mut st,
            &Transition {
                obs: &obs,
                action: &tr.actions[t..t + 1],
                reward: &tr.rewards[t..t + 1],
                next_obs: &tr.next_obs[2 * t..2 * t + 2],
                episode_end: &[false],
            },
        );
        m.features(&st, &mut f);
        assert!((f[0] as f64 - mu[t + 1]).abs() < 1e-6, "mu_{}", t + 1);
        assert!((f[1] as f64 - lv[t + 1]).abs() < 1e-6, "logvar_{}", t + 1);
    }

    for path in [GruPath::Fused, GruPath::Graph] {
        let (stats, _) = m.loss_and_grad_with(&[&tr], &ElboDraw::full(2, 1, eps.clone()), path);
        assert!(
            (stats.reconstruction - recon).abs() < 1e-5,
            "{stats:?} vs {recon}"
        );
        assert!((stats.kl - kl).abs() < 1e-5, "{stats:?} vs {kl}");
        assert!((stats.loss - loss).abs() < 1e-5, "{stats:?} vs {loss}");
    }
    let (l64, r64, k64) = elbo64(&m, &params64(&m), &[&tr], &ElboDraw::full(2, 1, eps));
    // The parameters are f32 (0.4f32 != 0.4): agreement to f32 rounding.
    for (a, b) in [(l64, loss), (r64, recon), (k64, kl)] {
        assert!((a - b).abs() < 1e-6, "f64 reference {a} vs hand {b}");
    }
}

// ---------- loss against the f64 implementation ----------

#[test]
fn loss_matches_f64_reference_for_all_options() {
    let trs = trials(4, 9, 21);
    let refs: Vec<&TrialRecord> = trs.iter().collect();
    let mut rng = Rng::new(8);
    for (ae, to_prior, ksum) in [(0, false, false), (3, true, false), (2, false, true)] {
        let m = model(spec(ae, to_prior, ksum), 40 + ae as u64);
        for sub in [
            (None, None),
            (Some(3), None),
            (Some(4), Some(5)),
            (None, Some(2)),
        ] {
            let draw = ElboDraw::sample(9, 4, m.spec.config.latent, &mut rng, sub.0, sub.1);
            let (l, r, k) = elbo64(&m, &params64(&m), &refs, &draw);
            for path in [GruPath::Fused, GruPath::Graph] {
                let (st, _) = m.loss_and_grad_with(&refs, &draw, path);
                let tol = |x: f64| 1e-4 * (1.0 + x.abs());
                assert!((st.loss - l).abs() < tol(l), "{st:?} vs {l}");
                assert!((st.reconstruction - r).abs() < tol(r), "{st:?} vs {r}");
                assert!((st.kl - k).abs() < tol(k), "{st:?} vs {k}");
            }
        }
    }
}

// ---------- streaming versus training encoder ----------

#[test]
fn streaming_features_equal_training_posteriors() {
    for ae in [0, 3] {
        let m = model(spec(ae, false, false), 11 + ae as u64);
        let (steps, rows) = (12, 3);
        let trs = trials(rows, steps, 13);
        let refs: Vec<&TrialRecord> = trs.iter().collect();
        let (mu, lv) = m.posteriors(&refs);
        let l = m.spec.config.latent;
        let mut st = m.init(rows);
        let mut f = vec![0.0f32; rows * 2 * l];
        let check = |f: &[f32], t: usize| {
            for b in 0..rows {
                let row = t * rows + b;
                for j in 0..l {
                    let (a, e) = (f[b * 2 * l + j], mu[row * l + j]);
                    assert!((a - e).abs() < 1e-5, "mu t={t} b={b}: {a} vs {e}");
                    let (a, e) = (f[b * 2 * l + l + j], lv[row * l + j]);
                    assert!((a - e).abs() < 1e-5, "logvar t={t} b={b}: {a} vs {e}");
                }
            }
        };
        m.features(&st, &mut f);
        check(&f, 0);
        let obs = vec![0.0f32; rows * 2];
        let mut next = vec![0.0f32; rows * 2];
        let mut act = vec![0.0f32; rows];
        let mut rew = vec![0.0f32; rows];
        let ends = vec![false; rows];
        for t in 0..steps {
            for b in 0..rows {
                next[2 * b..2 * b + 2].copy_from_slice(&trs[b].next_obs[2 * t..2 * t + 2]);
                act[b] = trs[b].actions[t];
                rew[b] = trs[b].rewards[t];
            }
            let tr = Transition {
                obs: &obs,
                action: &act,
                reward: &rew,
                next_obs: &next,
                episode_end: &ends,
            };
            let before = allocs();
            m.update(&mut st, &tr);
            m.features(&st, &mut f);
            assert_eq!(allocs(), before, "update/features allocate");
            check(&f, t + 1);
        }
        // Reset row 1: back to the prior; gather duplicates rows.
        m.reset(&mut st, &[false, true, false]);
        m.features(&st, &mut f);
        let prior = m.prior();
        for j in 0..l {
            assert_eq!(f[2 * l + j], prior.0[j]);
            assert_eq!(f[2 * l + l + j], prior.1[j]);
        }
        let mut g: VaribadState = m.init(2);
        m.gather(&st, &[2, 2], &mut g);
        assert_eq!(g.h[..6], st.h[12..18]);
        assert_eq!(g.h[6..], st.h[12..18]);
        let json = serde_json::to_string(&st).unwrap();
        let mut back: VaribadState = serde_json::from_str(&json).unwrap();
        assert_eq!(back.h, st.h);
        m.update(
            &mut back,
            &Transition {
                obs: &obs,
                action: &act,
                reward: &rew,
                next_obs: &next,
                episode_end: &ends,
            },
        );
    }
}

// ---------- gradients ----------

#[test]
fn fused_gradient_equals_burn_autodiff_gradient() {
    let trs = trials(3, 10, 31);
    let refs: Vec<&TrialRecord> = trs.iter().collect();
    let mut rng = Rng::new(2);
    for (ae, to_prior, ksum) in [(0, false, true), (3, true, false)] {
        let m = model(spec(ae, to_prior, ksum), 17);
        let draw = ElboDraw::sample(10, 3, m.spec.config.latent, &mut rng, Some(4), Some(3));
        let (sf, gf) = m.loss_and_grad_with(&refs, &draw, GruPath::Fused);
        let (sg, gg) = m.loss_and_grad_with(&refs, &draw, GruPath::Graph);
        assert!((sf.loss - sg.loss).abs() < 1e-5 * (1.0 + sg.loss.abs()));
        for (i, (a, b)) in gf.iter().zip(&gg).enumerate() {
            assert!(
                (a - b).abs() < 1e-4 * (1.0 + b.abs()),
                "param {i} ({}): fused {a} vs graph {b}",
                m.params.names[m
                    .params
                    .slots
                    .iter()
                    .position(|s| s.range().contains(&i))
                    .unwrap()]
            );
        }
    }
}

#[test]
fn gradient_matches_finite_differences() {
    let trs = trials(2, 6, 41);
    let refs: Vec<&TrialRecord> = trs.iter().collect();
    let mut rng = Rng::new(3);
    for (ae, to_prior, ksum) in [(0, false, false), (2, true, true)] {
        let m = model(spec(ae, to_prior, ksum), 23 + ae as u64);
        let draw = ElboDraw::sample(6, 2, m.spec.config.latent, &mut rng, None, Some(4));
        let (_, g) = m.loss_and_grad_with(&refs, &draw, GruPath::Fused);
        let base = params64(&m);
        let h = 1e-5;
        let mut checked = 0;
        // Every parameter tensor, a few entries each.
        for slot in &m.params.slots {
            for k in (0..slot.len()).step_by(slot.len().div_ceil(3).max(1)) {
                let i = slot.offset + k;
                let mut d = base.clone();
                d[i] += h;
                let up = elbo64(&m, &d, &refs, &draw).0;
                d[i] -= 2.0 * h;
                let down = elbo64(&m, &d, &refs, &draw).0;
                let fd = (up - down) / (2.0 * h);
                assert!(
                    (fd - g[i] as f64).abs() < 2e-3 * (1.0 + fd.abs()),
                    "param {i}: fd {fd} vs {}",
                    g[i]
                );
                checked += 1;
            }
        }
        assert!(checked > 3 * m.params.slots.len() / 2);
    }
}

#[test]
fn loss_and_grad_draws_reproducibly_and_training_lowers_the_loss() {
    let trs = trials(8, 15, 51);
    let refs: Vec<&TrialRecord> = trs.iter().collect();
    let mut m = model(spec(0, false, false), 5);
    let (s1, g1) = m.loss_and_grad(&refs, &mut Rng::new(9), None, None);
    let (s2, g2) = m.loss_and_grad(&refs, &mut Rng::new(9), None, None);
    assert_eq!(s1, s2);
    assert_eq!(g1, g2);
    let mut adam = bamdp::nn::Adam::new(m.params.len(), 1e-8);
    let mut rng = Rng::new(10);
    let mut first = None;
    let mut last = 0.0;
    for _ in 0..60 {
        let (s, g) = m.loss_and_grad(&refs, &mut rng, None, None);
        first.get_or_insert(s.loss);
        last = s.loss;
        adam.step(&mut m.params.data, &g, 1e-2);
    }
    assert!(
        last < 0.7 * first.unwrap(),
        "loss {} -> {last}",
        first.unwrap()
    );
}

#[test]
fn gridnavi_preset_matches_the_reference() {
    let s = VaribadSpec::gridnavi();
    assert_eq!(
        (
            s.config.state_embed,
            s.config.action_embed,
            s.config.reward_embed
        ),
        (8, 0, 8)
    );
    assert_eq!(
        (s.config.gru_hidden, s.config.latent, s.num_cells),
        (64, 5, 25)
    );
    assert_eq!(s.config.decoder_hidden, vec![32, 32]);
    assert_eq!(s.config.kl_weight, 0.01);
    assert!(!s.config.kl_to_prior);
    let m = VaribadModel::new(s.clone(), &mut Rng::new(0));
    assert_eq!(m.feature_dim(), 10);
    let m2 = VaribadModel::new(s, &mut Rng::new(0));
    assert_eq!(m, m2, "deterministic construction");
    let back: VaribadModel = serde_json::from_str(&serde_json::to_string(&m).unwrap()).unwrap();
    assert_eq!(back, m);
}

/// Throughput of one VAE gradient at the GridNavi preset (25 trials x 60 steps):
/// `cargo test --release --test variational -- --ignored --nocapture`.
#[test]
#[ignore]
fn gridnavi_preset_gradient_timing() {
    let m = VaribadModel::new(VaribadSpec::gridnavi(), &mut Rng::new(0));
    let trs = trials(25, 60, 3);
    let refs: Vec<&TrialRecord> = trs.iter().collect();
    let mut rng = Rng::new(1);
    let _ = m.loss_and_grad(&refs, &mut rng, None, None);
    let n = 20;
    let t0 = std::time::Instant::now();
    for _ in 0..n {
        let _ = m.loss_and_grad(&refs, &mut rng, None, None);
    }
    let dt = t0.elapsed().as_secs_f64() / n as f64;
    println!("VAE loss_and_grad, 25 x 60: {:.2} ms", dt * 1e3);
}

// ---------- continuous actions, MLP reward decoder, state decoder ----------

/// A point-robot-like spec: 2-D observations, raw 2-D actions, MLP reward decoder.
fn pr_spec(input_state: bool, input_action: bool, decode_state: bool) -> VaribadSpec {
    VaribadSpec {
        obs_dim: 2,
        action_dim: 2,
        continuous_actions: true,
        num_cells: 0,
        config: VaribadConfig {
            state_embed: 4,
            action_embed: 3,
            reward_embed: 2,
            gru_hidden: 5,
            latent: 3,
            decoder_hidden: vec![6, 4],
            reward_decoder: RewardDecoderKind::Mlp,
            reward_input_state: input_state,
            reward_input_action: input_action,
            reward_loss_coeff: 0.7,
            decode_state,
            state_loss_coeff: 1.3,
            state_decoder_hidden: vec![5],
            kl_weight: 0.4,
            kl_to_prior: false,
            kl_sum_over_trials: true,
            ..VaribadConfig::default()
        },
    }
}

/// A random walk of the point robot (`s' = s + 0.1 clip(a)`) with a goal on the unit
/// semicircle and the dense reward `-|s' - goal|`.
fn point_trial(steps: usize, rng: &mut Rng) -> TrialRecord {
    let angle = std::f64::consts::PI * rng.uniform();
    let goal = [angle.cos() as f32, angle.sin() as f32];
    let mut s = [0.0f32; 2];
    let mut tr = TrialRecord::default();
    for _ in 0..steps {
        let a = [rng.normal() as f32, rng.normal() as f32];
        let next = [
            s[0] + 0.1 * a[0].clamp(-1.0, 1.0),
            s[1] + 0.1 * a[1].clamp(-1.0, 1.0),
        ];
        let r = -((next[0] - goal[0]).powi(2) + (next[1] - goal[1]).powi(2)).sqrt();
        tr.push_step(&s, &a, r, &next);
        s = next;
    }
    tr
}

fn point_trials(n: usize, steps: usize, seed: u64) -> Vec<TrialRecord> {
    let mut rng = Rng::new(seed);
    (0..n).map(|_| point_trial(steps, &mut rng)).collect()
}

/// Every option of the new decoders (s and a inputs, state decoder) and GridNavi with
/// the state decoder, against the pair-by-pair f64 implementation, with and without
/// sub-sampling (multiplicities > 1 occur), on both GRU paths.
#[test]
fn mlp_and_state_decoder_losses_match_f64_reference() {
    let pr = point_trials(3, 7, 61);
    let gn = trials(3, 7, 62);
    let mut rng = Rng::new(12);
    let mut gn_state = spec(2, false, true);
    gn_state.config.decode_state = true;
    let cases: Vec<(VaribadSpec, &Vec<TrialRecord>)> = vec![
        (pr_spec(false, false, false), &pr),
        (pr_spec(true, true, false), &pr),
        (pr_spec(false, true, true), &pr),
        (pr_spec(true, false, true), &pr),
        (gn_state, &gn),
    ];
    for (k, (sp, trs)) in cases.into_iter().enumerate() {
        let refs: Vec<&TrialRecord> = trs.iter().collect();
        let m = model(sp, 70 + k as u64);
        for sub in [
            (None, None),
            (Some(5), None),
            (Some(4), Some(6)),
            (None, Some(3)),
        ] {
            let draw = ElboDraw::sample(7, 3, m.spec.config.latent, &mut rng, sub.0, sub.1);
            if sub.1.is_some() {
                assert!(draw.decode_counts.iter().any(|&c| c > 1.0));
            }
            let (l, r, kl, s) = elbo64_full(&m, &params64(&m), &refs, &draw);
            assert!(r > 0.0 && (s > 0.0) == m.spec.config.decode_state);
            for path in [GruPath::Fused, GruPath::Graph] {
                let (st, _) = m.loss_and_grad_with(&refs, &draw, path);
                let tol = |x: f64| 1e-4 * (1.0 + x.abs());
                assert!(
                    (st.loss - l).abs() < tol(l),
                    "case {k} {sub:?}: {st:?} vs {l}"
                );
                assert!(
                    (st.reconstruction - r).abs() < tol(r),
                    "case {k}: {st:?} vs {r}"
                );
                assert!((st.kl - kl).abs() < tol(kl), "case {k}: {st:?} vs {kl}");
                assert!(
                    (st.state_reconstruction - s).abs() < tol(s),
                    "case {k}: {st:?} vs {s}"
                );
            }
        }
    }
}

/// The MLP reward loss by hand on a one-step trial: no hidden layers, so the prediction
/// of term t is `w_m m_t + w_s relu(W_e s' + b_e) + b`; with decode weights (2, 0 / 1)
/// from sub-sampling the loss is the weighted sum of squared errors.
#[test]
fn mlp_reward_loss_matches_hand_computation() {
    let mut sp = pr_spec(false, false, false);
    sp.config.decoder_hidden = vec![];
    sp.config.latent = 1;
    sp.config.state_embed = 1;
    sp.config.gru_hidden = 1;
    sp.config.kl_weight = 0.0;
    sp.config.reward_loss_coeff = 1.0;
    let mut m = VaribadModel::new(sp, &mut Rng::new(4));
    let p = &mut m.params;
    p.data.iter_mut().for_each(|v| *v = 0.0);
    // GRU output is 0 (all weights zero: h = (1 - 0.5) * tanh(0) = 0), so mu = b_mu,
    // logvar = b_lv at every t.
    p.data[m.mu.b.offset] = 0.5;
    p.data[m.logvar.b.offset] = -1.0;
    let se = m.reward_state_embed.unwrap();
    p.data[se.w.offset] = 2.0; // e(s') = relu(2 x + 1 y - 0.5)
    p.data[se.w.offset + 1] = 1.0;
    p.data[se.b.offset] = -0.5;
    let out = m.decoder[0];
    p.data[out.w.offset] = 1.5; // latent weight
    p.data[out.w.offset + 1] = -0.7; // e(s') weight
    p.data[out.b.offset] = 0.2;
    let tr = TrialRecord {
        obs: vec![0.0, 0.0, 0.1, 0.0],
        actions: vec![1.0, 0.0, 0.5, 0.5],
        rewards: vec![-0.9, -0.8],
        next_obs: vec![0.1, 0.0, 0.15, 0.05],
    };
    let eps = [0.3f32, -1.0, 2.0];
    // Terms t = 0, 1, 2 decode steps 0 and 1 with these multiplicities.
    let mut draw = ElboDraw::full(2, 1, eps.to_vec());
    draw.decode_counts = vec![2.0, 0.0, 1.0, 1.0, 0.0, 3.0];
    let es = |x: f64, y: f64| (2.0 * x + y - 0.5f64).max(0.0);
    let e = [es(0.1, 0.0), es(0.15, 0.05)];
    let mut recon = 0.0;
    for (t, &eps_t) in eps.iter().enumerate() {
        let mt = 0.5 + (-0.5f64).exp() * eps_t as f64;
        for (tau, &e_tau) in e.iter().enumerate() {
            let pred = 1.5 * mt - 0.7 * e_tau + 0.2;
            recon +=
                draw.decode_counts[t * 2 + tau] as f64 * (pred - tr.rewards[tau] as f64).powi(2);
        }
    }
    for path in [GruPath::Fused, GruPath::Graph] {
        let (st, _) = m.loss_and_grad_with(&[&tr], &draw, path);
        assert!(
            (st.reconstruction - recon).abs() < 1e-5,
            "{st:?} vs {recon}"
        );
        assert!((st.loss - recon).abs() < 1e-5, "{st:?} vs {recon}");
    }
}

#[test]
fn continuous_gradients_fused_equal_autodiff_and_finite_differences() {
    let pr = point_trials(2, 6, 81);
    let refs: Vec<&TrialRecord> = pr.iter().collect();
    let mut rng = Rng::new(5);
    for (k, sp) in [pr_spec(true, true, true), pr_spec(false, false, true)]
        .into_iter()
        .enumerate()
    {
        let m = model(sp, 90 + k as u64);
        let draw = ElboDraw::sample(6, 2, m.spec.config.latent, &mut rng, Some(5), Some(4));
        let (sf, gf) = m.loss_and_grad_with(&refs, &draw, GruPath::Fused);
        let (sg, gg) = m.loss_and_grad_with(&refs, &draw, GruPath::Graph);
        assert!((sf.loss - sg.loss).abs() < 1e-5 * (1.0 + sg.loss.abs()));
        for (i, (a, b)) in gf.iter().zip(&gg).enumerate() {
            assert!(
                (a - b).abs() < 1e-4 * (1.0 + b.abs()),
                "case {k} param {i}: fused {a} vs graph {b}"
            );
        }
        let base = params64(&m);
        let h = 1e-5;
        let mut checked = 0;
        for slot in &m.params.slots {
            for j in (0..slot.len()).step_by(slot.len().div_ceil(3).max(1)) {
                let i = slot.offset + j;
                let mut d = base.clone();
                d[i] += h;
                let up = elbo64_full(&m, &d, &refs, &draw).0;
                d[i] -= 2.0 * h;
                let down = elbo64_full(&m, &d, &refs, &draw).0;
                let fd = (up - down) / (2.0 * h);
                assert!(
                    (fd - gf[i] as f64).abs() < 2e-3 * (1.0 + fd.abs()),
                    "case {k} param {i}: fd {fd} vs {}",
                    gf[i]
                );
                checked += 1;
            }
        }
        // Decoder and state-decoder weights are among the checked parameters.
        assert!(m.state_decoder.len() == 2 && m.reward_state_embed.is_some());
        assert!(checked > 3 * m.params.slots.len() / 2);
        assert!(gf.iter().all(|g| g.is_finite()));
    }
}

#[test]
fn streaming_features_equal_training_posteriors_for_continuous_actions() {
    let m = model(pr_spec(false, false, false), 101);
    let (steps, rows) = (9, 3);
    let trs = point_trials(rows, steps, 103);
    let refs: Vec<&TrialRecord> = trs.iter().collect();
    let (mu, lv) = m.posteriors(&refs);
    let l = m.spec.config.latent;
    let mut st = m.init(rows);
    let mut f = vec![0.0f32; rows * 2 * l];
    let (mut obs, mut next, mut act, mut rew) = (
        vec![0.0f32; rows * 2],
        vec![0.0f32; rows * 2],
        vec![0.0f32; rows * 2],
        vec![0.0f32; rows],
    );
    let ends = vec![false; rows];
    for t in 0..=steps {
        if t > 0 {
            for b in 0..rows {
                let u = t - 1;
                obs[2 * b..2 * b + 2].copy_from_slice(&trs[b].obs[2 * u..2 * u + 2]);
                next[2 * b..2 * b + 2].copy_from_slice(&trs[b].next_obs[2 * u..2 * u + 2]);
                act[2 * b..2 * b + 2].copy_from_slice(&trs[b].actions[2 * u..2 * u + 2]);
                rew[b] = trs[b].rewards[u];
            }
            let before = allocs();
            m.update(
                &mut st,
                &Transition {
                    obs: &obs,
                    action: &act,
                    reward: &rew,
                    next_obs: &next,
                    episode_end: &ends,
                },
            );
            assert_eq!(allocs(), before, "update allocates");
        }
        m.features(&st, &mut f);
        for b in 0..rows {
            let row = t * rows + b;
            for j in 0..l {
                let (a, e) = (f[b * 2 * l + j], mu[row * l + j]);
                assert!((a - e).abs() < 1e-5, "mu t={t} b={b}: {a} vs {e}");
                let (a, e) = (f[b * 2 * l + l + j], lv[row * l + j]);
                assert!((a - e).abs() < 1e-5, "logvar t={t} b={b}: {a} vs {e}");
            }
        }
    }
    // The action matters: changing one row's actions changes its posterior.
    let mut trs2 = trs.clone();
    trs2[0].actions[0] += 0.5;
    let refs2: Vec<&TrialRecord> = trs2.iter().collect();
    let (mu2, _) = m.posteriors(&refs2);
    assert_ne!(mu[rows * l..rows * l + l], mu2[rows * l..rows * l + l]);
}

/// The multi-head model has no parameters of the new decoders (its parameters are drawn
/// in the same order as before they existed, so GridNavi runs are unchanged; the
/// GridNavi learning and resume tests pin the behaviour).
#[test]
fn gridnavi_parameters_are_unchanged_by_the_new_decoders() {
    let m = VaribadModel::new(VaribadSpec::gridnavi(), &mut Rng::new(0));
    assert!(m.reward_state_embed.is_none() && m.state_decoder.is_empty());
    let names: Vec<&str> = m.params.names.iter().map(|s| s.as_str()).collect();
    assert_eq!(names.last(), Some(&"vae.dec.out.b"));
    assert!(names
        .iter()
        .all(|n| !n.contains("sdec") && !n.contains("dec.state")));
}

/// Cost of one VAE gradient at the point-robot preset (15 trials x 300 steps) for the
/// full ELBO and some decode sub-sampling choices:
/// `cargo test --release --test variational point_robot_preset_gradient_timing -- --ignored --nocapture`.
#[test]
#[ignore]
fn point_robot_preset_gradient_timing() {
    let m = VaribadModel::new(VaribadSpec::point_robot(), &mut Rng::new(0));
    let trs = point_trials(15, 300, 3);
    let refs: Vec<&TrialRecord> = trs.iter().collect();
    let mut rng = Rng::new(1);
    for sub in [
        (None, Some(10)),
        (None, Some(30)),
        (None, Some(100)),
        (Some(50), None),
        (None, None),
    ] {
        let _ = m.loss_and_grad(&refs, &mut rng, sub.0, sub.1);
        let n = 3;
        let t0 = std::time::Instant::now();
        for _ in 0..n {
            let _ = m.loss_and_grad(&refs, &mut rng, sub.0, sub.1);
        }
        let dt = t0.elapsed().as_secs_f64() / n as f64;
        println!(
            "VAE loss_and_grad, 15 x 300, subsample (elbos, decodes) {sub:?}: {:.1} ms",
            dt * 1e3
        );
    }
}

/// Reward reconstruction of one ELBO term `t` alone, on the posterior mean (eps = 0,
/// no KL): every trial decodes all its steps from `q_t`.
fn recon_of_term(m: &VaribadModel, trs: &[&TrialRecord], t: usize) -> f64 {
    let (steps, rows) = (trs[0].len(), trs.len());
    let mut draw = ElboDraw::full(
        steps,
        rows,
        vec![0.0; (steps + 1) * rows * m.spec.config.latent],
    );
    draw.elbo_counts.iter_mut().for_each(|c| *c = 0.0);
    for (row, chunk) in draw.decode_counts.chunks_mut(steps).enumerate() {
        let w = if row / rows == t { 1.0 } else { 0.0 };
        chunk.iter_mut().for_each(|c| *c = w);
    }
    m.loss_and_grad_with(trs, &draw, GruPath::Fused)
        .0
        .reconstruction
}

/// The VAE learns task inference on point-robot trials (random actions, dense reward,
/// goals on the semicircle): on held-out trials, the reward predicted from the
/// posterior after the whole trial is much better than from the prior, which cannot
/// know the goal. This is a VAE-only check, not a policy-learning test.
#[test]
fn vae_infers_the_goal_on_point_robot_trials() {
    let mut sp = VaribadSpec::point_robot();
    sp.config.gru_hidden = 32;
    sp.config.state_embed = 16;
    sp.config.action_embed = 8;
    sp.config.reward_embed = 8;
    sp.config.decoder_hidden = vec![32, 32];
    let mut m = VaribadModel::new(sp, &mut Rng::new(3));
    let (steps, n) = (40, 64);
    let train = point_trials(n, steps, 7);
    let test = point_trials(32, steps, 8);
    let test_refs: Vec<&TrialRecord> = test.iter().collect();
    let (prior0, post0) = (
        recon_of_term(&m, &test_refs, 0),
        recon_of_term(&m, &test_refs, steps),
    );
    let mut adam = bamdp::nn::Adam::new(m.params.len(), 1e-8);
    let mut rng = Rng::new(11);
    for _ in 0..300 {
        let idx: Vec<usize> = (0..16).map(|_| rng.below(n as u64) as usize).collect();
        let batch: Vec<&TrialRecord> = idx.iter().map(|&i| &train[i]).collect();
        let (_, g) = m.loss_and_grad(&batch, &mut rng, Some(10), None);
        adam.step(&mut m.params.data, &g, 3e-3);
    }
    let (prior, post) = (
        recon_of_term(&m, &test_refs, 0),
        recon_of_term(&m, &test_refs, steps),
    );
    eprintln!(
        "reward squared error per trial: prior {prior0:.3} -> {prior:.3}, \
         posterior after the trial {post0:.3} -> {post:.3}"
    );
    assert!(
        post < 0.2 * post0,
        "reconstruction did not fall: {post0} -> {post}"
    );
    assert!(
        post < 0.5 * prior,
        "no task inference: prior {prior}, posterior {post}"
    );
}

/// Configuration mistakes about the new decoders are user errors naming the key and
/// what is allowed, never panics.
#[test]
fn decoder_config_errors_name_the_key() {
    use bamdp::config::Config;
    use bamdp::env::{self, Split};
    use bamdp::run::trainer::varibad_model;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let pr = root.join("configs/point_robot/varibad.toml");
    let load = |o: &[&str]| Config::load(&pr, &o.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    let msg = |o: &[&str]| load(o).unwrap_err().to_string();
    let m = msg(&["varibad.reward_input_action=true", "varibad.action_embed=0"]);
    assert!(m.contains("varibad.reward_input_action"), "{m}");
    let m = msg(&["varibad.state_loss_coeff=-1"]);
    assert!(m.contains("varibad.state_loss_coeff"), "{m}");
    let m = msg(&["varibad.state_decoder_hidden=[0]"]);
    assert!(m.contains("varibad.state_decoder_hidden"), "{m}");
    let m = msg(&["varibad.reward_decoder=\"gaussian\""]);
    assert!(m.contains("reward_decoder") && m.contains("mlp"), "{m}");
    // The multi-head decoder needs a grid.
    let cfg = load(&["varibad.reward_decoder=\"multihead\""]).unwrap();
    let e = env::make(&cfg.env, 1, Split::Train, 1, &cfg.env_options()).unwrap();
    let m = varibad_model(&cfg, e.spec()).unwrap_err().to_string();
    assert!(
        m.contains("varibad.reward_decoder") && m.contains("mlp"),
        "{m}"
    );
    // The preset builds the MLP decoder over raw 2-D actions.
    let cfg = load(&[]).unwrap();
    let vm = varibad_model(&cfg, e.spec()).unwrap();
    assert!(vm.spec.continuous_actions && vm.spec.action_dim == 2);
    assert_eq!(vm.spec.config.reward_decoder, RewardDecoderKind::Mlp);
    assert_eq!(vm.spec, {
        // The model's part of [varibad] is the reference's; the training settings
        // (which the model ignores) are the preset's.
        let s = VaribadSpec::point_robot();
        let c = &cfg.varibad;
        VaribadSpec {
            config: VaribadConfig {
                lr: c.lr,
                num_updates: c.num_updates,
                batch_trials: c.batch_trials,
                buffer_trials: c.buffer_trials,
                subsample_elbos: c.subsample_elbos,
                subsample_decodes: c.subsample_decodes,
                ..s.config
            },
            ..s
        }
    });
}
