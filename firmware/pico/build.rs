//! Writes the board's memory map (`emoedge_boards::PICO`) as `memory.x` where the linker
//! finds it.
use std::{env, fs, path::PathBuf};

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"));
    let memory = emoedge_boards::PICO.memory_x().to_string();
    fs::write(out.join("memory.x"), memory).expect("write memory.x");
    println!("cargo:rustc-link-search={}", out.display());
}
