//! `emoedge flash`: the model blob as a flash image for a board, written to a connected
//! board through probe-rs, or run on the firmware in an emulator and compared with the host.
//!
//! Boards (`--board`) know where their firmware keeps the blob, how big that region is and
//! their UF2 family ([`crate::mcu::Board`]). `--emulate` runs the board's own firmware in an
//! emulator of its chip (the Pico in rp2040js); `--qemu` runs the firmware of
//! `firmware/mcu` on QEMU's MPS2 boards for the core chosen with `--core`. Neither builds
//! anything: they run the built firmware with the blob and a batch of FER2013 `test` frames
//! and check every label and logit against the engine on the host.

use super::Outcome;
use crate::data::load_split;
use crate::mcu::{
    BLOB_ADDR, Board, Core, FRAMES_ADDR, intel_hex, run_board_frames, run_frames, uf2_image,
};
use anyhow::{Context, Result, bail};
use emoedge_runtime::{ModelDir, engine_logits};
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Model folder [default: models/edge]
    #[arg(long, default_value = "models/edge")]
    model: PathBuf,
    /// The board to flash or emulate: sets the blob's address, the largest blob, the UF2
    /// family and the chip for --probe.
    #[arg(long, value_enum)]
    board: Option<Board>,
    /// Write the blob as a flash image here (format from --format).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Also write --frames FER2013 `test` images as a flash image of the firmware's test
    /// frames region (format from --format), for a board without a camera.
    #[arg(long)]
    frames_out: Option<PathBuf>,
    /// Image format: raw bytes (`bin`), Intel HEX or UF2 placed at the blob's flash address
    /// [default: uf2 for the Pico, hex otherwise].
    #[arg(long, value_enum)]
    format: Option<Format>,
    /// Flash address of the blob in the image [default: the board's, or 0x00080000 for the
    /// QEMU firmware of firmware/mcu].
    #[arg(long, value_parser = parse_u32)]
    addr: Option<u32>,
    /// UF2 family ID (the bootloader drops blocks of other families) [default: the board's,
    /// or RP2040's 0xe48bff56].
    #[arg(long, value_parser = parse_u32)]
    uf2_family: Option<u32>,
    /// Write the blob into a connected board's flash with probe-rs (needs --board).
    #[arg(long, requires = "board")]
    probe: bool,
    /// Run the board's firmware in an emulator of its chip with the blob and test frames,
    /// and compare with the host (needs --board; the Pico runs in rp2040js, the STM32F405
    /// in QEMU's netduinoplus2).
    #[arg(long, requires = "board")]
    emulate: bool,
    /// Run the firmware of firmware/mcu with the blob and test frames in QEMU and compare
    /// with the host.
    #[arg(long, conflicts_with = "emulate")]
    qemu: bool,
    /// Core to run --qemu on: the Cortex-M4F build (DSP kernels), the Cortex-M0+ build or the
    /// Cortex-M33 build.
    #[arg(long, value_enum, default_value_t = Core::M4f)]
    core: Core,
    /// Firmware ELF for --qemu or --emulate [default: the build under the firmware's target
    /// folder, made by `cargo build --release` there].
    #[arg(long)]
    firmware: Option<PathBuf>,
    /// Test images to run (spread over the FER2013 test split).
    #[arg(long, default_value_t = 20)]
    frames: usize,
}

/// Flash image formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// The blob's bytes.
    #[value(alias = "bin")]
    Raw,
    /// Intel HEX records at the blob's address.
    Hex,
    /// UF2 blocks (256 payload bytes each) at the blob's address, for drag-and-drop
    /// bootloaders (RP2040, many nRF52 and SAMD boards).
    Uf2,
}

fn parse_u32(s: &str) -> Result<u32, String> {
    let r = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(hex, 16),
        None => s.parse(),
    };
    r.map_err(|e| format!("{s:?} is not a 32-bit number: {e}"))
}

pub fn run(a: Args) -> Result<Outcome> {
    let file = ModelDir::new(&a.model).read_blob()?;
    let model = file.model()?;
    let blob = file.bytes();
    if let Some(board) = a.board {
        board.check_fits(blob.len())?;
    }
    let addr = a
        .addr
        .unwrap_or_else(|| a.board.map_or(BLOB_ADDR, Board::blob_addr));
    // UF2 where a drag-and-drop bootloader takes it (the Pico); Intel HEX for probes and
    // vendor tools otherwise.
    let format = a.format.unwrap_or(match a.board {
        Some(Board::Pico) => Format::Uf2,
        Some(Board::Stm32f405) | None => Format::Hex,
    });
    let family = a
        .uf2_family
        .unwrap_or_else(|| a.board.unwrap_or(Board::Pico).uf2_family());
    if let Some(out) = &a.out {
        let bytes = match format {
            Format::Raw => blob.to_vec(),
            Format::Hex => intel_hex(blob, addr).into_bytes(),
            Format::Uf2 => uf2_image(blob, addr, family)?,
        };
        crate::atomic::write_ctx(out, &bytes)?;
        eprintln!(
            "wrote {} ({format:?}, blob of {} bytes at {addr:#010x})",
            out.display(),
            blob.len(),
        );
    }
    if let Some(out) = &a.frames_out {
        let test = emoedge_core::paths::data_subdir("fer2013")?.join("test");
        let (ds, _) = load_split(&test, &indicatif::ProgressBar::hidden())?;
        let ds = ds.subsample(a.frames);
        let frames = emoedge_core::test_frames::write(
            (0..ds.len()).map(|i| (Some(ds.labels[i]), ds.image(i))),
        );
        let (at, room) = a.board.map_or((FRAMES_ADDR, 0x20_0000), |b| {
            (b.frames_addr(), b.frames_region())
        });
        if frames.len() > room {
            bail!(
                "{} test frames take {} bytes; the frames region holds {room}",
                ds.len(),
                frames.len()
            );
        }
        let bytes = match format {
            Format::Raw => frames,
            Format::Hex => intel_hex(&frames, at).into_bytes(),
            Format::Uf2 => uf2_image(&frames, at, family)?,
        };
        crate::atomic::write_ctx(out, &bytes)?;
        eprintln!(
            "wrote {} ({format:?}, {} test frames at {at:#010x})",
            out.display(),
            ds.len()
        );
    }
    if let (true, Some(board)) = (a.probe, a.board) {
        probe(board, blob)?;
    }
    let emulator = match (a.qemu, a.emulate, a.board) {
        (true, _, _) => Emulator::Qemu(
            a.core,
            a.firmware.unwrap_or_else(|| a.core.firmware("emoedge-mcu")),
        ),
        (_, true, Some(board)) => {
            Emulator::Board(board, a.firmware.unwrap_or_else(|| board.firmware()))
        }
        _ => return Ok(Outcome::Ok),
    };
    let test = emoedge_core::paths::data_subdir("fer2013")?.join("test");
    let (ds, _) = load_split(&test, &indicatif::ProgressBar::hidden())?;
    let ds = ds.subsample(a.frames);
    let (text, got) = match &emulator {
        Emulator::Qemu(core, fw) => run_frames(fw, *core, blob, &ds)?,
        Emulator::Board(board, fw) => run_board_frames(*board, fw, blob, &ds)?,
    };
    print!("{text}");
    let mut arena = vec![0i8; model.arena_len()];
    let mut differ = 0;
    for (i, g) in got.iter().enumerate() {
        let host = engine_logits(&model, &mut arena, ds.image(i))?;
        if *g != host {
            differ += 1;
            eprintln!("frame {i}: MCU logits {g:?}, host engine {host:?}");
        }
    }
    if differ > 0 {
        bail!(
            "{differ} of {} frames differ between the MCU and the host engine",
            ds.len()
        );
    }
    println!(
        "all {} frames: MCU labels and logits equal the host engine's",
        ds.len()
    );
    Ok(Outcome::Ok)
}

/// Where the firmware runs for --qemu or --emulate, and which firmware.
enum Emulator {
    Qemu(Core, PathBuf),
    Board(Board, PathBuf),
}

/// Writes the blob into the connected board's flash with probe-rs, or says how to get it.
fn probe(board: Board, blob: &[u8]) -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let file = tmp.path().join("model.bin");
    std::fs::write(&file, blob).with_context(|| format!("writing {}", file.display()))?;
    let mut cmd = board.probe_command(&file);
    eprintln!("running {cmd:?}");
    let status = match cmd.status() {
        Ok(status) => status,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "probe-rs is not installed: `cargo install probe-rs-tools` (or see https://probe.rs); \
             without a debug probe, flash the UF2 image instead (`--out model.uf2`)"
        ),
        Err(e) => return Err(e).context("running probe-rs"),
    };
    if !status.success() {
        bail!(
            "probe-rs failed ({status}) writing the blob to the {}",
            board.name()
        );
    }
    eprintln!(
        "flashed {} bytes at {:#010x} on the {} ({})",
        blob.len(),
        board.blob_addr(),
        board.name(),
        board.probe_chip()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse_as_hex_or_decimal() {
        assert_eq!(parse_u32("0x10"), Ok(16));
        assert_eq!(parse_u32("0X10"), Ok(16));
        assert_eq!(parse_u32("16"), Ok(16));
        assert!(parse_u32("zz").is_err());
    }
}
