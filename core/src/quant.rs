//! Fixed-point requantization: the one rounding rule every emoedge runtime applies.
//!
//! An int8 layer accumulates `acc = bias + Σ (x - x_zp) · w` in `i32`. The real output is
//! `acc · s` with `s = x_scale · w_scale[c] / y_scale`. On the device `s` is a Q31 multiplier
//! `m` in `[2^30, 2^31)` and a right shift `n`, so that `s ≈ m · 2^-(31 + n)`, and
//!
//! ```text
//! y = clamp(round_half_even(acc · m / 2^(31 + n)) + y_zp, lo, hi)
//! ```
//!
//! **Rounding rule:** round to nearest, ties to even, computed exactly in `i64`. This is the
//! rule of ONNX `QuantizeLinear` and `QLinearConv` (round half to even), so the engine and an
//! ONNX runtime that follows the spec differ only where the float scale itself rounds
//! differently from `m · 2^-(31 + n)` (at most 1 LSB).
//!
//! ReLU and ReLU6 are folded into the clamp bounds `lo`/`hi` (see [`OutputQuant`]).

use serde::{Deserialize, Serialize};

/// Smallest total shift (`31 + n`) a [`Requant`] may use: scales up to `2^30`.
pub const MIN_TOTAL_SHIFT: i32 = 1;
/// Largest total shift (`31 + n`): scales down to about `2^-62`.
pub const MAX_TOTAL_SHIFT: i32 = 62;

/// A real multiplier `mult · 2^-(31 + shift)` in fixed point.
///
/// `mult` is in `[2^30, 2^31)` (normalised) or `0` (the scale is zero); `31 + shift` is in
/// [`MIN_TOTAL_SHIFT`]`..=`[`MAX_TOTAL_SHIFT`]. [`Requant::new`] enforces both, so a value
/// of this type always requantizes without overflow.
///
/// Deserialization goes through [`Requant::new`] too, so a blob cannot smuggle in a pair
/// that would overflow the shift.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawRequant", into = "RawRequant")]
pub struct Requant {
    mult: i32,
    shift: i8,
}

/// The wire form of a [`Requant`] (same field order, so the same bytes).
#[derive(Serialize, Deserialize)]
struct RawRequant {
    mult: i32,
    shift: i8,
}

impl TryFrom<RawRequant> for Requant {
    type Error = InvalidRequant;
    fn try_from(r: RawRequant) -> Result<Self, InvalidRequant> {
        Requant::new(r.mult, r.shift as i32)
    }
}

impl From<Requant> for RawRequant {
    fn from(r: Requant) -> Self {
        RawRequant {
            mult: r.mult,
            shift: r.shift,
        }
    }
}

impl core::fmt::Display for InvalidRequant {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "invalid requantization: multiplier {} shift {}",
            self.mult, self.shift
        )
    }
}

/// Why a multiplier/shift pair is not a valid [`Requant`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InvalidRequant {
    /// The rejected multiplier.
    pub mult: i32,
    /// The rejected shift.
    pub shift: i32,
}

impl Requant {
    /// The zero multiplier: every accumulator maps to 0.
    pub const ZERO: Self = Self { mult: 0, shift: 0 };

    /// For pairs already checked by [`Requant::new`] (e.g. when a blob was parsed).
    pub(crate) const fn validated(mult: i32, shift: i32) -> Self {
        Self {
            mult,
            shift: shift as i8,
        }
    }

    /// Checks that `mult` is normalised (or zero) and that the total shift is in range.
    pub const fn new(mult: i32, shift: i32) -> Result<Self, InvalidRequant> {
        let total = 31 + shift;
        let mult_ok = mult == 0 || mult >= (1 << 30);
        if !mult_ok || total < MIN_TOTAL_SHIFT || total > MAX_TOTAL_SHIFT {
            return Err(InvalidRequant { mult, shift });
        }
        Ok(Self {
            mult,
            shift: shift as i8,
        })
    }

    /// The Q31 multiplier.
    pub const fn mult(self) -> i32 {
        self.mult
    }

    /// The extra right shift `n` (total shift is `31 + n`).
    pub const fn shift(self) -> i32 {
        self.shift as i32
    }

    /// `round_half_even(acc · mult / 2^(31 + shift))`, exact. Never overflows: `|acc · mult|
    /// < 2^62` and the result of a shift by at least 1 fits `i32` after saturation.
    ///
    /// Scales below one half (total shift of 32 or more, every layer of a trained network)
    /// take a path with one 64-bit add and 32-bit shifts only: with `v = q · 2^s + r`,
    /// `floor((v + 2^(s-1) - 1 + (q & 1)) / 2^s)` is `q` below the half, `q + 1` above it and
    /// the even one of the two at the tie. On a Cortex-M this is about a third of the
    /// instructions of the general form, which needs 64-bit variable shifts.
    #[inline(always)]
    pub fn apply(self, acc: i32) -> i32 {
        self.prepare().apply(acc)
    }

    /// The per-channel constants of [`Requant::apply`], for kernels that requantize several
    /// outputs of one channel.
    #[inline(always)]
    pub fn prepare(self) -> Prepared {
        let s = (31 + self.shift as i32) as u32;
        // For s >= 32 the half, 2^(s-1), is built from its two 32-bit words, without a
        // 64-bit variable shift.
        let n = s.wrapping_sub(32) & 31;
        let (half_hi, half_lo) = ((1u32 << n) >> 1, (1u32 << n) << 31);
        let half = (((half_hi as u64) << 32) | half_lo as u64) as i64;
        Prepared {
            rq: self,
            n,
            half_minus_one: half - 1,
            narrow: s >= 32,
        }
    }

    /// The general form of [`Requant::apply`] for total shifts below 32 (scales of one half
    /// and more), where the result may need saturating.
    #[inline(never)]
    fn apply_wide(self, acc: i32) -> i32 {
        let v = acc as i64 * self.mult as i64;
        let s = (31 + self.shift as i32) as u32;
        let q = v >> s; // floor
        let rem = v - (q << s);
        let half = 1i64 << (s - 1);
        let up = rem > half || (rem == half && (q & 1) == 1);
        let r = q + up as i64;
        r.clamp(i32::MIN as i64, i32::MAX as i64) as i32
    }

    /// The pair that equals an `f32` scale exactly: the 24-bit mantissa becomes the Q31
    /// multiplier (`mantissa << 7`), the exponent the shift. An ONNX runtime that computes
    /// `x_scale · w_scale / y_scale` in `f32` and requantizes with that value (tract does)
    /// then rounds exactly as the engine does. Integer bit manipulation only.
    ///
    /// `None` for negative, non-finite or subnormal scales, or ones outside the shift range.
    pub fn from_f32(scale: f32) -> Option<Self> {
        let bits = scale.to_bits();
        if scale == 0.0 {
            return Some(Self::ZERO);
        }
        let exp = ((bits >> 23) & 0xff) as i32;
        if bits >> 31 != 0 || exp == 0 || exp == 0xff {
            return None;
        }
        // scale = 1.frac · 2^(exp-127) = (mult / 2^31) · 2^(exp-126), mult in [2^30, 2^31).
        let mult = (((bits & 0x007f_ffff) | 0x0080_0000) << 7) as i32;
        Self::new(mult, 126 - exp).ok()
    }

    /// The multiplier/shift pair nearest to a positive real `scale` (host side, at export).
    ///
    /// Returns `None` when `scale` is not finite, negative, or outside what the shift range
    /// can express. A `scale` of zero gives the zero multiplier.
    #[cfg(any(test, feature = "std"))]
    pub fn from_scale(scale: f64) -> Option<Self> {
        if !scale.is_finite() || scale < 0.0 {
            return None;
        }
        if scale == 0.0 {
            return Some(Self { mult: 0, shift: 0 });
        }
        // scale = frac · 2^exp with frac in [0.5, 1).
        let exp = scale.log2().floor() as i32 + 1;
        let mut frac = scale / 2f64.powi(exp);
        let mut exp = exp;
        if frac >= 1.0 {
            frac /= 2.0;
            exp += 1;
        } else if frac < 0.5 {
            frac *= 2.0;
            exp -= 1;
        }
        let mut mult = (frac * (1u64 << 31) as f64).round() as i64;
        if mult == 1 << 31 {
            mult /= 2;
            exp += 1;
        }
        Self::new(mult as i32, -exp).ok()
    }

    /// The real value this pair stands for (host side, for reports and checks).
    #[cfg(any(test, feature = "std"))]
    pub fn to_scale(self) -> f64 {
        self.mult as f64 * 2f64.powi(-(31 + self.shift as i32))
    }
}

/// A [`Requant`] with its shift-derived constants worked out ([`Requant::prepare`]).
#[derive(Clone, Copy, Debug)]
pub struct Prepared {
    rq: Requant,
    /// Total shift minus 32, when it is 32 or more.
    n: u32,
    /// `2^(31 + shift - 1) - 1`, when the total shift is 32 or more.
    half_minus_one: i64,
    /// Whether the total shift is 32 or more (every scale below one half).
    narrow: bool,
}

impl Prepared {
    /// [`Requant::apply`].
    #[inline(always)]
    pub fn apply(&self, acc: i32) -> i32 {
        if !self.narrow {
            return self.rq.apply_wide(acc);
        }
        // |v| < 2^62, so the result fits in 31 bits and needs no saturation.
        let v = widening_mul(acc, self.rq.mult);
        let odd = ((v >> 32) as i32 >> self.n) & 1;
        let t = v.wrapping_add(self.half_minus_one + odd as i64);
        ((t >> 32) as i32) >> self.n
    }
}

/// `a · b` exactly, as `i64`: [`widening_mul_halves`] on Armv6-M, which has only a 32-bit
/// `MULS` (the compiler's way, a call to the 64x64 runtime multiply, cost twice as many
/// instructions per requantized output); the native product elsewhere.
#[inline(always)]
fn widening_mul(a: i32, b: i32) -> i64 {
    if cfg!(emoedge_armv6m) {
        widening_mul_halves(a, b)
    } else {
        a as i64 * b as i64
    }
}

/// `a · b` exactly, as `i64`, from four 16x16 products (compiled everywhere, so that the
/// host tests hold it to the native product).
#[inline(always)]
fn widening_mul_halves(a: i32, b: i32) -> i64 {
    let (al, ah) = ((a & 0xffff) as u32, a >> 16);
    let (bl, bh) = ((b & 0xffff) as u32, b >> 16);
    let low = (al * bl) as i64; // < 2^32
    let mid = (ah * bl as i32) as i64 + (al as i32 * bh) as i64; // each |.| < 2^31
    let high = (ah * bh) as i64; // |.| <= 2^30
    (high << 32) + (mid << 16) + low
}

/// Output quantization of an int8 tensor: zero point and the clamp that fuses the activation.
///
/// No activation: `min = -128, max = 127`. ReLU: `min = zero_point`. ReLU6: additionally
/// `max = zero_point + round(6 / scale)` (saturated), computed on the host.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputQuant {
    /// Zero point of the output tensor.
    pub zero_point: i8,
    /// Lower clamp bound (inclusive).
    pub min: i8,
    /// Upper clamp bound (inclusive).
    pub max: i8,
}

impl OutputQuant {
    /// Plain int8 output, no fused activation.
    pub const fn linear(zero_point: i8) -> Self {
        Self {
            zero_point,
            min: i8::MIN,
            max: i8::MAX,
        }
    }

    /// Output with a fused ReLU.
    pub const fn relu(zero_point: i8) -> Self {
        Self {
            zero_point,
            min: zero_point,
            max: i8::MAX,
        }
    }

    /// Whether the clamp bounds are ordered and contain the zero point's side of the range
    /// that an activation can produce (`min <= max`).
    pub const fn is_valid(self) -> bool {
        self.min <= self.max
    }

    /// Requantize an accumulator to the output: the rule in the module docs.
    #[inline(always)]
    pub fn finish(self, acc: i32, rq: Requant) -> i8 {
        self.finish_prepared(acc, &rq.prepare())
    }

    /// [`OutputQuant::finish`] with the channel's constants worked out once.
    #[inline(always)]
    pub fn finish_prepared(self, acc: i32, rq: &Prepared) -> i8 {
        let y = rq.apply(acc).saturating_add(self.zero_point as i32);
        // max-then-min rather than `clamp`, which checks `min <= max` on every call (kernels
        // check it once per layer, with `is_valid`).
        y.max(self.min as i32).min(self.max as i32) as i8
    }
}

/// Maps dequantized logits (what an ONNX runtime outputs after `DequantizeLinear`) back to
/// their int8 values, so that runtimes can be compared in LSB. Host/Pi side: uses floats.
#[cfg(feature = "std")]
pub fn int8_logits(values: &[f32], scale: f32, zero_point: i8) -> std::vec::Vec<i8> {
    values
        .iter()
        .map(|f| ((f / scale).round() + zero_point as f32).clamp(-128.0, 127.0) as i8)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn the_armv6m_product_is_the_native_one(a in any::<i32>(), b in any::<i32>()) {
            prop_assert_eq!(widening_mul_halves(a, b), a as i64 * b as i64);
        }
    }

    #[test]
    fn the_armv6m_product_holds_at_the_extremes() {
        for a in [i32::MIN, i32::MIN + 1, -1, 0, 1, 0xffff, 0x10000, i32::MAX] {
            for b in [i32::MIN, -65536, -1, 0, 1, 65535, i32::MAX] {
                assert_eq!(widening_mul_halves(a, b), a as i64 * b as i64, "{a} {b}");
            }
        }
    }

    fn rq(mult: i32, shift: i32) -> Requant {
        Requant::new(mult, shift).unwrap()
    }

    #[test]
    fn half_is_exact_and_ties_go_to_even() {
        // 0.5 = 2^30 · 2^-31.
        let half = rq(1 << 30, 0);
        assert_eq!(half.apply(1), 0); // 0.5 -> 0 (even)
        assert_eq!(half.apply(3), 2); // 1.5 -> 2
        assert_eq!(half.apply(5), 2); // 2.5 -> 2
        assert_eq!(half.apply(7), 4); // 3.5 -> 4
        assert_eq!(half.apply(-1), 0); // -0.5 -> 0
        assert_eq!(half.apply(-3), -2); // -1.5 -> -2
        assert_eq!(half.apply(-5), -2); // -2.5 -> -2
        assert_eq!(half.apply(4), 2);
        assert_eq!(half.apply(-4), -2);
    }

    #[test]
    fn non_ties_round_to_nearest_for_negative_values() {
        // 0.25 = 2^30 · 2^-32.
        let quarter = rq(1 << 30, 1);
        assert_eq!(quarter.apply(1), 0); // 0.25
        assert_eq!(quarter.apply(3), 1); // 0.75
        assert_eq!(quarter.apply(-3), -1); // -0.75
        assert_eq!(quarter.apply(-1), 0); // -0.25
        assert_eq!(quarter.apply(-6), -2); // -1.5 tie -> -2 (even)
        assert_eq!(quarter.apply(-10), -2); // -2.5 tie -> -2 (even)
    }

    proptest::proptest! {
        #[test]
        fn apply_is_the_definition_at_ties(q in -(1i32 << 20)..(1i32 << 20), n in 0i32..8) {
            // mult 2^30 and shift n: acc · 2^-(n + 1); odd multiples of 2^n are ties.
            let r = rq(1 << 30, n);
            let acc = q.wrapping_mul(2 << n).wrapping_add(1 << n);
            proptest::prop_assert_eq!(r.apply(acc), crate::kernels::reference::requant(acc, r));
        }
    }

    #[test]
    fn extremes_do_not_overflow() {
        let big = rq(i32::MAX, -30); // ~2^30
        assert_eq!(big.apply(i32::MAX), i32::MAX);
        assert_eq!(big.apply(i32::MIN), i32::MIN);
        let tiny = rq(i32::MAX, 31); // ~2^-31
        assert_eq!(tiny.apply(i32::MAX), 1);
        assert_eq!(tiny.apply(i32::MIN), -1);
        assert_eq!(tiny.apply(1000), 0);
        let zero = rq(0, 0);
        assert_eq!(zero.apply(i32::MAX), 0);
    }

    #[test]
    fn deserializing_validates() {
        let good = postcard::to_allocvec(&rq(1 << 30, 3)).unwrap();
        assert_eq!(
            postcard::from_bytes::<Requant>(&good).unwrap(),
            rq(1 << 30, 3)
        );
        // Same bytes as the struct {mult, shift}; a shift of 100 must be refused.
        let bad = postcard::to_allocvec(&(1i32 << 30, 100i8)).unwrap();
        assert!(postcard::from_bytes::<Requant>(&bad).is_err());
    }

    #[test]
    fn invalid_pairs_are_rejected() {
        assert!(Requant::new(1 << 29, 0).is_err()); // not normalised
        assert!(Requant::new(-(1 << 30), 0).is_err());
        assert!(Requant::new(1 << 30, -31).is_err()); // total shift 0
        assert!(Requant::new(1 << 30, 32).is_err()); // total shift 63
    }

    #[test]
    fn output_saturates_and_clamps_fused_relu() {
        let one = rq(1 << 30, -1); // 1.0
        let lin = OutputQuant::linear(-3);
        assert_eq!(lin.finish(10, one), 7);
        assert_eq!(lin.finish(1000, one), 127);
        assert_eq!(lin.finish(-1000, one), -128);
        let relu = OutputQuant::relu(-3);
        assert_eq!(relu.finish(-10, one), -3);
        assert_eq!(relu.finish(5, one), 2);
        let relu6 = OutputQuant {
            zero_point: -128,
            min: -128,
            max: -128 + 60,
        };
        assert_eq!(relu6.finish(100, one), -68);
        assert_eq!(relu6.finish(i32::MAX, rq(i32::MAX, -30)), -68);
    }

    #[test]
    fn from_f32_is_exact() {
        for &s in &[1.0f32, 0.5, 0.75, 1e-3, 3.3e-5, 0.999_999_9, 1234.5, 7.1e-8] {
            let r = Requant::from_f32(s).unwrap();
            assert_eq!(r.to_scale(), s as f64, "{s}");
        }
        assert_eq!(Requant::from_f32(0.0), Some(Requant::ZERO));
        assert_eq!(Requant::from_f32(-1.0), None);
        assert_eq!(Requant::from_f32(f32::INFINITY), None);
        assert_eq!(Requant::from_f32(f32::MIN_POSITIVE / 2.0), None);
        assert_eq!(Requant::from_f32(2f32.powi(40)), None);
        // 0.5 exactly: ties to even through the f32 path as through the integer one.
        assert_eq!(Requant::from_f32(0.5).unwrap().apply(5), 2);
    }

    #[test]
    fn from_scale_round_trips() {
        for &s in &[
            1.0,
            0.5,
            0.75,
            1e-3,
            3.3e-5,
            0.999_999_9,
            1234.5,
            2.0f64.powi(-30),
        ] {
            let r = Requant::from_scale(s).unwrap();
            let back = r.to_scale();
            assert!(
                (back - s).abs() <= s * 2f64.powi(-30),
                "{s} -> {r:?} -> {back}"
            );
            assert!(r.mult() >= 1 << 30);
        }
        assert_eq!(Requant::from_scale(0.0).unwrap().mult(), 0);
        assert!(Requant::from_scale(-1.0).is_none());
        assert!(Requant::from_scale(f64::NAN).is_none());
        assert!(Requant::from_scale(2f64.powi(40)).is_none());
        assert!(Requant::from_scale(2f64.powi(-40)).is_none());
    }

    proptest::proptest! {
        #[test]
        fn apply_matches_exact_rational_rounding(acc in proptest::num::i32::ANY,
                                                  mult in (1i32 << 30)..=i32::MAX,
                                                  shift in -30i32..=31) {
            let r = rq(mult, shift);
            // Exact reference in i128: nearest integer to acc·mult / 2^(31+shift), ties even.
            let num = acc as i128 * mult as i128;
            let den = 1i128 << (31 + shift);
            let fl = num.div_euclid(den);
            let rem2 = 2 * num.rem_euclid(den);
            let want = if rem2 > den || (rem2 == den && fl % 2 != 0) { fl + 1 } else { fl };
            let want = want.clamp(i32::MIN as i128, i32::MAX as i128) as i32;
            proptest::prop_assert_eq!(r.apply(acc), want);
        }
    }
}
