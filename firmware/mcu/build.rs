//! Puts the memory map of the board the target runs on where the linker finds it: MPS2
//! AN386/AN385 (`memory/mps2-an386.x`) for Armv7E-M and Armv6-M, AN505 (`memory/mps2-an505.x`)
//! for the
//! Cortex-M33 build; and tells the firmware the board (`cfg(mps2_an505)`).
use std::{env, fs, path::PathBuf};

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"));
    let target = env::var("TARGET").unwrap_or_default();
    println!("cargo::rustc-check-cfg=cfg(mps2_an505)");
    let memory: &[u8] = if target.starts_with("thumbv8m.main") {
        println!("cargo::rustc-cfg=mps2_an505");
        include_bytes!("memory/mps2-an505.x")
    } else {
        include_bytes!("memory/mps2-an386.x")
    };
    fs::write(out.join("memory.x"), memory).expect("write memory.x");
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed=memory");
}
