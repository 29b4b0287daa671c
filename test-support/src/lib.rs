//! What the emoedge tests share: where the team's data folder is, and a small generated
//! dataset in the FER2013 folder layout that a network can learn in seconds.
#![forbid(unsafe_code)]

use emoedge_core::Emotion;
use emoedge_core::preprocess::INPUT_SIDE;
use std::path::{Path, PathBuf};

/// The data folder: `$EMOEDGE_DATA`, else `../shared/data` beside the project (found from
/// this crate's own location, so it is right whichever crate's tests ask).
pub fn data_dir() -> PathBuf {
    std::env::var_os("EMOEDGE_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data"))
}

/// Runs a command-line tool with `EMOEDGE_DATA` set to [`data_dir`]: whether it succeeded,
/// and its stdout and stderr together.
pub fn run_tool(bin: &str, args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(bin)
        .args(args)
        .env("EMOEDGE_DATA", data_dir())
        .output()
        .unwrap_or_else(|e| panic!("running {bin}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Writes a learnable toy split into `dir` (`<class>/NNNNNN.png`, 48x48 gray):
/// `per_class` images per class, class `k` with a bright vertical band in the k-th seventh
/// of the image over a pattern that `seed` shifts.
pub fn write_split(dir: &Path, per_class: usize, seed: u32) {
    let side = INPUT_SIDE as u32;
    for e in Emotion::ALL {
        let cdir = dir.join(e.name());
        std::fs::create_dir_all(&cdir).unwrap();
        for i in 0..per_class {
            let img = image::GrayImage::from_fn(side, side, |x, y| {
                let band = ((x as usize * Emotion::ALL.len()) / INPUT_SIDE == e.index()) as u8;
                image::Luma([band * 180 + ((x * 3 + y + i as u32 * 7 + seed) % 50) as u8])
            });
            img.save(cdir.join(format!("{i:06}.png"))).unwrap();
        }
    }
}
