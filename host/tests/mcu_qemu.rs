//! The MCU firmware in QEMU, for each core it is built for (Cortex-M4F on MPS2 AN386, the
//! Cortex-M0+ build on AN385, the Cortex-M33 on AN505): a model flashed apart from the
//! firmware runs on test frames
//! with exactly the host engine's logits; a missing or tampered blob is reported by the
//! firmware, which exits cleanly instead of faulting; and the kernels' core-specific code
//! (DSP instructions, Armv6-M assembly) gives the reference kernels' outputs on the core
//! itself (`kernel-check`).
//!
//! Needs the firmware built (`cargo build --release --target T` in firmware/mcu, for each
//! target) and qemu-system-arm. Without them the tests say they skipped, unless
//! `$EMOEDGE_REQUIRE_MCU` is set (CI).

use burn::prelude::*;
use emoedge::mcu::{self, Board};
use emoedge::model::{Arch, ModelConfig};
use emoedge::quantize::{Method, calibrate, quantize};
use emoedge_boards::{MPS2_M0PLUS, MPS2_M4F, MPS2_M33};
use emoedge_test_support::{data_dir, run, tool};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Firmware binary `bin` built for `board`, when it and QEMU are there.
fn firmware(board: &Board, bin: &str) -> Option<PathBuf> {
    let fw = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(mcu::firmware_path(board, bin));
    let qemu = Command::new("qemu-system-arm")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if fw.is_file() && qemu {
        return Some(fw);
    }
    assert!(
        std::env::var_os("EMOEDGE_REQUIRE_MCU").is_none(),
        "firmware {} or qemu-system-arm missing",
        fw.display()
    );
    eprintln!(
        "SKIPPED: build firmware/mcu (cargo build --release --target {}) and install qemu-system-arm",
        board.target
    );
    None
}

#[test]
fn kernels_equal_the_reference_on_every_core() {
    for board in [&MPS2_M4F, &MPS2_M0PLUS, &MPS2_M33] {
        let Some(fw) = firmware(board, "kernel-check") else {
            continue;
        };
        let text = mcu::emulate(board, &fw, None, None).unwrap();
        let name = board.name;
        eprintln!("{name}: {text}");
        assert!(text.contains("all equal the reference"), "{name}: {text}");
    }
}

#[test]
fn firmware_matches_host_engine_and_rejects_bad_blobs() {
    let Some(fw) = firmware(&MPS2_M4F, "emoedge-mcu") else {
        return;
    };
    // A calibrated edge network (seeded init) of three classes of its own: accuracy is not
    // the point, equality is, and the firmware's report naming the model's classes.
    let device = Device::flex();
    device.seed(5);
    let labels: Vec<String> = ["no_smile", "smile", "unsure"].map(String::from).to_vec();
    let model = ModelConfig::for_classes(Arch::Edge, labels.clone())
        .init(&device)
        .valid();
    let (test, _) = emoedge::data::load_split(
        &data_dir().join("fer2013/test"),
        &indicatif::ProgressBar::hidden(),
    )
    .unwrap();
    let q = quantize(
        &model,
        &labels,
        &calibrate(&model, &test.subsample(200), &device, Method::Minmax).unwrap(),
    )
    .unwrap();
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("m");
    std::fs::create_dir_all(&dir).unwrap();
    let blob = emoedge::export::blob::to_blob(&q).unwrap();
    std::fs::write(dir.join("model.blob"), &blob).unwrap();

    let (ok, text) = run(tool(
        env!("CARGO_BIN_EXE_emoedge"),
        &["flash", "--qemu", "--frames", "12", "--model"],
    )
    .arg(&dir)
    .arg("--firmware")
    .arg(&fw)
    .arg("--out")
    .arg(t.path().join("model.hex")));
    eprintln!("{text}");
    assert!(ok, "{text}");
    assert!(
        text.contains("all 12 frames: MCU labels and logits equal the host engine's"),
        "{text}"
    );
    assert!(text.contains("instructions per inference"), "{text}");
    assert!(text.contains("classes no_smile smile unsure"), "{text}");
    assert!(
        text.lines()
            .filter(|l| l.starts_with("frame "))
            .all(|l| ["no_smile", "smile", "unsure"]
                .iter()
                .any(|c| l.contains(&format!(" label {c} logits")))),
        "{text}"
    );
    assert!(
        std::fs::read_to_string(t.path().join("model.hex"))
            .unwrap()
            .starts_with(":020000040008")
    );

    // The same blob on the other builds: the Cortex-M0+ (no DSP: the Armv6-M kernels) and
    // the Cortex-M33 (the DSP kernels on Armv8-M, another memory map).
    for board in [&MPS2_M0PLUS, &MPS2_M33] {
        let Some(other) = firmware(board, "emoedge-mcu") else {
            continue;
        };
        let name = board.name;
        let (ok, text) = run(tool(
            env!("CARGO_BIN_EXE_emoedge"),
            &[
                "flash",
                "--board",
                name,
                "--emulate",
                "--frames",
                "12",
                "--model",
            ],
        )
        .arg(&dir)
        .arg("--firmware")
        .arg(&other));
        assert!(ok, "{name}: {text}");
        assert!(
            text.contains("all 12 frames: MCU labels and logits equal the host engine's"),
            "{name}: {text}"
        );
    }

    // Erased flash (no blob): a clear message, a clean failing exit.
    let empty = t.path().join("empty.bin");
    std::fs::write(&empty, [0xffu8; 64]).unwrap();
    let err = mcu::emulate(&MPS2_M4F, &fw, Some(&empty), None)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("no valid model blob") && err.contains("bad magic"),
        "{err}"
    );
    // A tampered blob.
    let mut bad = blob.clone();
    let n = bad.len();
    bad[n - 3] ^= 0x10;
    let tampered = t.path().join("tampered.blob");
    std::fs::write(&tampered, &bad).unwrap();
    let err = mcu::emulate(&MPS2_M4F, &fw, Some(&tampered), None)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("model blob rejected") && err.contains("CRC"),
        "{err}"
    );
    // A truncated one (header promises more than is flashed: the rest reads as erased flash).
    std::fs::write(&tampered, &blob[..blob.len() / 2]).unwrap();
    let err = mcu::emulate(&MPS2_M4F, &fw, Some(&tampered), None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("model blob rejected"), "{err}");
    assert!(!err.contains("hard fault"), "{err}");
}
