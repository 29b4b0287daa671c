//! `emoedge train` killed with SIGKILL mid-run, then `--resume`d, ends exactly where an
//! uninterrupted run ends (same per-epoch losses and accuracies).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn write_split(dir: &Path, per_class: usize, seed: u32) {
    for (k, e) in emoedge_core::Emotion::ALL.iter().enumerate() {
        let cdir = dir.join(e.name());
        std::fs::create_dir_all(&cdir).unwrap();
        for i in 0..per_class {
            let img = image::GrayImage::from_fn(48, 48, |x, y| {
                let band = ((x as usize * 7) / 48 == k) as u8;
                image::Luma([band * 180 + ((x * 3 + y + i as u32 * 7 + seed) % 50) as u8])
            });
            img.save(cdir.join(format!("{i:06}.png"))).unwrap();
        }
    }
}

fn train(data: &Path, out: &Path, resume: bool) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_emoedge"));
    c.args([
        "train", "--epochs", "4", "--batch", "16", "--seed", "9", "--data",
    ])
    .arg(data)
    .arg("--out")
    .arg(out);
    if resume {
        c.arg("--resume");
    }
    c
}

fn learned(run: &Path) -> Vec<String> {
    // metrics.csv without the wall-clock columns (train_seconds, images_per_s).
    std::fs::read_to_string(run.join("metrics.csv"))
        .unwrap()
        .lines()
        .map(|l| l.split(',').take(6).collect::<Vec<_>>().join(","))
        .collect()
}

#[test]
fn sigkill_then_resume_matches_an_uninterrupted_run() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    write_split(&data.join("train"), 40, 0);
    write_split(&data.join("test"), 5, 3);
    let (a, b) = (t.path().join("a"), t.path().join("b"));
    assert!(train(&data, &a, false).output().unwrap().status.success());

    let mut child = train(&data, &b, false)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let state = b.join("ckpt/state.json");
    let t0 = Instant::now();
    // Kill as soon as epoch 1 is checkpointed, i.e. somewhere inside epoch 2.
    loop {
        let done = std::fs::read_to_string(&state)
            .ok()
            .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok());
        if done.is_some_and(|v| v["epochs_done"].as_u64() == Some(1)) {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(300),
            "epoch 1 never finished"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    assert!(
        !child.wait().unwrap().success(),
        "the run finished before it could be killed"
    );
    let out = train(&data, &b, true).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(learned(&a), learned(&b));
    assert_eq!(learned(&b).len(), 5);
}
