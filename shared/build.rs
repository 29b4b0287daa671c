//! Turns on the DSP kernels (`cfg(emoedge_dsp)`) for cores that have Arm's DSP extension.
//!
//! Stable Rust does not expose `target_feature = "dsp"` to `cfg`, so the target name
//! decides: every Armv7E-M core (`thumbv7em-*`: Cortex-M4, M7) has the extension. Armv8-M
//! Mainline cores have it only as an option (the Cortex-M33 of the RP2350 and most STM32s
//! do), so `thumbv8m.main-*` builds ask for it with the crate feature `dsp`.
use std::env;

fn main() {
    println!("cargo::rustc-check-cfg=cfg(emoedge_dsp)");
    println!("cargo::rerun-if-env-changed=TARGET");
    let target = env::var("TARGET").unwrap_or_default();
    let feature = env::var_os("CARGO_FEATURE_DSP").is_some();
    let armv7em = target.starts_with("thumbv7em");
    let armv8m_main = target.starts_with("thumbv8m.main");
    if armv7em || (armv8m_main && feature) {
        println!("cargo::rustc-cfg=emoedge_dsp");
    }
}
