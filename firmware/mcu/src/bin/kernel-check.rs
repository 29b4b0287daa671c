//! kernel-check: runs every int8 kernel whose code differs by core (conv2d, pointwise and
//! dense on the matrix-product blocks, depthwise, requantization) against the reference
//! kernels of `emoedge_core::kernels::reference`, on the core itself, and exits with
//! success only if every output is equal.
//!
//! The cases are `emoedge_core::kernels::cases`, the same the host tests run through every
//! body with the core-specific instructions modelled in Rust; here the core's own body runs
//! them with its real instructions and assembly loops, in QEMU, for each build (the
//! `mcu_qemu` host test, or the QEMU command in BENCHMARKS.md).
#![no_std]
#![no_main]

use cortex_m_rt::entry;
use cortex_m_semihosting::hprintln;
use emoedge_core::kernels::CHANNEL_RECORD_LEN;
use emoedge_core::kernels::cases::{
    self, Buffers, Cases, Kernels, MAX_ACTS, MAX_CHANNELS, MAX_SCRATCH, MAX_WEIGHTS, Rng, SEED,
};
use emoedge_mcu::semihosting::{exit_ok, fail};

/// Random cases per kernel.
const RANDOM_CASES: usize = 150;
/// Random requantizations checked against the definition.
const REQUANT_CASES: usize = 20_000;

/// The memory the cases run in (in RAM, not on the stack).
struct Memory {
    input: [i8; MAX_ACTS],
    fast: [i8; MAX_ACTS],
    slow: [i8; MAX_ACTS],
    weights: [u8; MAX_WEIGHTS],
    channels: [u8; MAX_CHANNELS * CHANNEL_RECORD_LEN],
    scratch: [i8; MAX_SCRATCH],
}

static mut MEMORY: Memory = Memory {
    input: [0; MAX_ACTS],
    fast: [0; MAX_ACTS],
    slow: [0; MAX_ACTS],
    weights: [0; MAX_WEIGHTS],
    channels: [0; MAX_CHANNELS * CHANNEL_RECORD_LEN],
    scratch: [0; MAX_SCRATCH],
};

#[entry]
fn main() -> ! {
    // SAFETY: the only reference to MEMORY, taken once, here.
    let m: &mut Memory = unsafe { &mut *core::ptr::addr_of_mut!(MEMORY) };
    let mut b = Buffers {
        input: &mut m.input,
        fast: &mut m.fast,
        slow: &mut m.slow,
        weights: &mut m.weights,
        channels: &mut m.channels,
        scratch: &mut m.scratch,
    };
    let all = Cases::new(SEED, RANDOM_CASES);
    let n = all.len();
    for case in all {
        if let Err(e) = b.run(&case, &Kernels::NATIVE) {
            fail(format_args!(
                "{} case {} ({:?}): {}",
                case.layer.kernel(),
                case.index,
                case.layer,
                e
            ));
        }
    }
    if let Err(e) = cases::check_requant(&mut Rng::new(SEED), REQUANT_CASES) {
        fail(format_args!(
            "requant: acc {} mult {} shift {}: {} on this core, {} by definition",
            e.acc,
            e.requant.mult(),
            e.requant.shift(),
            e.got,
            e.want
        ));
    }
    hprintln!(
        "kernel-check: conv2d, depthwise, pointwise, dense: {} cases ({} random per kernel), requantization: {} cases; all equal the reference",
        n,
        RANDOM_CASES,
        REQUANT_CASES
    );
    exit_ok()
}
