//! The microcontroller side of a deployment, from the host: the boards of
//! `emoedge-boards` (where each keeps the model blob and the test frames, how it is flashed
//! and emulated), and their firmware run in an emulator on test frames, its logits read
//! back.
//!
//! The model blob lives in its own flash region, apart from the firmware, so a new model is
//! flashed without rebuilding the firmware; frames go into a second region in the format of
//! [`emoedge_core::test_frames`]. Boards people own run in an emulator of their chip (the
//! Pico in rp2040js, the STM32F405 in QEMU's netduinoplus2); the MPS2 builds run in QEMU
//! and count instructions per layer.

pub mod camera;
mod emulate;
pub mod link;

use crate::data::Dataset;
use anyhow::{Result, bail};
pub use emoedge_boards::{ALL as BOARDS, Board, Emulator, MPS2_M4F, Region};
pub use emulate::Flashed;
use emulate::{run_qemu_semihosting, run_qemu_serial, run_rp2040js};
use std::path::{Path, PathBuf};
use std::process::Command;

/// `--board NAME` as a command-line value: the board of that name, or an error listing them.
pub fn parse_board(name: &str) -> Result<&'static Board, String> {
    emoedge_boards::by_name(name).ok_or_else(|| {
        let names: Vec<&str> = BOARDS.iter().map(|b| b.name).collect();
        format!("no board {name:?}; the boards are {}", names.join(", "))
    })
}

/// Where `cargo build --release` in the board's firmware folder puts binary `bin`, from the
/// repository root.
pub fn firmware_path(board: &Board, bin: &str) -> PathBuf {
    Path::new(board.firmware_dir)
        .join("target")
        .join(board.target)
        .join("release")
        .join(bin)
}

/// The board's firmware binary, from the repository root.
pub fn firmware(board: &Board) -> PathBuf {
    firmware_path(board, board.firmware_bin)
}

/// Refuses a blob that does not fit the board's region.
pub fn check_fits(board: &Board, blob_len: usize) -> Result<()> {
    check_region(board, board.blob, "the model blob", blob_len)
}

/// Refuses `len` bytes of `what` that do not fit `region` of `board`.
pub fn check_region(board: &Board, region: Region, what: &str, len: usize) -> Result<()> {
    if len > region.len as usize {
        bail!(
            "{what} has {len} bytes; the {} board keeps {} bytes for it at {:#010x}",
            board.name,
            region.len,
            region.origin
        );
    }
    Ok(())
}

/// The `probe-rs` command that writes `blob_file` (raw bytes) into the board's blob region;
/// an error for a board no probe reaches (the emulated MPS2 builds).
pub fn probe_command(board: &Board, blob_file: &Path) -> Result<Command> {
    let Some(chip) = board.probe_chip else {
        bail!(
            "the {} board is emulated only: there is no chip to write with probe-rs",
            board.name
        );
    };
    let mut cmd = Command::new("probe-rs");
    cmd.args(["download", "--binary-format", "bin", "--base-address"])
        .arg(format!("{:#x}", board.blob.origin))
        .args(["--chip", chip])
        .arg(blob_file);
    Ok(cmd)
}

/// Runs `firmware` in the board's emulator with the blob and frames (when given) in their
/// flash regions; returns what it printed. Fails when the firmware reports an error or
/// stops without a verdict.
pub fn emulate(
    board: &Board,
    firmware: &Path,
    blob: Option<&Path>,
    frames: Option<&Path>,
) -> Result<String> {
    emulate_flashed(
        board,
        firmware,
        &Flashed {
            blob,
            frames,
            cascade: None,
        },
    )
}

/// Runs `firmware` in `board`'s emulator with `files` in their flash regions; returns what
/// it printed.
pub fn emulate_flashed(board: &Board, firmware: &Path, files: &Flashed) -> Result<String> {
    match board.emulator {
        Emulator::Rp2040js => run_rp2040js(board, firmware, files),
        Emulator::QemuSerial { machine } => run_qemu_serial(board, machine, firmware, files),
        Emulator::QemuSemihosting { machine, cpu } => {
            run_qemu_semihosting(board, (machine, cpu), firmware, files)
        }
    }
}

/// Runs the board's firmware in its emulator on every image of `ds` (labels included);
/// returns what it printed and the logits it reported per frame.
pub fn run_frames(
    board: &Board,
    firmware: &Path,
    blob: &[u8],
    ds: &Dataset,
) -> Result<(String, Vec<Vec<i8>>)> {
    check_firmware(board, firmware)?;
    check_fits(board, blob.len())?;
    with_frames(board, blob, ds, |b, f| {
        emulate(board, firmware, Some(b), Some(f))
    })
}

/// Refuses a firmware path with nothing built there, saying how to build it.
pub fn check_firmware(board: &Board, firmware: &Path) -> Result<()> {
    if !firmware.is_file() {
        bail!(
            "no firmware at {}: build it with `cargo build --release --target {}` in {}",
            firmware.display(),
            board.target,
            board.firmware_dir
        );
    }
    Ok(())
}

/// Refuses a report that holds another number of frames than were sent.
pub fn check_frame_count(text: &str, reported: usize, sent: usize) -> Result<()> {
    if reported != sent {
        bail!("the firmware reported {reported} frames, expected {sent}:\n{text}");
    }
    Ok(())
}

/// `ds` in the test-frames format; refused when it does not fit `board`'s frames region.
pub fn test_frames(board: &Board, ds: &Dataset) -> Result<Vec<u8>> {
    let frames =
        emoedge_core::test_frames::write((0..ds.len()).map(|i| (Some(ds.labels[i]), ds.image(i))));
    let what = format!("{} test frames", ds.len());
    check_region(board, board.frames, &what, frames.len())?;
    Ok(frames)
}

/// Writes `ds` as test frames and `blob` into a temporary folder, runs `run` on their paths
/// and returns what it printed and the logits it reported per frame.
fn with_frames(
    board: &Board,
    blob: &[u8],
    ds: &Dataset,
    run: impl FnOnce(&Path, &Path) -> Result<String>,
) -> Result<(String, Vec<Vec<i8>>)> {
    let frames = test_frames(board, ds)?;
    let tmp = tempfile::tempdir()?;
    let (blob_file, frames_file) = (tmp.path().join("model.blob"), tmp.path().join("frames.bin"));
    std::fs::write(&blob_file, blob)?;
    std::fs::write(&frames_file, &frames)?;
    let text = run(&blob_file, &frames_file)?;
    let got = parse_frames(&text);
    check_frame_count(&text, got.len(), ds.len())?;
    Ok((text, got))
}

/// The label of each `frame N label X logits [..]` line.
pub fn parse_frame_labels(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|l| l.starts_with("frame "))
        .filter_map(|l| l.split_once(" label ")?.1.split_once(" logits"))
        .map(|(label, _)| label)
        .collect()
}

/// The logits of each `frame N label X logits [..]` line.
pub fn parse_frames(text: &str) -> Vec<Vec<i8>> {
    text.lines()
        .filter(|l| l.starts_with("frame "))
        .filter_map(|l| {
            let inner = l.split_once('[')?.1.split_once(']')?.0;
            let v: Vec<i8> = inner
                .split(',')
                .filter_map(|t| t.trim().parse().ok())
                .collect();
            (!v.is_empty()).then_some(v)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boards_refuse_blobs_larger_than_their_region() {
        let b = &emoedge_boards::PICO;
        assert!(check_fits(b, b.blob.len as usize).is_ok());
        let err = check_fits(b, b.blob.len as usize + 1)
            .unwrap_err()
            .to_string();
        assert!(err.contains("pico") && err.contains("0x10100000"), "{err}");
    }

    #[test]
    fn boards_are_named_on_the_command_line() {
        assert_eq!(
            parse_board("stm32f405").unwrap().probe_chip,
            Some("STM32F405RGTx")
        );
        let err = parse_board("esp32").unwrap_err();
        assert!(err.contains("pico") && err.contains("mps2-m33"), "{err}");
        assert_eq!(
            firmware(&emoedge_boards::PICO),
            Path::new("firmware/pico/target/thumbv6m-none-eabi/release/emoedge-pico")
        );
        assert!(probe_command(&MPS2_M4F, Path::new("m.bin")).is_err());
    }

    #[test]
    fn probe_rs_is_asked_for_the_blob_region() {
        let cmd = probe_command(&emoedge_boards::PICO, Path::new("m.bin")).unwrap();
        let args: Vec<_> = cmd
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(cmd.get_program(), "probe-rs");
        assert_eq!(
            args,
            [
                "download",
                "--binary-format",
                "bin",
                "--base-address",
                "0x10100000",
                "--chip",
                "RP2040",
                "m.bin"
            ]
        );
    }

    #[test]
    fn parses_frame_lines() {
        let t = "emoedge-mcu: model ok\nframe 0 label happy logits [-3, 4, 5, 120, -128, 0, 1]\nlayer 0\n";
        assert_eq!(parse_frames(t), vec![vec![-3, 4, 5, 120, -128, 0, 1]]);
        assert_eq!(parse_frame_labels(t), ["happy"]);
    }
}
