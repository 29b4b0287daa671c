//! What the emoedge tests share: where the team's data folder is, how a test starts a
//! command-line tool, the lock around Burn's seeded generator, and a small generated
//! dataset in the FER2013 folder layout that a network can learn in seconds.
#![forbid(unsafe_code)]

use emoedge_core::Emotion;
use emoedge_core::preprocess::INPUT_SIDE;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, MutexGuard};

/// The data folder: `$EMOEDGE_DATA`, else `../shared/data` beside the project (found from
/// this crate's own location, so it is right whichever crate's tests ask).
pub fn data_dir() -> PathBuf {
    std::env::var_os("EMOEDGE_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data"))
}

/// A command-line tool with `args` and `EMOEDGE_DATA` set to [`data_dir`], for tests that
/// add paths, a working folder or `spawn` it themselves.
pub fn tool(bin: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(bin);
    cmd.args(args).env("EMOEDGE_DATA", data_dir());
    cmd
}

/// What a finished process printed: its stdout and stderr together.
pub fn output_text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// Runs `cmd` to the end: whether it succeeded, and [`output_text`].
pub fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {:?}: {e}", cmd.get_program()));
    (out.status.success(), output_text(&out))
}

/// Runs a command-line tool (see [`tool`]) to the end: whether it succeeded, and its stdout
/// and stderr together.
pub fn run_tool(bin: &str, args: &[&str]) -> (bool, String) {
    run(&mut tool(bin, args))
}

/// Held while a test seeds Burn's device and draws from it (initial weights, a training
/// run). Burn's backends keep one generator per process and the test harness runs a file's
/// tests on threads: without the lock one test's re-seed lands between another's draws, and
/// what each test gets depends on the interleaving. A test that panicked while holding it
/// leaves nothing half-drawn behind, so a poisoned lock is taken as it is.
pub fn seed_lock() -> MutexGuard<'static, ()> {
    static SEEDED: Mutex<()> = Mutex::new(());
    SEEDED.lock().unwrap_or_else(|e| e.into_inner())
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
