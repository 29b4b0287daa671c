//! The `emoedge-pi` binary as a user runs it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn project(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(rel)
}

/// `emoedge-pi … | head -1`: the reader leaves before the output ends. That is an ordinary
/// end for a JSON-lines tool, so it stops quietly with success instead of printing
/// "Broken pipe" and failing the pipeline's status.
#[test]
fn a_closed_stdout_ends_the_run_quietly() {
    let dir = tempfile::tempdir().unwrap();
    // Faceless frames: each still gets its JSON line, and decoding them costs nothing.
    for i in 0..20 {
        image::GrayImage::from_pixel(64, 64, image::Luma([100 + i as u8]))
            .save(dir.path().join(format!("frame{i:02}.png")))
            .unwrap();
    }
    let bin = env!("CARGO_BIN_EXE_emoedge-pi");
    // CI's aarch64 step runs this test under qemu-user, whose children the host kernel
    // cannot execute without binfmt_misc (exit 127 before `main`); the x86 run covers it.
    let probe = Command::new(bin).arg("--version").output().unwrap();
    if probe.status.code() == Some(127) && probe.stdout.is_empty() {
        eprintln!("skipped: this host cannot execute {bin}: {probe:?}");
        return;
    }
    let mut child = Command::new(bin)
        .arg(dir.path())
        .arg("--model")
        .arg(project("models/edge"))
        .arg("--cascade")
        .arg(project("models/haarcascade_frontalface_alt2.xml"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Closed before the model has loaded, so the first line already meets no reader.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?}: {stderr}", out.status);
    assert!(!stderr.contains("error"), "{stderr}");
}
