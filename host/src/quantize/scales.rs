//! Each output channel's weight scale: large enough for the bias and the requantization to
//! fit their integers, and chosen so that tract's `f32` requantization computes exactly the
//! engine's (bit-identical outputs).

use serde::Serialize;

/// How each channel's weight scale is chosen.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Scales {
    /// `max |w| / 127`, raised where needed so that tract's `f32` requantization is exact
    /// and tract and the engine give bit-identical outputs ([`tract_friendly_scale`]; where
    /// no exact scale is in reach, a rare near-tie can still part them by 1 LSB).
    #[default]
    Exact,
    /// `max |w| / 127` as it is. tract and the engine then differ by 1-3 LSB on some
    /// outputs (`docs/quantization.md`); it exists to test `verify`'s bounds.
    Plain,
}

/// The largest quantized bias a channel may have: `2^30` leaves the accumulator another
/// `2^30` for the products, which need at most `taps · 2^15`. See [`weight_scale`].
pub(super) const BIAS_LIMIT: f64 = (1u32 << 30) as f64;

/// The smallest requantization scale a channel may have: `2^-30`, above the `2^-32` that
/// [`Requant`]'s largest shift can express, with room for `f32` rounding. See
/// [`weight_scale`].
pub(super) const MIN_REQUANT: f64 = 1.0 / (1u32 << 30) as f64;

/// The weight scale of one output channel: `max |w| / 127`, raised where that would put the
/// bias beyond [`BIAS_LIMIT`] or the requantization scale below [`MIN_REQUANT`].
///
/// Why: a layer whose input calibration saw at or near zero everywhere (after a dead ReLU
/// layer, say) has a tiny input scale, down to [`ActQuant::from_range`]'s floor of
/// `1e-8 / 255`. Its bias at `in_scale · w_scale` can then exceed `i32`, and its
/// requantization scale fall below what a shift can express; quantizing failed on such
/// models (an untrained network in CI did it). The raised scale moves the output by at most
/// `taps · 255 · 2^-31` of the bias, or `taps · 255 · 2^-31` of an output step, about 1e-4
/// for a 3x3x128 kernel: nothing that survives rounding. The shipped model is far from both
/// bounds: it re-quantizes to the same blob and ONNX bytes as before.
pub(super) fn weight_scale(row: &[f32], bias: f32, in_scale: f32, out_scale: f32) -> f32 {
    let max_abs = row.iter().fold(0f32, |m, v| m.max(v.abs()));
    let from_weights = if max_abs > 0.0 { max_abs / 127.0 } else { 1.0 };
    let for_bias = bias.abs() as f64 / (in_scale as f64 * BIAS_LIMIT);
    let for_requant = MIN_REQUANT * out_scale as f64 / in_scale as f64;
    from_weights.max(for_bias.max(for_requant) as f32)
}

/// Requantization scales are made multiples of `2^-REQUANT_QUANTUM_EXP`.
///
/// Why: tract requantizes a convolution's accumulator as `round(acc · scale)` with the
/// product in `f32`, the engine exactly; both round ties to even. An output that int8 does
/// not saturate has `|acc · scale| < 2^8` (the zero point is at most 255 steps from either
/// bound); with `scale = n · 2^-16`, `|acc · n| < 2^24`, which `f32` holds exactly, so the
/// product is exact in both and they round alike. With any other scale `f32` rounds the
/// product first, and near a tie (`k + 0.5 ± 2^-17`) the two runtimes can part.
pub(super) const REQUANT_QUANTUM_EXP: i32 = 16;

/// The requantization scale as each of tract's rewrites computes it, in `f32`: the ONNX
/// graph's `(in_scale · w) / out_scale`, and the same with the division by a constant turned
/// into a product with its reciprocal; for the first layer (`first`) also
/// `w · (in_scale / out_scale)` and `w · (in_scale · (1 / out_scale))`, where tract folds
/// the two activation scales first. Which formula tract runs where was measured with
/// `examples/layer_diff.rs` (`LAYER_DIFF_SCALES`; `docs/quantization.md` has the counts):
/// the folded ones only ever in the first layer, and asking them of every layer leaves far
/// more channels without an exact scale, so they are asked of the first only.
pub(super) fn tract_scales(in_scale: f32, w: f32, out_scale: f32, first: bool) -> [f32; 4] {
    let recip = 1.0 / out_scale;
    let (onnx, rewritten) = ((in_scale * w) / out_scale, (in_scale * w) * recip);
    if first {
        [
            onnx,
            rewritten,
            w * (in_scale / out_scale),
            w * (in_scale * recip),
        ]
    } else {
        [onnx, rewritten, onnx, rewritten]
    }
}

/// The smallest weight scale `>= want` whose requantization scale is a multiple of `2^-16`
/// ([`REQUANT_QUANTUM_EXP`]) and the same `f32` however tract computes it
/// ([`tract_scales`]). The engine gets that value exactly ([`Requant::from_f32`]). Without
/// it the formulas differ by one `f32` step on about a third of the channels, and near-ties
/// round one way in the engine and the other in tract (`docs/quantization.md`).
///
/// The weights are then quantized with the larger scale (coarser by a median 0.4% of a
/// step), never beyond ±127, since the scale only grows. Found by walking up from `want`
/// one `f32` step at a time, as the `f32` roundings skip some multiples. `None` when none
/// is reached within `reach` ([`Reach`]; always so for requantization scales below
/// `2^-16`), which happens where the roundings skip every multiple in reach for a layer's
/// pair of activation scales; [`tract_friendly_scale`] then falls back to
/// [`agreeing_weight_scale`].
pub(super) fn exact_weight_scale(
    want: f32,
    in_scale: f32,
    out_scale: f32,
    first: bool,
    reach: Reach,
) -> Option<f32> {
    let quantum = 2f32.powi(-REQUANT_QUANTUM_EXP);
    if !(want > 0.0 && want.is_finite()) {
        return None;
    }
    let mut w = want;
    for _ in 0..reach.steps() {
        let all = tract_scales(in_scale, w, out_scale, first);
        let r = all[0];
        // Dividing by a power of two is exact, so `fract` sees the true remainder.
        if r >= quantum && (r / quantum).fract() == 0.0 && all.iter().all(|&v| v == r) {
            return Some(w);
        }
        w = f32::from_bits(w.to_bits() + 1);
    }
    None
}

/// How far [`exact_weight_scale`] may raise a weight scale, in `f32` steps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Reach {
    /// Learnt weights: `2^20` steps, 6-12% above `max |w| / 127`, so that a channel's
    /// largest weight still quantizes to at least 113.
    Learnt,
    /// The global pool's equal weights `c = 1 / (h · w)`: `2^22` steps, 25-50%. Its
    /// requantization scales are small (50-60 multiples of `2^-16` in trained networks), so
    /// exact multiples lie far apart, and one missed scale leaves every channel of the layer
    /// inexact at once (all share it). A constant weight loses nothing to a coarser scale but
    /// the rounding of `round(c / scale) · scale` to `c`: at most `1 / (2 · 85)`, 0.6%.
    Pool,
}

impl Reach {
    fn steps(self) -> u32 {
        match self {
            Reach::Learnt => 1 << 20,
            Reach::Pool => 1 << 22,
        }
    }
}

/// The smallest weight scale `>= want` on which all of tract's formulas for the
/// requantization scale ([`tract_scales`]) give the same `f32`, within `2^10` steps: the
/// engine then multiplies by exactly tract's scale, and only `f32` rounding of tract's
/// product can still part them, at near-ties.
pub(super) fn agreeing_weight_scale(
    want: f32,
    in_scale: f32,
    out_scale: f32,
    first: bool,
) -> Option<f32> {
    if !(want > 0.0 && want.is_finite()) {
        return None;
    }
    let mut w = want;
    for _ in 0..1u32 << 10 {
        let all = tract_scales(in_scale, w, out_scale, first);
        if all.iter().all(|&v| v == all[0]) {
            return Some(w);
        }
        w = f32::from_bits(w.to_bits() + 1);
    }
    None
}

/// The weight scale [`Scales::Exact`] uses, and whether it is exact: [`exact_weight_scale`]
/// where it finds one, else [`agreeing_weight_scale`], else `want`.
pub(super) fn tract_friendly_scale(
    want: f32,
    in_scale: f32,
    out_scale: f32,
    first: bool,
    reach: Reach,
) -> (f32, bool) {
    match exact_weight_scale(want, in_scale, out_scale, first, reach) {
        Some(w) => (w, true),
        None => (
            agreeing_weight_scale(want, in_scale, out_scale, first).unwrap_or(want),
            false,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use emoedge_core::quant::Requant;

    /// tract's per-channel requantization of an accumulator: the product in `f32`, then
    /// rounded half to even (`tract_core::ops::quant::scale_by`).
    fn tract_requant(acc: i32, scale: f32) -> i32 {
        let p = (acc.unsigned_abs() as f32) * scale;
        p.round_ties_even() as i32 * acc.signum()
    }

    #[test]
    fn exact_scales_make_tract_round_as_the_engine() {
        // Scales like edge-tkd1's: hidden layers 2^-10..2^-6, logits 2^-12.
        let cases = [
            (0.003921569f32, 0.03181573f32, 0.0432425f32),
            (0.0432425, 0.0019632082, 0.046096314),
            (0.046, 0.0002, 0.029426435),
            (0.1, 0.05, 0.04),
        ];
        let mut seed = 1u64;
        let mut next = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) as i64
        };
        let mut tract_slips_before = 0;
        for (x, want, y) in cases {
            let w = exact_weight_scale(want, x, y, false, Reach::Learnt).expect("in range");
            assert!(w >= want, "the scale only grows: {w} < {want}");
            let r = (x * w) / y;
            assert!(
                tract_scales(x, w, y, false).iter().all(|&v| v == r),
                "every formula of tract's gives it"
            );
            assert!(w / want - 1.0 < 0.13, "{w} vs {want}");
            let q = 2f64.powi(-REQUANT_QUANTUM_EXP);
            assert_eq!((r as f64 / q).fract(), 0.0, "{r} is a multiple of 2^-16");
            let exact = Requant::from_f32(r).unwrap();
            // Before: the engine had the ONNX formula, tract ran the rewritten one.
            let old = Requant::from_f32((x * want) / y).unwrap();
            let old_r = (x * want) * (1.0 / y);
            // Every accumulator whose output int8 does not saturate: |acc · r| < 256.
            let bound = (256.0 / r) as i64;
            let accs = (0..200_000).map(|_| next() % (2 * bound + 1) - bound);
            // Near-ties of the old scale, where f32 rounding of the product matters.
            let ties = (0..bound).flat_map(|a| {
                let p = a as f64 * old_r as f64;
                ((p.fract() - 0.5).abs() < 1e-5).then_some([a, -a])
            });
            for acc in accs.chain(ties.flatten()) {
                let acc = acc as i32;
                assert_eq!(
                    tract_requant(acc, r),
                    exact.apply(acc),
                    "acc {acc} scale {r}"
                );
                tract_slips_before += (tract_requant(acc, old_r) != old.apply(acc)) as u32;
            }
        }
        // The test can fail: without the adjustment, tract and the engine do differ.
        assert!(tract_slips_before > 0);
    }

    #[test]
    fn without_an_exact_multiple_the_formulas_still_agree() {
        // edge-ft2's first layer, channel 0: the roundings skip every multiple in reach.
        let (x, y, want) = (0.003921569f32, 0.043351166f32, 0.03127604f32);
        assert_eq!(exact_weight_scale(want, x, y, true, Reach::Learnt), None);
        let (w, exact) = tract_friendly_scale(want, x, y, true, Reach::Learnt);
        assert!(!exact);
        assert!(w >= want && w / want - 1.0 < 1e-3, "{w} vs {want}");
        let all = tract_scales(x, w, y, true);
        assert!(all.iter().all(|&v| v == all[0]), "{all:?}");
        // The formulas do differ on some scale near it: the search has something to find.
        let differ = (0..64u32)
            .map(|i| f32::from_bits(want.to_bits() + i))
            .any(|v| (x * v) / y != (x * v) * (1.0 / y));
        assert!(differ);
    }

    #[test]
    fn the_first_layers_folded_scales_agree_too() {
        // The CI pipeline test's 2-epoch model, first layer, channel 12, as the first
        // two matched formulas quantized it: a multiple of 2^-16 (120 · 2^-16) under the ONNX formula and its
        // reciprocal rewrite, but one f32 step above under `w · (x / y)`, which tract ran
        // there; the accumulator 12288 then gave the tie 22.5 in the engine (rounded to 22)
        // and 22.500002 in tract (23): 1 LSB on one test image.
        let (x, y, w_old) = (0.003921569f32, 0.023132572f32, 0.010801036f32);
        let old = tract_scales(x, w_old, y, true);
        assert_eq!(old[0], old[1]);
        assert_eq!(old[0] * 65536.0, 120.0);
        assert_ne!(old[2], old[0], "the case the fix is for");
        assert_ne!(
            tract_requant(12288, old[2]),
            Requant::from_f32(old[0]).unwrap().apply(12288)
        );
        let w = exact_weight_scale(w_old, x, y, true, Reach::Learnt).expect("in reach");
        assert!(w > w_old && w / w_old - 1.0 < 0.13);
        let r = tract_scales(x, w, y, true);
        assert!(r.iter().all(|&v| v == r[0]), "{r:?}");
        let engine = Requant::from_f32(r[0]).unwrap();
        for acc in -40_000..40_000 {
            assert_eq!(tract_requant(acc, r[2]), engine.apply(acc), "acc {acc}");
        }
    }

    #[test]
    fn the_global_pool_searches_further() {
        // A 2-epoch pipeline-test model's 6x6 global pool: the first exact scale is 2^20 + 726
        // steps above `1/36 / 127`, just beyond a learnt layer's reach.
        let (x, y, want) = (0.025548754f32, 0.0066404683f32, (1.0f32 / 36.0) / 127.0);
        assert_eq!(exact_weight_scale(want, x, y, false, Reach::Learnt), None);
        let w = exact_weight_scale(want, x, y, false, Reach::Pool).expect("in the pool's reach");
        let r = tract_scales(x, w, y, false);
        assert!(r.iter().all(|&v| v == r[0]), "{r:?}");
        assert_eq!((r[0] * 65536.0).fract(), 0.0);
        // The pool's weight 1/36 at that scale is within 0.6% of itself.
        let c = 1.0f32 / 36.0;
        assert!(((c / w).round() * w / c - 1.0).abs() < 0.006);
    }

    /// On a live input neither bound applies: the scale is `max |w| / 127`.
    #[test]
    fn a_live_layer_keeps_the_scale_its_weights_ask_for() {
        let row = [0.01, -0.02, 0.03];
        let w = weight_scale(&row, 0.6, 0.05, 0.1);
        assert_eq!(w, 0.03 / 127.0);
        assert_eq!(weight_scale(&[0.0; 3], 0.0, 0.05, 0.1), 1.0);
    }

    #[test]
    fn tiny_requant_scales_are_left_alone() {
        // 1e-6 · 0.01 / 0.05 = 2e-7, far below 2^-16: no exact multiple within reach.
        assert_eq!(
            exact_weight_scale(1e-6, 0.01, 0.05, false, Reach::Learnt),
            None
        );
        assert_eq!(
            exact_weight_scale(0.0, 0.01, 0.05, false, Reach::Learnt),
            None
        );
        // The smallest: no f32 scale between `want` and the answer is exact.
        let (x, y) = (0.0432425f32, 0.046096314f32);
        let want = 0.0019632082f32;
        let w = exact_weight_scale(want, x, y, false, Reach::Learnt).unwrap();
        let is_multiple = |v: f32| {
            let all = tract_scales(x, v, y, false);
            (all[0] * 65536.0).fract() == 0.0 && all.iter().all(|&r| r == all[0])
        };
        assert!(is_multiple(w));
        let steps = w.to_bits() - want.to_bits();
        assert!(steps > 0, "this case needs raising");
        assert!((0..steps).all(|i| !is_multiple(f32::from_bits(want.to_bits() + i))));
    }
}
