//! Boards people own (`emoedge flash --board`): each board's firmware runs the shipped model
//! in an emulator of its chip (the Pico in rp2040js, the STM32F405 in QEMU's netduinoplus2)
//! with exactly the host engine's logits and refuses missing or tampered blobs on its UART;
//! images carry the blob at the board's address; `--probe` asks probe-rs for the board's
//! region (a stand-in `probe-rs` on `PATH` records what it was asked).
//!
//! The emulator test needs each firmware built (`cargo build --release` in firmware/pico and
//! firmware/stm32f405), Node.js with rp2040js (`npm ci --prefix firmware/pico`) and
//! qemu-system-arm; without them it says it skipped, unless `$EMOEDGE_REQUIRE_MCU` is set
//! (CI).

use emoedge::mcu::{self, Board, Emulator};
use emoedge_boards::{PICO, STM32F405};
use emoedge_test_support::data_dir;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root: the board runners and firmware paths are relative to it.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn emoedge(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_emoedge"));
    cmd.args(args)
        .current_dir(root())
        .env("EMOEDGE_DATA", data_dir());
    cmd
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// The board's firmware, when it and the board's emulator are there.
fn board_firmware(board: &Board) -> Option<PathBuf> {
    let fw = root().join(mcu::firmware(board));
    let runs = |cmd: &str, arg: &str| {
        Command::new(cmd)
            .arg(arg)
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let emulator = match board.emulator {
        Emulator::Rp2040js => {
            runs("node", "--version")
                && root()
                    .join(board.firmware_dir)
                    .join("node_modules/rp2040js")
                    .is_dir()
        }
        Emulator::QemuSerial { .. } | Emulator::QemuSemihosting { .. } => {
            runs("qemu-system-arm", "--version")
        }
    };
    if fw.is_file() && emulator {
        return Some(fw);
    }
    assert!(
        std::env::var_os("EMOEDGE_REQUIRE_MCU").is_none(),
        "{}: firmware {} ({}) or its emulator ({emulator}) missing",
        board.name,
        fw.display(),
        fw.is_file()
    );
    eprintln!(
        "SKIPPED: build {} (cargo build --release) and install its emulator (README)",
        board.firmware_dir
    );
    None
}

/// Every board's firmware in its emulator: 20 `test` frames with the host engine's logits,
/// then blobs the host would refuse, which the firmware must name on its UART and stop at,
/// never fault.
#[test]
fn boards_in_their_emulators_match_the_host_engine_and_refuse_bad_blobs() {
    for board in [&PICO, &STM32F405] {
        let Some(fw) = board_firmware(board) else {
            continue;
        };
        let name = board.name;
        let out = emoedge(&["flash", "--board", name, "--emulate", "--frames", "20"])
            .output()
            .unwrap();
        let t = text(&out);
        eprintln!("{t}");
        assert!(out.status.success(), "{name}: {t}");
        assert!(
            t.contains("all 20 frames: MCU labels and logits equal the host engine's"),
            "{name}: {t}"
        );
        assert!(t.contains(" per inference"), "{name}: {t}");

        let tmp = tempfile::tempdir().unwrap();
        let blob = std::fs::read(root().join("models/edge/model.blob")).unwrap();
        let erased = tmp.path().join("erased.bin");
        std::fs::write(&erased, [0xffu8; 64]).unwrap();
        let err = mcu::emulate(board, &fw, Some(&erased), None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("no valid model blob"), "{name}: {err}");
        let mut bad = blob.clone();
        let n = bad.len();
        bad[n - 3] ^= 0x10;
        let tampered = tmp.path().join("tampered.blob");
        std::fs::write(&tampered, &bad).unwrap();
        let err = mcu::emulate(board, &fw, Some(&tampered), None)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("model blob rejected") && err.contains("CRC"),
            "{name}: {err}"
        );
        std::fs::write(&tampered, &blob[..blob.len() / 2]).unwrap();
        let err = mcu::emulate(board, &fw, Some(&tampered), None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("model blob rejected"), "{name}: {err}");
        assert!(
            !err.contains("hard fault") && !err.contains("panic"),
            "{name}: {err}"
        );
    }
}

#[test]
fn board_images_carry_the_blob_at_the_board_address() {
    let tmp = tempfile::tempdir().unwrap();
    let uf2 = tmp.path().join("model.uf2");
    let out = emoedge(&["flash", "--board", "pico", "--out"])
        .arg(&uf2)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let img = std::fs::read(&uf2).unwrap();
    let word = |i: usize| u32::from_le_bytes(img[i * 4..i * 4 + 4].try_into().unwrap());
    assert_eq!(word(0), 0x0A32_4655, "UF2 magic");
    assert_eq!(word(3), PICO.blob.origin);
    assert_eq!(Some(word(7)), PICO.uf2_family);
    let blob = std::fs::read(root().join("models/edge/model.blob")).unwrap();
    assert_eq!(&img[32..32 + 256], &blob[..256]);

    // Test frames for a board without a camera: right after the blob region.
    let frames = tmp.path().join("frames.uf2");
    let out = emoedge(&["flash", "--board", "pico", "--frames", "3", "--frames-out"])
        .arg(&frames)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let img = std::fs::read(&frames).unwrap();
    let word = |i: usize| u32::from_le_bytes(img[i * 4..i * 4 + 4].try_into().unwrap());
    assert_eq!(word(3), PICO.frames.origin);
    assert_eq!(&img[32..36], b"EMOF");

    let bin = tmp.path().join("model.bin");
    let out = emoedge(&["flash", "--board", "pico", "--format", "bin", "--out"])
        .arg(&bin)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(std::fs::read(&bin).unwrap(), blob);

    let out = emoedge(&["flash", "--board", "nosuch"]).output().unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out).contains("no board \"nosuch\"; the boards are pico, stm32f405"),
        "{}",
        text(&out)
    );
}

#[cfg(unix)]
#[test]
fn probe_writes_the_blob_through_probe_rs() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let bin = tmp.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    // A stand-in probe-rs: records its arguments and the file it was given.
    let script = bin.join("probe-rs");
    let log = tmp.path().join("args.txt");
    let copy = tmp.path().join("flashed.bin");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$@\" > '{}'\nfor a; do last=$a; done\ncp \"$last\" '{}'\n",
            log.display(),
            copy.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = emoedge(&["flash", "--board", "pico", "--probe"])
        .env("PATH", &path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let args = std::fs::read_to_string(&log).unwrap();
    let args: Vec<&str> = args.lines().collect();
    assert_eq!(
        args[..7],
        [
            "download",
            "--binary-format",
            "bin",
            "--base-address",
            "0x10100000",
            "--chip",
            "RP2040"
        ]
    );
    let blob = std::fs::read(root().join("models/edge/model.blob")).unwrap();
    assert_eq!(std::fs::read(&copy).unwrap(), blob);

    // Without probe-rs: a clear message saying how to get it.
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let out = emoedge(&["flash", "--board", "pico", "--probe"])
        .env("PATH", &empty)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out).contains("cargo install probe-rs-tools"),
        "{}",
        text(&out)
    );
}
