//! Writes the memory map of the MPS2 board the target runs on (`emoedge-boards`: AN386 for
//! Armv7E-M, AN385 for Armv6-M, AN505 for the Cortex-M33 build) where the linker finds it,
//! and tells the firmware which board it is (`EMOEDGE_BOARD`).
use std::{env, fs, path::PathBuf};

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"));
    let target = env::var("TARGET").unwrap_or_default();
    let board = emoedge_boards::Board::mps2_for_target(&target);
    fs::write(out.join("memory.x"), board.memory_x().to_string()).expect("write memory.x");
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rustc-env=EMOEDGE_BOARD={}", board.name);
    println!("cargo:rerun-if-env-changed=TARGET");
}
