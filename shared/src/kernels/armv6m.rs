//! The matrix-product loop for Arm cores without the DSP extension (Cortex-M0+, M0, M3),
//! in assembly because the compiler's version spilled to the stack on every MAC: Armv6-M
//! arithmetic reaches only r0-r7, and of those `asm!` may use r0-r5.
#![allow(unsafe_code)]

use core::arch::asm;

/// `acc0 + Σ a · w` and `acc1 + Σ b · w` over `w.len() / 4` groups of four weights: `ab`
/// holds `a_0, b_0, a_1, b_1, …` (`x - zp` of two columns, one `i32` each, so that every
/// load is a single `LDR` with an immediate offset), and `w` the row's int8 weights as they
/// lie in the blob.
///
/// Per MAC pair: one weight load and its sign extension, two activation loads, two
/// `MULS`, two `ADD`s into accumulators kept in high registers (`ADD` reaches them; that
/// frees the low ones for the operands). Four pairs per loop turn, so pointer steps,
/// compare and branch cost one instruction per MAC pair: 36 instructions per 8 MACs.
#[inline(always)]
pub(crate) fn dot_pair(ab: &[i32], w: &[u8], acc: [i32; 2]) -> [i32; 2] {
    let groups = (ab.len() / 8).min(w.len() / 4);
    if groups == 0 {
        return acc;
    }
    let [mut acc0, mut acc1] = acc;
    let x = ab.as_ptr();
    macro_rules! tap {
        ($w:literal, $a:literal, $b:literal) => {
            concat!(
                "ldrb r2, [r1, #",
                $w,
                "]\n",
                "sxtb r2, r2\n",
                "ldr r3, [r0, #",
                $a,
                "]\n",
                "ldr r4, [r0, #",
                $b,
                "]\n",
                "muls r3, r2, r3\n",
                "muls r4, r2, r4\n",
                "add r8, r3\n",
                "add r9, r4\n",
            )
        };
    }
    // SAFETY: `x` covers `8 · groups` words and `w` `4 · groups` bytes (checked above); the
    // loop reads exactly those and stops when `x` reaches `end`, one past the last group.
    unsafe {
        let end = x.add(8 * groups);
        asm!(
            // Accumulators and the end pointer move to high registers for the loop: only
            // low registers may carry operands in and out of Thumb-1 `asm!`.
            "mov r8, r5",
            "mov r9, r2",
            "mov r10, r3",
            "2:",
            tap!("0", "0", "4"),
            tap!("1", "8", "12"),
            tap!("2", "16", "20"),
            tap!("3", "24", "28"),
            "adds r0, #32",
            "adds r1, #4",
            "cmp r0, r10",
            "bne 2b",
            "mov r5, r8",
            "mov r2, r9",
            inout("r0") x => _,
            inout("r1") w.as_ptr() => _,
            inout("r2") acc1,
            inout("r3") end => _,
            out("r4") _,
            inout("r5") acc0,
            out("r8") _,
            out("r9") _,
            out("r10") _,
            options(readonly, nostack),
        );
    }
    [acc0, acc1]
}

/// `bytes` from its first 4-byte boundary on, as `i32` words: the widened columns, which
/// `LDR` reads (Armv6-M faults on unaligned words, and an `i8` arena promises no alignment).
#[inline(always)]
pub(crate) fn words(bytes: &mut [i8]) -> &mut [i32] {
    // SAFETY: every bit pattern is a valid i32; `align_to_mut` puts only whole, aligned
    // words in the middle slice.
    unsafe { bytes.align_to_mut::<i32>().1 }
}
