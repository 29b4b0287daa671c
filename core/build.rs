//! Turns on the DSP kernels (`cfg(emoedge_dsp)`) for cores that have Arm's DSP extension,
//! and the Armv6-M multiply (`cfg(emoedge_armv6m)`) for cores without a long multiply.
//!
//! Stable Rust does not expose `target_feature = "dsp"` to `cfg`, so the target name
//! decides: every Armv7E-M core (`thumbv7em-*`: Cortex-M4, M7) has the extension. Armv8-M
//! Mainline cores have it only as an option (the Cortex-M33 of the RP2350 and most STM32s
//! do), so `thumbv8m.main-*` builds ask for it with the crate feature `dsp`.
use std::env;

fn main() {
    println!("cargo::rustc-check-cfg=cfg(emoedge_dsp)");
    println!("cargo::rustc-check-cfg=cfg(emoedge_armv6m)");
    println!("cargo::rerun-if-env-changed=TARGET");
    let target = env::var("TARGET").unwrap_or_default();
    let feature = env::var_os("CARGO_FEATURE_DSP").is_some();
    let armv7em = target.starts_with("thumbv7em");
    let armv8m_main = target.starts_with("thumbv8m.main");
    if armv7em || (armv8m_main && feature) {
        println!("cargo::rustc-cfg=emoedge_dsp");
    }
    // Armv6-M (Cortex-M0/M0+) has no 32x32->64 multiply: `quant` builds one from 16-bit
    // halves instead of calling the 64x64 runtime routine.
    if target.starts_with("thumbv6m") {
        println!("cargo::rustc-cfg=emoedge_armv6m");
    }
}
