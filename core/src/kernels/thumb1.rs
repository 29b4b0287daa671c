//! The matrix-product loop for Arm cores without the DSP extension (Cortex-M0+, M0, M3:
//! the Thumb-1 instructions every Cortex-M has), in assembly because the compiler's version
//! spilled to the stack on every MAC: Armv6-M arithmetic reaches only r0-r7, and of those
//! `asm!` may use r0-r5. [`model`] is the same loop in plain Rust, for every other target.
//!
//! On Armv6-M the dot product's cost is loads: `LDRSB` has no immediate-offset form, so
//! weights are `LDRB` + `SXTB`, and activations are widened to words once per block so
//! that each is one `LDR`. Four columns share each weight load (eight would need more
//! high registers than there are).
#![allow(unsafe_code)]

/// `bytes` from its first 4-byte boundary on, as `i32` words: the widened columns, which
/// `LDR` reads (Armv6-M faults on unaligned words, and an `i8` arena promises no alignment).
#[inline(always)]
pub(crate) fn words(bytes: &mut [i8]) -> &mut [i32] {
    // SAFETY: every bit pattern is a valid i32; `align_to_mut` puts only whole, aligned
    // words in the middle slice.
    unsafe { bytes.align_to_mut::<i32>().1 }
}

/// The assembly loop in plain Rust, bit for bit: what the Thumb-1 body runs elsewhere, so
/// that the host tests run it against the reference.
pub(crate) mod model {
    /// `Σ a · w`, `Σ b · w`, `Σ c · w`, `Σ d · w` over `w.len() / 4` groups of four weights,
    /// `q` and `w` as the assembly `dot_quad` takes them.
    pub(crate) fn dot_quad(q: &[i32], w: &[u8]) -> [i32; 4] {
        let mut s = [0i32; 4];
        let groups = (q.len() / 16).min(w.len() / 4);
        for (q, &w) in q[..16 * groups].chunks_exact(4).zip(&w[..4 * groups]) {
            for (s, &x) in s.iter_mut().zip(q) {
                *s = s.wrapping_add(x.wrapping_mul(w as i8 as i32));
            }
        }
        s
    }
}

/// The loop in assembly, on Arm cores without the DSP extension.
#[cfg(all(target_arch = "arm", not(emoedge_dsp)))]
pub(crate) mod asm {
    use core::arch::asm;

    /// `Σ a · w`, `Σ b · w`, `Σ c · w`, `Σ d · w` over `w.len() / 4` groups of four weights:
    /// `q` holds `a_0, b_0, c_0, d_0, a_1, …` (`x - zp` of four columns, one `i32` each, so
    /// that every load is one `LDR` with an immediate offset), and `w` the row's int8 weights
    /// as they lie in the blob.
    ///
    /// Per weight: one load and its sign extension, then per column a load, a `MULS` and an
    /// `ADD` into an accumulator kept in a high register (`ADD` reaches r8-r11; the operands
    /// need the low ones). Four weights per loop turn, so pointer steps, compare and branch
    /// add one instruction per weight: 60 instructions per 16 MACs.
    #[inline(always)]
    pub(crate) fn dot_quad(q: &[i32], w: &[u8]) -> [i32; 4] {
        let groups = (q.len() / 16).min(w.len() / 4);
        if groups == 0 {
            return [0; 4];
        }
        let x = q.as_ptr();
        let (s0, s1, s2, s3): (i32, i32, i32, i32);
        macro_rules! tap {
            ($w:literal, $a:literal, $b:literal, $c:literal, $d:literal) => {
                concat!(
                    "ldrb r2, [r1, #",
                    $w,
                    "]\n",
                    "sxtb r2, r2\n",
                    "ldr r3, [r0, #",
                    $a,
                    "]\n",
                    "muls r3, r2, r3\n",
                    "add r8, r3\n",
                    "ldr r3, [r0, #",
                    $b,
                    "]\n",
                    "muls r3, r2, r3\n",
                    "add r9, r3\n",
                    "ldr r3, [r0, #",
                    $c,
                    "]\n",
                    "muls r3, r2, r3\n",
                    "add r10, r3\n",
                    "ldr r3, [r0, #",
                    $d,
                    "]\n",
                    "muls r3, r2, r3\n",
                    "add r11, r3\n",
                )
            };
        }
        // SAFETY: `x` covers `16 · groups` words and `w` `4 · groups` bytes (checked above); the
        // loop reads exactly those and stops when `x` reaches `end`, one past the last group.
        unsafe {
            let end = x.add(16 * groups);
            asm!(
                // Accumulators and the end pointer live in high registers during the loop: only
                // low registers may carry operands in and out of Thumb-1 `asm!`.
                "movs r3, #0",
                "mov r8, r3",
                "mov r9, r3",
                "mov r10, r3",
                "mov r11, r3",
                "mov r12, r2",
                "2:",
                tap!("0", "0", "4", "8", "12"),
                tap!("1", "16", "20", "24", "28"),
                tap!("2", "32", "36", "40", "44"),
                tap!("3", "48", "52", "56", "60"),
                "adds r0, #64",
                "adds r1, #4",
                "cmp r0, r12",
                "bne 2b",
                "mov r2, r8",
                "mov r3, r9",
                "mov r4, r10",
                "mov r5, r11",
                inout("r0") x => _,
                inout("r1") w.as_ptr() => _,
                inout("r2") end => s0,
                out("r3") s1,
                out("r4") s2,
                out("r5") s3,
                out("r8") _,
                out("r9") _,
                out("r10") _,
                out("r11") _,
                out("r12") _,
                options(readonly, nostack),
            );
        }
        [s0, s1, s2, s3]
    }
}
