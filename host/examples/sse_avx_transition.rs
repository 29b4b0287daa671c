//! What one legacy-SSE instruction inside an AVX2 loop costs on this host.
//!
//! `cargo run --release -p emoedge --example sse_avx_transition`
//!
//! Why: tract runs our int8 model about 10x slower than the engine on the 2-core
//! "AMD EPYC" KVM hosts, where other x86 hosts run it 1.7x faster than the engine (BENCHMARKS.md).
//! `perf annotate` puts 91% of tract's int8 matrix kernel (`avx2_mmm_i32_8x8`, 68% of the
//! run) on the two instructions after its inner loop's first load, `movq xmm8, [rax]`: a
//! legacy (non-VEX) SSE encoding among VEX-256 instructions. Where a CPU saves and restores
//! the upper halves of the YMM registers on every switch between the two encodings, that
//! load costs far more than a load. This times the same three-instruction loop with the
//! legacy `movq` and with its VEX form `vmovq`, which does the same work.

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::asm;
    use std::time::Instant;

    /// Defines `$name(src, n)`: `n` iterations of tract's load-and-widen step, loading with
    /// the instruction `$load` (one string, so the two loops differ in nothing else).
    macro_rules! widen_loop {
        ($name:ident, $load:literal) => {
            #[target_feature(enable = "avx2")]
            unsafe fn $name(src: &[i8; 8], n: u64) {
                // SAFETY: reads 8 bytes from `src`; touches only the registers it names.
                unsafe {
                    asm!(
                        "vpxor ymm0, ymm0, ymm0",
                        "2:",
                        $load,
                        "vpmovsxbw ymm8, xmm8",
                        "vpaddw ymm0, ymm0, ymm8",
                        "dec {n}",
                        "jnz 2b",
                        "vzeroupper",
                        p = in(reg) src.as_ptr(),
                        n = inout(reg) n => _,
                        out("ymm0") _,
                        out("ymm8") _,
                        options(nostack, readonly),
                    );
                }
            }
        };
    }

    // tract's load: the legacy SSE encoding.
    widen_loop!(legacy, "movq xmm8, qword ptr [{p}]");
    // The same load in its VEX encoding.
    widen_loop!(vex, "vmovq xmm8, qword ptr [{p}]");

    fn median(mut v: Vec<f64>) -> f64 {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    }

    pub fn main() {
        if !std::arch::is_x86_feature_detected!("avx2") {
            println!("this CPU has no AVX2: nothing to measure");
            return;
        }
        let src = [1i8, -2, 3, -4, 5, -6, 7, -8];
        let (reps, n_legacy, n_vex) = (5, 2_000_000u64, 200_000_000u64);
        let time = |f: unsafe fn(&[i8; 8], u64), n: u64| {
            let t = Instant::now();
            // SAFETY: AVX2 was detected above.
            unsafe { f(&src, n) };
            t.elapsed().as_secs_f64() / n as f64 * 1e9
        };
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for _ in 0..reps {
            a.push(time(legacy, n_legacy));
            b.push(time(vex, n_vex));
        }
        let (a, b) = (median(a), median(b));
        println!(
            "ns per iteration, medians of {reps} runs: legacy movq {a:.2}, VEX vmovq {b:.2}; legacy / VEX = {:.0}",
            a / b
        );
    }
}

fn main() {
    #[cfg(target_arch = "x86_64")]
    x86::main();
    #[cfg(not(target_arch = "x86_64"))]
    println!("x86-64 only: nothing to measure on this target");
}
