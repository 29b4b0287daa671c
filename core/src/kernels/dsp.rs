//! The DSP-extension instructions the int8 kernels use on Cortex-M4/M7/M33 (`SXTB16`,
//! `SXTAB16`, `SMLABB`, `SMLATT`, `SMLAD`), through `asm!` because their intrinsics
//! (`core::arch::arm::__smlad` and kin) are unstable; the two loops written in assembly,
//! `dot_pair` and `depthwise_taps`, where the compiler's register allocation spilled half
//! the accumulators; and [`model`], the same in plain Rust for every other target.
//!
//! The single-instruction wrappers touch no memory and no flags the kernels read (the
//! multiply-accumulates set the Q flag on overflow; nothing reads it, and a parsed model's
//! accumulators are bounded so it never fires), so they are `pure, nomem, nostack` and the
//! compiler schedules and allocates registers around them freely.
//!
//! Lane order: `sxtb16(x)` holds bytes 0 and 2 of `x`, `sxtb16_ror8(x)` bytes 1 and 3. A
//! kernel that unpacks activations and weights the same way pairs the right products in
//! `smlad` without reordering either (CMSIS-NN's trick).
#![allow(unsafe_code)]

use core::marker::PhantomData;

/// The 16-bit pair `(v, v)`, for `sxtab16`'s addend.
#[inline(always)]
pub(crate) const fn pair(v: i16) -> u32 {
    let h = v as u16 as u32;
    h | (h << 16)
}

/// The first four values of `x` as one word (one `LDR`, any alignment: Armv7-M and
/// Armv8-M Mainline load unaligned words).
#[inline(always)]
pub(crate) fn load_i8x4(x: &[i8]) -> u32 {
    let x: &[i8; 4] = x[..4].try_into().unwrap_or(&[0; 4]);
    // SAFETY: `x` is four readable bytes; `read_unaligned` has no alignment requirement.
    unsafe { core::ptr::read_unaligned(x.as_ptr().cast::<u32>()) }
}

/// [`load_i8x4`] for weight bytes.
#[inline(always)]
pub(crate) fn load_u8x4(x: &[u8]) -> u32 {
    let x: &[u8; 4] = x[..4].try_into().unwrap_or(&[0; 4]);
    // SAFETY: as above.
    unsafe { core::ptr::read_unaligned(x.as_ptr().cast::<u32>()) }
}

/// `bytes` from its first 4-byte boundary on, as words: where the kernels keep int16 pairs
/// that `LDM` reads (it needs word alignment, which an `i8` arena does not promise).
#[inline(always)]
pub(crate) fn words(bytes: &mut [i8]) -> &mut [u32] {
    // SAFETY: every bit pattern is a valid u32; `align_to_mut` puts only whole, aligned
    // words in the middle slice.
    unsafe { bytes.align_to_mut::<u32>().1 }
}

/// The word at `addr`, any alignment.
///
/// # Safety
///
/// `addr .. addr + 4` must be readable: [`model::depthwise_taps`] reads only inside the runs
/// of a [`TapTable`], whose lifetime keeps them alive.
unsafe fn read_word(addr: usize) -> u32 {
    // SAFETY: the caller's promise above.
    unsafe { core::ptr::read_unaligned(addr as *const u32) }
}

/// The valid taps of one depthwise output pixel, as the addresses where each tap's input
/// run and weight run start (the layout the assembly loop reads with one `LDRD`); the
/// lifetime ties them to the slices they were taken from, so a table cannot outlive them.
pub(crate) struct TapTable<'a> {
    taps: [[usize; 2]; TapTable::MAX],
    n: usize,
    /// Bytes every run in use holds (the shortest).
    len: usize,
    runs: PhantomData<&'a [u8]>,
}

impl<'a> TapTable<'a> {
    /// Most taps a table holds: windows up to 4x4 take this path.
    pub(crate) const MAX: usize = 16;

    pub(crate) const fn new() -> Self {
        Self {
            taps: [[0; 2]; Self::MAX],
            n: 0,
            len: usize::MAX,
            runs: PhantomData,
        }
    }

    pub(crate) fn clear(&mut self) {
        (self.n, self.len) = (0, usize::MAX);
    }

    /// Adds the tap over `x` and `w`; `false` (nothing added) when the table is full.
    pub(crate) fn push(&mut self, x: &'a [i8], w: &'a [u8]) -> bool {
        let Some(slot) = self.taps.get_mut(self.n) else {
            return false;
        };
        *slot = [x.as_ptr() as usize, w.as_ptr() as usize];
        self.n += 1;
        self.len = self.len.min(x.len()).min(w.len());
        true
    }

    /// The taps in use, as `[input run, weight run]` addresses.
    fn in_use(&self) -> &[[usize; 2]] {
        &self.taps[..self.n]
    }
}

/// The instructions and loops above in plain Rust, bit for bit: what the DSP bodies run on
/// targets without the extension, so that the host tests run every DSP body against the
/// reference (`kernel-check` holds the assembly to the same reference on the cores).
pub(crate) mod model {
    use super::{TapTable, load_u8x4};

    /// The signed 16-bit halves of `x`, bottom then top.
    fn halves(x: u32) -> (i32, i32) {
        (x as u16 as i16 as i32, (x >> 16) as u16 as i16 as i32)
    }

    /// `SXTAB16`: bytes 0 and 2 of `x`, sign-extended, added to the halves of `add`.
    pub(crate) fn sxtab16(add: u32, x: u32) -> u32 {
        let lo = (add as u16).wrapping_add(x as u8 as i8 as i16 as u16);
        let hi = ((add >> 16) as u16).wrapping_add((x >> 16) as u8 as i8 as i16 as u16);
        lo as u32 | (hi as u32) << 16
    }

    /// `SXTAB16` with `ROR #8`: bytes 1 and 3.
    pub(crate) fn sxtab16_ror8(add: u32, x: u32) -> u32 {
        sxtab16(add, x.rotate_right(8))
    }

    /// `SXTB16`.
    pub(crate) fn sxtb16(x: u32) -> u32 {
        sxtab16(0, x)
    }

    /// `SXTB16` with `ROR #8`.
    pub(crate) fn sxtb16_ror8(x: u32) -> u32 {
        sxtab16(0, x.rotate_right(8))
    }

    /// `SMLABB`.
    pub(crate) fn smlabb(a: u32, b: u32, acc: i32) -> i32 {
        acc.wrapping_add(halves(a).0 * halves(b).0)
    }

    /// `SMLATT`.
    pub(crate) fn smlatt(a: u32, b: u32, acc: i32) -> i32 {
        acc.wrapping_add(halves(a).1 * halves(b).1)
    }

    /// `SMLAD`: both halves' products added to `acc`.
    fn smlad(a: u32, b: u32, acc: i32) -> i32 {
        let ((al, ah), (bl, bh)) = (halves(a), halves(b));
        acc.wrapping_add(al * bl).wrapping_add(ah * bh)
    }

    /// The assembly `dot_pair`: per group of four weights, two `SXTB16` unpacks and four
    /// `SMLAD`s.
    pub(crate) fn dot_pair(ab: &[u32], w: &[u8], acc: [i32; 2]) -> [i32; 2] {
        let [mut acc0, mut acc1] = acc;
        for (q, w) in ab.chunks_exact(4).zip(w.chunks_exact(4)) {
            let w = load_u8x4(w);
            let (s, t) = (sxtb16(w), sxtb16_ror8(w));
            acc0 = smlad(q[1], t, smlad(q[0], s, acc0));
            acc1 = smlad(q[3], t, smlad(q[2], s, acc1));
        }
        [acc0, acc1]
    }

    /// The assembly `depthwise_taps`: per tap, one word of input and one of weights at
    /// `offset`, unpacked, and four per-channel multiply-accumulates.
    pub(crate) fn depthwise_taps(
        taps: &TapTable,
        offset: usize,
        neg: u32,
        acc: [i32; 4],
    ) -> [i32; 4] {
        if offset + 4 > taps.len {
            return acc;
        }
        let [mut a0, mut a1, mut a2, mut a3] = acc;
        for &[x, w] in taps.in_use() {
            // SAFETY: every run in use holds at least `taps.len` bytes from its address, and
            // `offset + 4 <= taps.len` (checked above).
            let (x, w) = unsafe { (super::read_word(x + offset), super::read_word(w + offset)) };
            let (t1, x13) = (sxtab16(neg, x), sxtab16_ror8(neg, x));
            let (t2, w13) = (sxtb16(w), sxtb16_ror8(w));
            a0 = smlabb(t1, t2, a0);
            a2 = smlatt(t1, t2, a2);
            a1 = smlabb(x13, w13, a1);
            a3 = smlatt(x13, w13, a3);
        }
        [a0, a1, a2, a3]
    }
}

/// The instructions, and the two loops written in assembly, on cores with the extension.
#[cfg(emoedge_dsp)]
pub(crate) mod asm {
    use super::TapTable;
    use core::arch::asm;

    /// Bytes 0 and 2 of `x`, each sign-extended to 16 bits and added to the 16-bit halves of
    /// `add` (`SXTAB16`): int8 activations become `x - zp` in int16 lanes in one instruction.
    #[inline(always)]
    pub(crate) fn sxtab16(add: u32, x: u32) -> u32 {
        let out: u32;
        // SAFETY: one ALU instruction on registers (Armv7E-M / Armv8-M DSP).
        unsafe {
            asm!("sxtab16 {o}, {a}, {x}", o = lateout(reg) out, a = in(reg) add, x = in(reg) x,
                 options(pure, nomem, nostack, preserves_flags));
        }
        out
    }

    /// Bytes 1 and 3 of `x`, sign-extended and added to the halves of `add` (`SXTAB16`, `ROR #8`).
    #[inline(always)]
    pub(crate) fn sxtab16_ror8(add: u32, x: u32) -> u32 {
        let out: u32;
        // SAFETY: as above.
        unsafe {
            asm!("sxtab16 {o}, {a}, {x}, ror #8", o = lateout(reg) out, a = in(reg) add, x = in(reg) x,
                 options(pure, nomem, nostack, preserves_flags));
        }
        out
    }

    /// Bytes 0 and 2 of `x`, each sign-extended to 16 bits (`SXTB16`).
    #[inline(always)]
    pub(crate) fn sxtb16(x: u32) -> u32 {
        let out: u32;
        // SAFETY: as above.
        unsafe {
            asm!("sxtb16 {o}, {x}", o = lateout(reg) out, x = in(reg) x,
                 options(pure, nomem, nostack, preserves_flags));
        }
        out
    }

    /// Bytes 1 and 3 of `x`, sign-extended to 16 bits (`SXTB16`, `ROR #8`).
    #[inline(always)]
    pub(crate) fn sxtb16_ror8(x: u32) -> u32 {
        let out: u32;
        // SAFETY: as above.
        unsafe {
            asm!("sxtb16 {o}, {x}, ror #8", o = lateout(reg) out, x = in(reg) x,
                 options(pure, nomem, nostack, preserves_flags));
        }
        out
    }

    /// `acc + a.lo · b.lo` over signed 16-bit bottom halves (`SMLABB`).
    #[inline(always)]
    pub(crate) fn smlabb(a: u32, b: u32, acc: i32) -> i32 {
        let out: i32;
        // SAFETY: as above.
        unsafe {
            asm!("smlabb {o}, {a}, {b}, {c}", o = lateout(reg) out, a = in(reg) a, b = in(reg) b,
                 c = in(reg) acc, options(pure, nomem, nostack));
        }
        out
    }

    /// `acc + a.hi · b.hi` over signed 16-bit top halves (`SMLATT`).
    #[inline(always)]
    pub(crate) fn smlatt(a: u32, b: u32, acc: i32) -> i32 {
        let out: i32;
        // SAFETY: as above.
        unsafe {
            asm!("smlatt {o}, {a}, {b}, {c}", o = lateout(reg) out, a = in(reg) a, b = in(reg) b,
                 c = in(reg) acc, options(pure, nomem, nostack));
        }
        out
    }

    /// `acc0 + Σ a · w` and `acc1 + Σ b · w` over `w.len() / 4` groups of four weights: `ab`
    /// holds, per group, the int16 pairs `a02, a13, b02, b13` (`x - zp` of two columns in the
    /// lane order of `sxtb16` / `sxtb16_ror8`), and `w` the row's int8 weights as they lie
    /// in the blob (any alignment).
    ///
    /// Per group of 8 MACs: `LDM` of the four activation words, one weight load, two unpacks
    /// and four `SMLAD`s, with every operand in a register (11 of the 12 that `asm!` may use on
    /// Thumb-2); two groups per loop turn, so compare and branch cost one more per group.
    #[inline(always)]
    pub(crate) fn dot_pair(ab: &[u32], w: &[u8], acc: [i32; 2]) -> [i32; 2] {
        let groups = (ab.len() / 4).min(w.len() / 4);
        if groups == 0 {
            return acc;
        }
        let [mut acc0, mut acc1] = acc;
        let x = ab.as_ptr();
        macro_rules! group {
            () => {
                concat!(
                    "ldm {x}!, {{r0, r1, r2, r3}}\n",
                    "ldr {t}, [{w}], #4\n",
                    "sxtb16 {s}, {t}\n",
                    "sxtb16 {t}, {t}, ror #8\n",
                    "smlad {a0}, r0, {s}, {a0}\n",
                    "smlad {a0}, r1, {t}, {a0}\n",
                    "smlad {a1}, r2, {s}, {a1}\n",
                    "smlad {a1}, r3, {t}, {a1}\n",
                )
            };
        }
        // SAFETY: `x` covers `4 · groups` words and `w` `4 · groups` bytes (checked above); an
        // odd group count takes one group first, then the loop takes two per turn until `x`
        // reaches `end`, one past the last group, so exactly those are read.
        unsafe {
            let end = x.add(4 * groups);
            asm!(
                "tst {odd}, #1",
                "beq 2f",
                group!(),
                "cmp {x}, {end}",
                "beq 3f",
                "2:",
                group!(),
                group!(),
                "cmp {x}, {end}",
                "bne 2b",
                "3:",
                odd = in(reg) groups,
                x = inout(reg) x => _,
                w = inout(reg) w.as_ptr() => _,
                end = in(reg) end,
                a0 = inout(reg) acc0,
                a1 = inout(reg) acc1,
                s = out(reg) _,
                t = out(reg) _,
                out("r0") _, out("r1") _, out("r2") _, out("r3") _,
                options(readonly, nostack),
            );
        }
        [acc0, acc1]
    }

    /// One output pixel's depthwise sums for four channels: `acc[i] + Σ_taps (x_i - zp) · w_i`,
    /// over the taps of `taps`, the four channels starting `offset` bytes into each tap's runs
    /// (`neg` is the zero point's negation in both halves, as `sxtab16` adds it).
    ///
    /// Per tap, 4 MACs in 13 instructions, accumulators in registers: `LDRD` of the two
    /// addresses, one word of input and one of weights, `SXTAB16`/`SXTB16` unpacks, `SMLABB`/
    /// `SMLATT` for the four channels, compare and branch (all 12 registers `asm!` may use).
    #[inline(always)]
    pub(crate) fn depthwise_taps(
        taps: &TapTable,
        offset: usize,
        neg: u32,
        acc: [i32; 4],
    ) -> [i32; 4] {
        let taps_in_use = taps.in_use();
        if taps_in_use.is_empty() || offset + 4 > taps.len {
            return acc;
        }
        let [mut a0, mut a1, mut a2, mut a3] = acc;
        // SAFETY: every tap in use holds the addresses of two runs of at least `taps.len`
        // readable bytes (`TapTable::push` takes them from slices), and `offset + 4 <=
        // taps.len` (checked above); the loop reads one word at `offset` from both runs of each
        // tap in use and stops after the last.
        unsafe {
            let end = taps_in_use.as_ptr().add(taps_in_use.len());
            asm!(
                "2:",
                "ldrd {x}, {w}, [{tp}], #8",
                "ldr {x}, [{x}, {off}]",
                "ldr {w}, [{w}, {off}]",
                "sxtab16 {t1}, {neg}, {x}",
                "sxtab16 {x}, {neg}, {x}, ror #8",
                "sxtb16 {t2}, {w}",
                "sxtb16 {w}, {w}, ror #8",
                "smlabb {a0}, {t1}, {t2}, {a0}",
                "smlatt {a2}, {t1}, {t2}, {a2}",
                "smlabb {a1}, {x}, {w}, {a1}",
                "smlatt {a3}, {x}, {w}, {a3}",
                "cmp {tp}, {end}",
                "bne 2b",
                tp = inout(reg) taps_in_use.as_ptr() => _,
                end = in(reg) end,
                off = in(reg) offset,
                neg = in(reg) neg,
                x = out(reg) _,
                w = out(reg) _,
                t1 = out(reg) _,
                t2 = out(reg) _,
                a0 = inout(reg) a0,
                a1 = inout(reg) a1,
                a2 = inout(reg) a2,
                a3 = inout(reg) a3,
                options(readonly, nostack),
            );
        }
        [a0, a1, a2, a3]
    }
}
