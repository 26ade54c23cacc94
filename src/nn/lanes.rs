//! Narrow MLPs computed for many samples at once with the samples as vector lanes:
//! [`relu_stack_head`], a stack of ReLU layers and a one-output head per sample
//! (VariBAD's reward decoder over the planner's nested posterior samples: 5 -> 32 -> 32,
//! then the one head of 25 that each sample's next cell selects), and [`mlp`], an MLP
//! with tanh or ReLU hidden layers and a linear output (the planner's actor and critic,
//! GLiBRL's basis networks), hundreds to thousands of samples per planning step.
//!
//! Layer by layer through [`super::host::dense`] the same arithmetic costs far more
//! than its multiply-adds: the GEMM library repacks every layer's inputs, the bias is
//! copied into every output row first, and the hidden values go to memory and back
//! between layers. Here a block of 8 to 32 samples (one or two vectors) goes through
//! every layer inside a few kilobytes of stack, one sample per lane, each weight
//! broadcast once per block and the activation applied on the vector registers.
//!
//! **Bit-identical** to `host::dense` layer by layer followed by the head's dot product
//! `b + h_0 w_0 + h_1 w_1 + ...` (multiplies and adds in order): each layer repeats the
//! arithmetic of the kernel `host::dense` picks for it. Below its GEMM threshold that is
//! the hand-written loop, `b + x_0 w_0 + x_1 w_1 + ...` skipping zero inputs; above it,
//! the GEMM library's micro-kernel, which sums `x_i w_i` from zero in the order of `i`
//! (one fused multiply-add per term where the CPU has FMA, which the library's kernels
//! then use) and adds the bias last. Tests compare the two paths bit for bit, so a
//! change of the library's arithmetic fails a test instead of silently changing plans.
//! Rows stay independent of their batch (the planner's invariant, ARCHITECTURE.md).
//!
//! ```
//! use bamdp::nn::lanes::{relu_stack_head, Head};
//! use bamdp::nn::params::Dense;
//! use bamdp::nn::Params;
//! use bamdp::rng::Rng;
//! let (mut p, mut rng) = (Params::default(), Rng::new(1));
//! let hidden = [Dense::new(&mut p, "l1", 2, 4, 1.0, &mut rng)];
//! // Two heads over the 4 hidden units, laid out head by head, and their biases.
//! let (w, b) = ([1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0], [0.5, -0.5]);
//! // Three samples of two inputs; samples 0-1 use head 1, sample 2 head 0 (groups of 2).
//! let x = [0.1, 0.2, 0.3, 0.4, -1.0, 1.0];
//! let mut out = [0.0; 3];
//! relu_stack_head(&p, &hidden, &x, 3, Head { w: &w, b: &b, per_group: &[1, 0] }, 2, &mut out);
//! assert!(out[0] >= -0.5 && out[2] >= 0.5); // ReLU: a head's output is at least its bias
//! ```

use super::host::{
    takes_gemm, Act, EXP_MAX, EXP_MIN, EXP_POLY, EXP_SHIFT, EXP_SHIFT_BITS, LN2_HI, LN2_LO,
};
use super::params::{Dense, Params};

/// The widest layer (inputs or outputs) the lane kernel takes: its buffers live on the
/// stack. Wider stacks go layer by layer ([`fits`] says which).
pub const MAX_WIDTH: usize = 64;

/// Whether [`relu_stack_head`] takes these hidden layers (at least one, none wider than
/// [`MAX_WIDTH`]).
pub fn fits(hidden: &[Dense]) -> bool {
    !hidden.is_empty()
        && hidden
            .iter()
            .all(|l| l.fan_in() <= MAX_WIDTH && l.fan_out() <= MAX_WIDTH)
}

/// A one-output head per sample: `n_heads` heads' weights laid out head by head
/// (`w[h * width + i]`, `width` the last hidden layer's outputs), their biases, and the
/// head of each group of samples.
#[derive(Clone, Copy, Debug)]
pub struct Head<'a> {
    pub w: &'a [f32],
    pub b: &'a [f32],
    pub per_group: &'a [usize],
}

/// `out[s] = b[h] + relu_stack(x[s]) . w[h]` for the `n` samples `x[s * n_in..]`, where
/// `h = head.per_group[s / group]` and `relu_stack` applies the hidden layers with ReLU.
///
/// # Panics
/// If [`fits`] is false for `hidden`, or a slice is shorter than the sizes say.
pub fn relu_stack_head(
    p: &Params,
    hidden: &[Dense],
    x: &[f32],
    n: usize,
    head: Head<'_>,
    group: usize,
    out: &mut [f32],
) {
    assert!(fits(hidden), "layers wider than {MAX_WIDTH} units");
    let width = hidden[hidden.len() - 1].fan_out();
    assert!(x.len() >= n * hidden[0].fan_in() && out.len() >= n && group > 0);
    assert!(head.per_group.len() * group >= n);
    assert!(head.b.len() * width == head.w.len());
    if n == 0 {
        return;
    }
    let job = Job {
        p,
        hidden,
        x,
        n,
        head,
        group,
        fused: gemm_fuses(),
    };
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the CPU supports AVX-512F and FMA (checked just above).
            unsafe { run_avx512(job, out) };
            return;
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the CPU supports AVX2 and FMA (checked just above).
            unsafe { run_avx2(job, out) };
            return;
        }
    }
    run::<Portable>(job, out);
}

/// Whether the GEMM library's micro-kernel fuses its multiply-adds on this CPU:
/// `matrixmultiply` picks its AVX-512 or its AVX2 + FMA kernel where the CPU has them
/// (both fused), plain AVX or SSE multiplies and adds elsewhere on x86-64, and NEON's
/// fused multiply-add on aarch64.
fn gemm_fuses() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
            || (std::arch::is_x86_feature_detected!("fma")
                && std::arch::is_x86_feature_detected!("avx2"))
    }
    #[cfg(target_arch = "aarch64")]
    {
        true
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        false
    }
}

/// One call of [`relu_stack_head`]: its arguments, and whether GEMM layers fuse.
#[derive(Clone, Copy)]
struct Job<'a> {
    p: &'a Params,
    hidden: &'a [Dense],
    x: &'a [f32],
    n: usize,
    head: Head<'a>,
    group: usize,
    fused: bool,
}

/// The widest layer (inputs or outputs) [`mlp`] takes: its two blocks of 32 samples
/// live on the stack (16 KB each). The GEMM library sums a product's inner dimension
/// in blocks of 256 (its `KC`), bias first from the second block on; the mirror in
/// [`Sum`] holds for up to 256 inputs, which this bound keeps.
pub const MLP_MAX_WIDTH: usize = 128;
const _: () = assert!(MLP_MAX_WIDTH <= 256 && MAX_WIDTH <= 256);

/// Batches with fewer rows than this are better left to `host::dense` layer by layer
/// (the same bits): RL2's 16-env GridNavi rollouts ran 2.5% slower through [`mlp`],
/// whose 32-sample blocks were half idle; the planner's batches are hundreds of rows.
pub const MLP_MIN_ROWS: usize = 64;

/// Whether [`mlp`] takes these layers (at least one, none wider than
/// [`MLP_MAX_WIDTH`]).
pub fn mlp_fits(layers: &[Dense]) -> bool {
    !layers.is_empty()
        && layers
            .iter()
            .all(|l| l.fan_in() <= MLP_MAX_WIDTH && l.fan_out() <= MLP_MAX_WIDTH)
}

/// An MLP for `n` samples `x[s * n_in..]`: the hidden layers with `act`, the last
/// layer linear, `out[s * n_out + o]`; bit-identical to `host::dense` layer by layer
/// (as the actor and critic of `nn::agent` and GLiBRL's basis networks compute it),
/// without the GEMM library's packing, the bias copies and the hidden values' trips
/// through memory.
///
/// # Panics
/// If [`mlp_fits`] is false for `layers`, or a slice is shorter than the sizes say.
pub fn mlp(p: &Params, layers: &[Dense], act: Act, x: &[f32], n: usize, out: &mut [f32]) {
    assert!(mlp_fits(layers), "layers wider than {MLP_MAX_WIDTH} units");
    let n_out = layers[layers.len() - 1].fan_out();
    assert!(x.len() >= n * layers[0].fan_in() && out.len() >= n * n_out);
    if n == 0 {
        return;
    }
    let job = MlpJob {
        p,
        layers,
        act,
        x,
        n,
        fused: gemm_fuses(),
    };
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the CPU supports AVX-512F and FMA (checked just above).
            unsafe { mlp_avx512(job, out) };
            return;
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the CPU supports AVX2 and FMA (checked just above).
            unsafe { mlp_avx2(job, out) };
            return;
        }
    }
    run_mlp::<Portable, 1>(job, out);
}

/// One call of [`mlp`].
#[derive(Clone, Copy)]
struct MlpJob<'a> {
    p: &'a Params,
    layers: &'a [Dense],
    act: Act,
    x: &'a [f32],
    n: usize,
    fused: bool,
}

/// [`run`] with 16 lanes in AVX-512 registers.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
unsafe fn run_avx512(job: Job<'_>, out: &mut [f32]) {
    run::<std::arch::x86_64::__m512>(job, out);
}

/// [`run`] with 8 lanes in AVX2 registers.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn run_avx2(job: Job<'_>, out: &mut [f32]) {
    run::<std::arch::x86_64::__m256>(job, out);
}

/// [`run_mlp`] with two AVX-512 vectors per block (32 samples): each broadcast weight
/// feeds two multiply-adds, and a one-output layer (a critic's value) still has two
/// independent chains. 8 outputs x 2 vectors of accumulators fit the 32 registers.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
unsafe fn mlp_avx512(job: MlpJob<'_>, out: &mut [f32]) {
    run_mlp::<std::arch::x86_64::__m512, 2>(job, out);
}

/// [`run_mlp`] with one AVX2 vector per block: 8 accumulators of two vectors would not
/// fit AVX2's 16 registers.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn mlp_avx2(job: MlpJob<'_>, out: &mut [f32]) {
    run_mlp::<std::arch::x86_64::__m256, 1>(job, out);
}

/// The most lanes of any [`Lane`] type.
const MAX_LANES: usize = 16;

/// Sample slots of an [`mlp`] block: up to two vectors of the widest lane type.
const MLP_SLOTS: usize = 2 * MAX_LANES;

/// A block of samples' values: `0[unit][slot]`, one sample per slot, `W` units.
#[repr(align(64))]
struct Block<const W: usize, const S: usize>([[f32; S]; W]);

impl<const W: usize, const S: usize> Block<W, S> {
    fn new() -> Self {
        Block([[0.0; S]; W])
    }
}

/// A vector of lanes, one sample per lane: the operations the layers need, each lane
/// the same IEEE operation as the scalar loop it replaces. The x86-64 types are only
/// used inside functions compiled for their features ([`run_avx512`], [`mlp_avx2`],
/// ...), into which these `inline(always)` methods are inlined.
trait Lane: Copy {
    /// Lanes per vector.
    const WIDTH: usize;
    unsafe fn splat(v: f32) -> Self;
    /// The first [`Lane::WIDTH`] values of `p` (which has at least that many).
    unsafe fn load(p: &[f32]) -> Self;
    /// Into the first [`Lane::WIDTH`] values of `p`.
    unsafe fn store(self, p: &mut [f32]);
    unsafe fn add(self, o: Self) -> Self;
    /// `self + x * w`, the product rounded before the sum.
    unsafe fn plus_product(self, x: Self, w: Self) -> Self;
    /// `fma(x, w, self)`, rounded once.
    unsafe fn plus_fused(self, x: Self, w: Self) -> Self;
    /// `self + x * w` in the lanes where `x != 0` (NaN included), `self` elsewhere.
    unsafe fn plus_product_if_nonzero(self, x: Self, w: Self) -> Self;
    unsafe fn sub(self, o: Self) -> Self;
    unsafe fn mul(self, o: Self) -> Self;
    unsafe fn div(self, o: Self) -> Self;
    /// `f32::clamp` in every lane (NaN stays NaN).
    unsafe fn clamp(self, lo: f32, hi: f32) -> Self;
    /// `f32::from_bits(((t.to_bits() as i32 - EXP_SHIFT_BITS + 127) << 23) as u32)`:
    /// `2^n` from `t = n + EXP_SHIFT` (see `host::exp`).
    unsafe fn pow2_of_shifted(self) -> Self;
    /// `f32::max(self, 0)` as `host`'s ReLU computes it (NaN to 0).
    unsafe fn relu(self) -> Self;
}

/// `host::exp` on every lane: the same operations in the same order, so the same bits.
#[inline(always)]
unsafe fn exp<V: Lane>(x: V) -> V {
    let x = x.clamp(EXP_MIN, EXP_MAX);
    let t = x
        .mul(V::splat(std::f32::consts::LOG2_E))
        .add(V::splat(EXP_SHIFT));
    let n = t.sub(V::splat(EXP_SHIFT));
    let r = x.sub(n.mul(V::splat(LN2_HI))).sub(n.mul(V::splat(LN2_LO)));
    let [c5, c4, c3, c2, c1] = EXP_POLY.map(|c| V::splat(c));
    let p = c5
        .mul(r)
        .add(c4)
        .mul(r)
        .add(c3)
        .mul(r)
        .add(c2)
        .mul(r)
        .add(c1)
        .mul(r);
    let p = p.add(V::splat(0.5));
    let e = p.mul(r.mul(r)).add(r).add(V::splat(1.0));
    e.mul(t.pow2_of_shifted())
}

/// [`Act::apply`] on every lane: `host::tanh` (`1 - 2 / (exp(2x) + 1)`) and ReLU with
/// the same operations in the same order, so the same bits as `host::dense`.
#[inline(always)]
unsafe fn activate<V: Lane>(act: Act, v: V) -> V {
    match act {
        Act::None => v,
        Act::Relu => v.relu(),
        Act::Tanh => {
            let e = exp(V::splat(2.0).mul(v));
            V::splat(1.0).sub(V::splat(2.0).div(e.add(V::splat(1.0))))
        }
    }
}

/// `impl Lane` for an x86-64 vector type from its intrinsics; `|s, x, p| select` gives
/// `s + p` in the lanes where `x != 0` and `s` elsewhere (mask registers on AVX-512, a
/// blend on AVX2).
#[cfg(target_arch = "x86_64")]
macro_rules! x86_lane {
    ($t:ident, $width:literal, $set1:ident, $load:ident, $store:ident, $add:ident,
     $mul:ident, $fmadd:ident, $sub:ident, $div:ident, $min:ident, $max:ident,
     $zero:ident, $to_int:ident, $from_int:ident, $set1_int:ident, $add_int:ident,
     $shift_left:ident, |$s:ident, $x:ident, $p:ident| $select:expr) => {
        impl Lane for std::arch::x86_64::$t {
            const WIDTH: usize = $width;
            #[inline(always)]
            unsafe fn splat(v: f32) -> Self {
                std::arch::x86_64::$set1(v)
            }
            #[inline(always)]
            unsafe fn load(p: &[f32]) -> Self {
                debug_assert!(p.len() >= $width);
                std::arch::x86_64::$load(p.as_ptr())
            }
            #[inline(always)]
            unsafe fn store(self, p: &mut [f32]) {
                debug_assert!(p.len() >= $width);
                std::arch::x86_64::$store(p.as_mut_ptr(), self)
            }
            #[inline(always)]
            unsafe fn add(self, o: Self) -> Self {
                std::arch::x86_64::$add(self, o)
            }
            #[inline(always)]
            unsafe fn plus_product(self, x: Self, w: Self) -> Self {
                use std::arch::x86_64::*;
                $add(self, $mul(x, w))
            }
            #[inline(always)]
            unsafe fn plus_fused(self, x: Self, w: Self) -> Self {
                std::arch::x86_64::$fmadd(x, w, self)
            }
            #[inline(always)]
            unsafe fn plus_product_if_nonzero(self, x: Self, w: Self) -> Self {
                use std::arch::x86_64::*;
                let ($s, $x, $p) = (self, x, $mul(x, w));
                $select
            }
            #[inline(always)]
            unsafe fn sub(self, o: Self) -> Self {
                std::arch::x86_64::$sub(self, o)
            }
            #[inline(always)]
            unsafe fn mul(self, o: Self) -> Self {
                std::arch::x86_64::$mul(self, o)
            }
            #[inline(always)]
            unsafe fn div(self, o: Self) -> Self {
                std::arch::x86_64::$div(self, o)
            }
            #[inline(always)]
            unsafe fn clamp(self, lo: f32, hi: f32) -> Self {
                use std::arch::x86_64::*;
                // MINPS / MAXPS return their second operand when either is NaN.
                $min($set1(hi), $max($set1(lo), self))
            }
            #[inline(always)]
            unsafe fn pow2_of_shifted(self) -> Self {
                use std::arch::x86_64::*;
                let n = $add_int($to_int(self), $set1_int(127 - EXP_SHIFT_BITS));
                $from_int($shift_left::<23>(n))
            }
            #[inline(always)]
            unsafe fn relu(self) -> Self {
                use std::arch::x86_64::*;
                $max(self, $zero())
            }
        }
    };
}

#[cfg(target_arch = "x86_64")]
x86_lane!(
    __m512,
    16,
    _mm512_set1_ps,
    _mm512_loadu_ps,
    _mm512_storeu_ps,
    _mm512_add_ps,
    _mm512_mul_ps,
    _mm512_fmadd_ps,
    _mm512_sub_ps,
    _mm512_div_ps,
    _mm512_min_ps,
    _mm512_max_ps,
    _mm512_setzero_ps,
    _mm512_castps_si512,
    _mm512_castsi512_ps,
    _mm512_set1_epi32,
    _mm512_add_epi32,
    _mm512_slli_epi32,
    |s, x, p| _mm512_mask_add_ps(
        s,
        _mm512_cmp_ps_mask::<_CMP_NEQ_UQ>(x, _mm512_setzero_ps()),
        s,
        p
    )
);

#[cfg(target_arch = "x86_64")]
x86_lane!(
    __m256,
    8,
    _mm256_set1_ps,
    _mm256_loadu_ps,
    _mm256_storeu_ps,
    _mm256_add_ps,
    _mm256_mul_ps,
    _mm256_fmadd_ps,
    _mm256_sub_ps,
    _mm256_div_ps,
    _mm256_min_ps,
    _mm256_max_ps,
    _mm256_setzero_ps,
    _mm256_castps_si256,
    _mm256_castsi256_ps,
    _mm256_set1_epi32,
    _mm256_add_epi32,
    _mm256_slli_epi32,
    |s, x, p| _mm256_blendv_ps(
        s,
        _mm256_add_ps(s, p),
        _mm256_cmp_ps::<_CMP_NEQ_UQ>(x, _mm256_setzero_ps())
    )
);

/// Plain `f32` lanes for CPUs without AVX2 and FMA (and other architectures).
#[derive(Clone, Copy)]
struct Portable([f32; 8]);

impl Lane for Portable {
    const WIDTH: usize = 8;
    #[inline(always)]
    unsafe fn splat(v: f32) -> Self {
        Portable([v; 8])
    }
    #[inline(always)]
    unsafe fn load(p: &[f32]) -> Self {
        let mut v = [0.0; 8];
        v.copy_from_slice(&p[..8]);
        Portable(v)
    }
    #[inline(always)]
    unsafe fn store(self, p: &mut [f32]) {
        p[..8].copy_from_slice(&self.0);
    }
    #[inline(always)]
    unsafe fn add(self, o: Self) -> Self {
        Portable(std::array::from_fn(|l| self.0[l] + o.0[l]))
    }
    #[inline(always)]
    unsafe fn plus_product(self, x: Self, w: Self) -> Self {
        Portable(std::array::from_fn(|l| self.0[l] + x.0[l] * w.0[l]))
    }
    #[inline(always)]
    unsafe fn plus_fused(self, x: Self, w: Self) -> Self {
        Portable(std::array::from_fn(|l| x.0[l].mul_add(w.0[l], self.0[l])))
    }
    #[inline(always)]
    unsafe fn plus_product_if_nonzero(self, x: Self, w: Self) -> Self {
        Portable(std::array::from_fn(|l| {
            if x.0[l] != 0.0 {
                self.0[l] + x.0[l] * w.0[l]
            } else {
                self.0[l]
            }
        }))
    }
    #[inline(always)]
    unsafe fn sub(self, o: Self) -> Self {
        Portable(std::array::from_fn(|l| self.0[l] - o.0[l]))
    }
    #[inline(always)]
    unsafe fn mul(self, o: Self) -> Self {
        Portable(std::array::from_fn(|l| self.0[l] * o.0[l]))
    }
    #[inline(always)]
    unsafe fn div(self, o: Self) -> Self {
        Portable(std::array::from_fn(|l| self.0[l] / o.0[l]))
    }
    #[inline(always)]
    unsafe fn clamp(self, lo: f32, hi: f32) -> Self {
        Portable(self.0.map(|v| v.clamp(lo, hi)))
    }
    #[inline(always)]
    unsafe fn pow2_of_shifted(self) -> Self {
        Portable(
            self.0.map(|t| {
                f32::from_bits(((t.to_bits() as i32 - EXP_SHIFT_BITS + 127) << 23) as u32)
            }),
        )
    }
    #[inline(always)]
    unsafe fn relu(self) -> Self {
        Portable(self.0.map(|v| Act::Relu.apply(v)))
    }
}

/// How a layer sums its terms, mirroring the kernel `host::dense` uses for it.
#[derive(Clone, Copy)]
enum Sum {
    /// The hand-written loop: from the bias, `+ x_i w_i` (rounded product), zero
    /// inputs skipped.
    FromBiasSkippingZeros,
    /// The GEMM micro-kernel: from zero, `fma(x_i, w_i, acc)`, then the bias added.
    FusedThenBias,
    /// The GEMM micro-kernel without FMA: from zero, `+ x_i w_i`, then the bias.
    PlainThenBias,
}

/// One layer's weights (`w[i * n_out + o]`), biases, and how [`Sum`] it is summed.
#[derive(Clone, Copy)]
struct Weights<'a> {
    w: &'a [f32],
    bias: &'a [f32],
    n_in: usize,
    n_out: usize,
    sum: Sum,
}

impl<'a> Weights<'a> {
    /// `layer`'s weights, summed as `host::dense` sums it (`fused`: whether the GEMM
    /// library's kernel fuses on this CPU).
    fn of(p: &'a Params, layer: &Dense, fused: bool) -> Self {
        let (n_in, n_out) = (layer.fan_in(), layer.fan_out());
        let sum = if !takes_gemm(n_in, n_out) {
            Sum::FromBiasSkippingZeros
        } else if fused {
            Sum::FusedThenBias
        } else {
            Sum::PlainThenBias
        };
        Weights {
            w: p.get(layer.w),
            bias: p.get(layer.b),
            n_in,
            n_out,
            sum,
        }
    }
}

#[inline(always)]
fn run<V: Lane>(job: Job<'_>, out: &mut [f32]) {
    let Job {
        p,
        hidden,
        x,
        n,
        head,
        group,
        fused,
    } = job;
    let lanes = V::WIDTH;
    let n_in = hidden[0].fan_in();
    let width = hidden[hidden.len() - 1].fan_out();
    // On the stack (12 KB): no allocation per planning step.
    type B = Block<MAX_WIDTH, MAX_LANES>;
    let (mut a, mut b, mut head_w) = (B::new(), B::new(), B::new());
    let mut head_b = [0.0f32; MAX_LANES];
    let mut heads = [usize::MAX; MAX_LANES];
    let mut acc_out = [0.0f32; MAX_LANES];
    for s0 in (0..n).step_by(lanes) {
        let live = lanes.min(n - s0);
        // Inputs transposed (idle lanes of the last block repeat its last sample), and
        // each lane's head weights; a lane whose head is unchanged (the usual case: a
        // row's nested samples share the row's next cell) refills nothing.
        for l in 0..lanes {
            let s = s0 + l.min(live - 1);
            for (i, xi) in a.0[..n_in].iter_mut().enumerate() {
                xi[l] = x[s * n_in + i];
            }
            let h = head.per_group[s / group];
            if heads[l] != h {
                heads[l] = h;
                head_b[l] = head.b[h];
                for (i, wi) in head_w.0[..width].iter_mut().enumerate() {
                    wi[l] = head.w[h * width + i];
                }
            }
        }
        let (mut src, mut dst) = (&mut a, &mut b);
        for l in hidden {
            layer::<V, 1, MAX_WIDTH, MAX_LANES>(Weights::of(p, l, fused), Act::Relu, src, dst);
            std::mem::swap(&mut src, &mut dst);
        }
        // SAFETY (every `Lane` call here and below): `run` and `run_mlp` are only
        // instantiated with a lane type the CPU supports (see `relu_stack_head`, `mlp`).
        unsafe {
            let mut acc = V::load(&head_b);
            for (h, w) in src.0[..width].iter().zip(&head_w.0[..width]) {
                acc = acc.plus_product(V::load(h), V::load(w));
            }
            acc.store(&mut acc_out);
        }
        out[s0..s0 + live].copy_from_slice(&acc_out[..live]);
    }
}

/// [`mlp`] with `R` vectors of lanes per block of samples.
#[inline(always)]
fn run_mlp<V: Lane, const R: usize>(job: MlpJob<'_>, out: &mut [f32]) {
    let MlpJob {
        p,
        layers,
        act,
        x,
        n,
        fused,
    } = job;
    let slots = R * V::WIDTH;
    debug_assert!(slots <= MLP_SLOTS);
    let n_in = layers[0].fan_in();
    let n_out = layers[layers.len() - 1].fan_out();
    // On the stack (32 KB): no allocation per call.
    type B = Block<MLP_MAX_WIDTH, MLP_SLOTS>;
    let (mut a, mut b) = (B::new(), B::new());
    for s0 in (0..n).step_by(slots) {
        let live = slots.min(n - s0);
        // Inputs transposed; idle slots of the last block repeat its last sample.
        for l in 0..slots {
            let xs = &x[(s0 + l.min(live - 1)) * n_in..][..n_in];
            for (ai, &xi) in a.0[..n_in].iter_mut().zip(xs) {
                ai[l] = xi;
            }
        }
        let (mut src, mut dst) = (&mut a, &mut b);
        for (i, l) in layers.iter().enumerate() {
            let act = if i + 1 == layers.len() {
                Act::None
            } else {
                act
            };
            layer::<V, R, MLP_MAX_WIDTH, MLP_SLOTS>(Weights::of(p, l, fused), act, src, dst);
            std::mem::swap(&mut src, &mut dst);
        }
        for l in 0..live {
            let o = &mut out[(s0 + l) * n_out..][..n_out];
            for (oj, yj) in o.iter_mut().zip(&src.0[..n_out]) {
                *oj = yj[l];
            }
        }
    }
}

/// `y[o] = act(layer(x)[o])` for every sample slot, outputs in blocks of 8 (8 x R
/// independent chains of multiply-adds hide their latency), the rest in one block of
/// as many.
#[inline(always)]
fn layer<V: Lane, const R: usize, const W: usize, const S: usize>(
    lw: Weights<'_>,
    act: Act,
    x: &Block<W, S>,
    y: &mut Block<W, S>,
) {
    let n_out = lw.n_out;
    let mut o0 = 0;
    while o0 + 8 <= n_out {
        outputs::<V, R, 8, W, S>(lw, act, o0, x, y);
        o0 += 8;
    }
    match n_out - o0 {
        0 => {}
        1 => outputs::<V, R, 1, W, S>(lw, act, o0, x, y),
        2 => outputs::<V, R, 2, W, S>(lw, act, o0, x, y),
        3 => outputs::<V, R, 3, W, S>(lw, act, o0, x, y),
        4 => outputs::<V, R, 4, W, S>(lw, act, o0, x, y),
        5 => outputs::<V, R, 5, W, S>(lw, act, o0, x, y),
        6 => outputs::<V, R, 6, W, S>(lw, act, o0, x, y),
        _ => outputs::<V, R, 7, W, S>(lw, act, o0, x, y),
    }
}

/// Outputs `o0..o0 + B` of a layer for every sample slot, from `x` into `y`, with
/// `act` applied.
#[inline(always)]
fn outputs<V: Lane, const R: usize, const B: usize, const W: usize, const S: usize>(
    lw: Weights<'_>,
    act: Act,
    o0: usize,
    x: &Block<W, S>,
    y: &mut Block<W, S>,
) {
    // SAFETY: as in `run`.
    unsafe {
        let mut acc = [[V::splat(0.0); R]; B];
        // One loop per kind of sum (`add_terms` with a closure each, inlined), so no
        // branch sits in the inner loop: a branch there kept LLVM from vectorising.
        let bias = &lw.bias[o0..o0 + B];
        match lw.sum {
            Sum::FromBiasSkippingZeros => {
                for (acc_k, &b) in acc.iter_mut().zip(bias) {
                    *acc_k = [V::splat(b); R];
                }
                add_terms(lw, o0, x, &mut acc, |a, x, w| {
                    a.plus_product_if_nonzero(x, w)
                });
            }
            Sum::FusedThenBias | Sum::PlainThenBias => {
                if matches!(lw.sum, Sum::FusedThenBias) {
                    add_terms(lw, o0, x, &mut acc, |a, x, w| a.plus_fused(x, w));
                } else {
                    add_terms(lw, o0, x, &mut acc, |a, x, w| a.plus_product(x, w));
                }
                for (acc_k, &b) in acc.iter_mut().zip(bias) {
                    for v in acc_k {
                        *v = v.add(V::splat(b));
                    }
                }
            }
        }
        for (acc_k, yk) in acc.iter().zip(&mut y.0[o0..o0 + B]) {
            for (r, v) in acc_k.iter().enumerate() {
                v.store(&mut yk[r * V::WIDTH..]);
            }
        }
        // The activation on the stored vectors, reloaded: applied to `acc` directly, it
        // kept LLVM from holding the accumulators in registers through the loop above.
        if !matches!(act, Act::None) {
            for yk in &mut y.0[o0..o0 + B] {
                for r in 0..R {
                    let v = &mut yk[r * V::WIDTH..];
                    activate(act, V::load(v)).store(v);
                }
            }
        }
    }
}

/// `acc[k][r] = step(acc[k][r], x_i, w_ik)` over the inputs `i` in order, for outputs
/// `o0..o0 + B` and the `R` vectors of sample slots.
#[inline(always)]
fn add_terms<V: Lane, const R: usize, const B: usize, const W: usize, const S: usize>(
    lw: Weights<'_>,
    o0: usize,
    x: &Block<W, S>,
    acc: &mut [[V; R]; B],
    step: impl Fn(V, V, V) -> V,
) {
    for (i, xi) in x.0[..lw.n_in].iter().enumerate() {
        // SAFETY: as in `run`.
        let xv: [V; R] = std::array::from_fn(|r| unsafe { V::load(&xi[r * V::WIDTH..]) });
        let wi = &lw.w[i * lw.n_out + o0..][..B];
        for (acc_k, &wk) in acc.iter_mut().zip(wi) {
            // SAFETY: as in `run`.
            let wv = unsafe { V::splat(wk) };
            for (a, &xr) in acc_k.iter_mut().zip(&xv) {
                *a = step(*a, xr, wv);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::host::{self, Act};
    use crate::rng::Rng;

    /// The layer-by-layer path this kernel must equal: `host::dense` per layer, then
    /// each sample's head as the planner computed it before.
    fn reference(job: Job<'_>) -> Vec<f32> {
        let Job {
            p,
            hidden,
            x,
            n,
            head,
            group,
            ..
        } = job;
        let mut cur = x[..n * hidden[0].fan_in()].to_vec();
        for layer in hidden {
            let mut next = vec![0.0; n * layer.fan_out()];
            host::dense(p, layer, &cur, n, Act::Relu, &mut next);
            cur = next;
        }
        let width = hidden[hidden.len() - 1].fan_out();
        (0..n)
            .map(|s| {
                let h = head.per_group[s / group];
                let mut out = head.b[h];
                for (&hi, &wi) in cur[s * width..(s + 1) * width]
                    .iter()
                    .zip(&head.w[h * width..(h + 1) * width])
                {
                    out += hi * wi;
                }
                out
            })
            .collect()
    }

    /// The public entry's output, and each lane type's that this CPU can run (the
    /// entry picks only the widest).
    fn every_lane_type(job: Job<'_>) -> Vec<(&'static str, Vec<f32>)> {
        let Job {
            p,
            hidden,
            x,
            n,
            head,
            group,
            ..
        } = job;
        let mut outs = Vec::new();
        let mut out = vec![f32::NAN; n];
        relu_stack_head(p, hidden, x, n, head, group, &mut out);
        outs.push(("relu_stack_head", out));
        let mut out = vec![f32::NAN; n];
        run::<Portable>(job, &mut out);
        outs.push(("portable", out));
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            if has!("avx2") && has!("fma") {
                let mut out = vec![f32::NAN; n];
                // SAFETY: the CPU supports AVX2 and FMA (checked just above).
                unsafe { run_avx2(job, &mut out) };
                outs.push(("avx2", out));
            }
            if has!("avx512f") && has!("fma") {
                let mut out = vec![f32::NAN; n];
                // SAFETY: the CPU supports AVX-512F and FMA (checked just above).
                unsafe { run_avx512(job, &mut out) };
                outs.push(("avx512", out));
            }
        }
        outs
    }

    fn net(sizes: &[usize], rng: &mut Rng) -> (Params, Vec<Dense>) {
        let mut p = Params::default();
        let layers = sizes
            .windows(2)
            .enumerate()
            .map(|(i, w)| Dense::new(&mut p, &format!("l{i}"), w[0], w[1], 1.0, rng))
            .collect::<Vec<_>>();
        // Non-zero biases, so the bias's place in the sum matters.
        for l in &layers {
            for v in &mut p.data[l.b.range()] {
                *v = rng.normal() as f32 * 0.5;
            }
        }
        (p, layers)
    }

    #[test]
    fn equals_the_layer_by_layer_path_bit_for_bit() {
        let mut rng = Rng::new(7);
        // VariBAD's decoder (5 -> 32 -> 32: a hand-written layer, then a GEMM one), a
        // stack of small layers, an odd width (blocks of 8 plus single outputs), and
        // sample counts that leave idle lanes; some exact-zero inputs.
        for sizes in [&[5, 32, 32][..], &[3, 7, 5], &[9, 40, 19, 33], &[64, 64]] {
            let (p, hidden) = net(sizes, &mut rng);
            let width = *sizes.last().unwrap();
            let n_heads = 25;
            let w: Vec<f32> = (0..n_heads * width).map(|_| rng.normal() as f32).collect();
            let b: Vec<f32> = (0..n_heads).map(|_| rng.normal() as f32).collect();
            for (n, group) in [(1usize, 1usize), (8, 8), (37, 8), (200, 3)] {
                let per_group: Vec<usize> = (0..n.div_ceil(group))
                    .map(|_| rng.below(n_heads as u64) as usize)
                    .collect();
                let x: Vec<f32> = (0..n * sizes[0])
                    .map(|i| {
                        if i % 11 == 3 {
                            0.0
                        } else {
                            rng.normal() as f32
                        }
                    })
                    .collect();
                let head = Head {
                    w: &w,
                    b: &b,
                    per_group: &per_group,
                };
                let job = Job {
                    p: &p,
                    hidden: &hidden,
                    x: &x,
                    n,
                    head,
                    group,
                    fused: gemm_fuses(),
                };
                let want = reference(job);
                for (kind, out) in every_lane_type(job) {
                    for (s, (o, r)) in out.iter().zip(&want).enumerate() {
                        assert_eq!(
                            o.to_bits(),
                            r.to_bits(),
                            "{kind}, sizes {sizes:?}, {n} samples, sample {s}: {o} vs {r}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn a_sample_does_not_depend_on_its_block() {
        let mut rng = Rng::new(3);
        let (p, hidden) = net(&[5, 32, 32], &mut rng);
        let w: Vec<f32> = (0..4 * 32).map(|_| rng.normal() as f32).collect();
        let b = [0.1, 0.2, 0.3, 0.4];
        let x: Vec<f32> = (0..40 * 5).map(|_| rng.normal() as f32).collect();
        let per_group: Vec<usize> = (0..40).map(|s| s % 4).collect();
        let head = Head {
            w: &w,
            b: &b,
            per_group: &per_group,
        };
        let mut all = vec![0.0; 40];
        relu_stack_head(&p, &hidden, &x, 40, head, 1, &mut all);
        for s in [0, 13, 39] {
            let one = Head {
                per_group: &per_group[s..s + 1],
                ..head
            };
            let mut out = [0.0];
            relu_stack_head(&p, &hidden, &x[s * 5..(s + 1) * 5], 1, one, 1, &mut out);
            assert_eq!(out[0].to_bits(), all[s].to_bits(), "sample {s}");
        }
    }

    #[test]
    fn fits_only_narrow_non_empty_stacks() {
        let mut rng = Rng::new(1);
        assert!(!fits(&[]));
        assert!(fits(&net(&[5, 64, 64], &mut rng).1));
        assert!(!fits(&net(&[5, 65], &mut rng).1));
        assert!(!fits(&net(&[128, 32], &mut rng).1));
    }

    /// [`mlp`] through each lane type this CPU can run, and the public entry.
    fn every_mlp_lane_type(job: MlpJob<'_>, n_out: usize) -> Vec<(&'static str, Vec<f32>)> {
        let MlpJob {
            p,
            layers,
            act,
            x,
            n,
            ..
        } = job;
        let fresh = || vec![f32::NAN; n * n_out];
        let mut outs = Vec::new();
        let mut out = fresh();
        mlp(p, layers, act, x, n, &mut out);
        outs.push(("mlp", out));
        let mut out = fresh();
        run_mlp::<Portable, 1>(job, &mut out);
        outs.push(("portable", out));
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            if has!("avx2") && has!("fma") {
                let mut out = fresh();
                // SAFETY: the CPU supports AVX2 and FMA (checked just above).
                unsafe { mlp_avx2(job, &mut out) };
                outs.push(("avx2", out));
            }
            if has!("avx512f") && has!("fma") {
                let mut out = fresh();
                // SAFETY: the CPU supports AVX-512F and FMA (checked just above).
                unsafe { mlp_avx512(job, &mut out) };
                outs.push(("avx512", out));
            }
        }
        outs
    }

    #[test]
    fn mlp_equals_host_dense_layer_by_layer_bit_for_bit() {
        let mut rng = Rng::new(11);
        // GLiBRL's actor and critic on GridNavi (35 -> 128 -> 128 -> 5 or 1, tanh) and
        // its basis network (9 -> 64 -> 64 -> 15, ReLU); GridNavi's small policies (GEMM
        // and hand-written layers mixed); odd widths for every remainder block.
        let cases: [(&[usize], Act); 6] = [
            (&[35, 128, 128, 5], Act::Tanh),
            (&[35, 128, 128, 1], Act::Tanh),
            (&[9, 64, 64, 15], Act::Relu),
            (&[12, 32, 5], Act::Tanh),
            (&[3, 7, 13, 2], Act::Relu),
            (&[17, 6], Act::Tanh),
        ];
        for (sizes, act) in cases {
            let (p, layers) = net(sizes, &mut rng);
            let n_out = *sizes.last().unwrap();
            for n in [1usize, 7, 16, 33, 200] {
                let x: Vec<f32> = (0..n * sizes[0])
                    .map(|i| if i % 7 == 2 { 0.0 } else { rng.normal() as f32 })
                    .collect();
                // host::dense layer by layer, the last one linear.
                let mut want = x.clone();
                for (i, l) in layers.iter().enumerate() {
                    let a = if i + 1 == layers.len() {
                        Act::None
                    } else {
                        act
                    };
                    let mut next = vec![0.0; n * l.fan_out()];
                    host::dense(&p, l, &want, n, a, &mut next);
                    want = next;
                }
                let job = MlpJob {
                    p: &p,
                    layers: &layers,
                    act,
                    x: &x,
                    n,
                    fused: gemm_fuses(),
                };
                for (kind, out) in every_mlp_lane_type(job, n_out) {
                    for (j, (o, w)) in out.iter().zip(&want).enumerate() {
                        assert_eq!(
                            o.to_bits(),
                            w.to_bits(),
                            "{kind}, sizes {sizes:?} {act:?}, {n} samples, output {j}: {o} vs {w}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn mlp_fits_only_narrow_non_empty_stacks() {
        let mut rng = Rng::new(2);
        assert!(!mlp_fits(&[]));
        assert!(mlp_fits(&net(&[35, 128, 128, 5], &mut rng).1));
        assert!(!mlp_fits(&net(&[35, 256, 5], &mut rng).1));
        assert!(!mlp_fits(&net(&[129, 5], &mut rng).1));
    }
}
