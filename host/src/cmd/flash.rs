//! `emoedge flash`: the model blob as a flash image for a board, written to a connected
//! board through probe-rs, or run on the firmware in an emulator and compared with the host.
//!
//! Boards (`--board`, from `emoedge-boards`) know where their firmware keeps the blob, how
//! big that region is, their UF2 family, their chip and their emulator. `--emulate` runs
//! the board's firmware in its emulator (the Pico in rp2040js, the STM32F405 in QEMU's
//! netduinoplus2, the MPS2 builds in QEMU counting instructions); `--qemu --core C` is an
//! alias of `--board mps2-C --emulate`. Nothing is built: the built firmware runs
//! with the blob and a batch of FER2013 `test` frames, and every label and logit is checked
//! against the engine on the host. With `--stream DIR` the board does the whole job on
//! camera frames (the face cascade flashed beside the model): every frame's faces, labels
//! and logits are checked against the Pi's pipeline on the same frames.

use super::Outcome;
use anyhow::{Context, Result, bail};
use emoedge::data::load_split;
use emoedge::export::flash_image::{intel_hex, uf2_image};
use emoedge::mcu::{self, Board, MPS2_M4F};
use emoedge_runtime::{ModelBlob, ModelDir, engine_logits};
use emoedge_vision::FrameSource;
use emoedge_vision::args::DEFAULT_CASCADE;
use emoedge_vision::detect::Cascade;
use emoedge_vision::frame::Files;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Model folder.
    #[arg(long, default_value = "models/edge")]
    model: PathBuf,
    /// The board to flash or emulate: sets the blob's address, the largest blob, the UF2
    /// family, the chip for --probe and the emulator for --emulate. Boards people own:
    /// pico, stm32f405; QEMU's MPS2 builds: mps2-m4f, mps2-m0plus, mps2-m33.
    #[arg(long, value_parser = mcu::parse_board)]
    board: Option<&'static Board>,
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
    /// Flash address of the blob in the image [default: the board's; mps2-m4f's 0x00080000
    /// without --board].
    #[arg(long, value_parser = parse_u32)]
    addr: Option<u32>,
    /// UF2 family ID (the bootloader drops blocks of other families) [default: the board's,
    /// or RP2040's 0xe48bff56].
    #[arg(long, value_parser = parse_u32)]
    uf2_family: Option<u32>,
    /// Write the blob into a connected board's flash with probe-rs (needs --board).
    #[arg(long, requires = "board")]
    probe: bool,
    /// Run the board's firmware in its emulator with the blob and test frames, and compare
    /// with the host (needs --board; the Pico runs in rp2040js, the STM32F405 in QEMU's
    /// netduinoplus2, the MPS2 builds in QEMU).
    #[arg(long, requires = "board")]
    emulate: bool,
    /// The same as `--board mps2-CORE --emulate` (CORE from --core).
    #[arg(long, conflicts_with_all = ["emulate", "board"])]
    qemu: bool,
    /// With --qemu: the MPS2 build to run (m4f, m0plus or m33).
    #[arg(long, value_enum, default_value_t = Core::M4f)]
    core: Core,
    /// Firmware ELF for --qemu or --emulate [default: the build under the firmware's target
    /// folder, made by `cargo build --release` there].
    #[arg(long)]
    firmware: Option<PathBuf>,
    /// Test images to run (spread over the FER2013 test split); with --stream, the most
    /// camera frames to run (fewer when the board's frames region holds fewer).
    #[arg(long, default_value_t = 20)]
    frames: usize,
    /// Camera frames (a folder of images, such as `emoedge stream --frame 160x120` writes)
    /// for the whole job on the board: with --emulate, every frame's faces, labels and
    /// logits are compared with the Pi's pipeline; with --frames-out, they are the frames
    /// image. Frames must be gray-convertible images of one size within the board's
    /// largest (320x240 on the Pico, 160x120 on the STM32F405).
    #[arg(long, value_name = "DIR")]
    stream: Option<PathBuf>,
    /// Face cascade for --stream: OpenCV XML or a cascade blob (`emoedge cascade`).
    #[arg(long, default_value = DEFAULT_CASCADE)]
    cascade: PathBuf,
    /// Also write the face cascade blob as a flash image of the board's cascade region
    /// (format from --format).
    #[arg(long)]
    cascade_out: Option<PathBuf>,
}

/// The MPS2 builds by core, for `--qemu --core`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Core {
    /// mps2-m4f.
    M4f,
    /// mps2-m0plus.
    M0plus,
    /// mps2-m33.
    M33,
}

impl Core {
    fn board(self) -> &'static Board {
        match self {
            Core::M4f => &MPS2_M4F,
            Core::M0plus => &emoedge_boards::MPS2_M0PLUS,
            Core::M33 => &emoedge_boards::MPS2_M33,
        }
    }
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
    let (board, emulate) = match (a.board, a.qemu) {
        (_, true) => (Some(a.core.board()), true),
        (board, false) => (board, a.emulate),
    };
    if let Some(board) = board {
        mcu::check_fits(board, blob.len())?;
    }
    let layout = board.unwrap_or(&MPS2_M4F);
    let addr = a.addr.unwrap_or(layout.blob.origin);
    // UF2 where a drag-and-drop bootloader takes it (the Pico); Intel HEX for probes and
    // vendor tools otherwise.
    let format = a.format.unwrap_or(match board {
        Some(b) if b.name == emoedge_boards::PICO.name => Format::Uf2,
        _ => Format::Hex,
    });
    let family = a
        .uf2_family
        .or(layout.uf2_family)
        .unwrap_or(emoedge_boards::PICO.uf2_family.unwrap_or_default());
    let image = |bytes: &[u8], at: u32| -> Result<Vec<u8>> {
        Ok(match format {
            Format::Raw => bytes.to_vec(),
            Format::Hex => intel_hex(bytes, at).into_bytes(),
            Format::Uf2 => uf2_image(bytes, at, family)?,
        })
    };
    if let Some(out) = &a.out {
        emoedge::sys::atomic::write_ctx(out, &image(blob, addr)?)?;
        eprintln!(
            "wrote {} ({format:?}, blob of {} bytes at {addr:#010x})",
            out.display(),
            blob.len(),
        );
    }
    let stream = match &a.stream {
        Some(dir) => Some(read_stream(dir, layout, a.frames)?),
        None => None,
    };
    if let Some(out) = &a.cascade_out {
        let cascade = Cascade::load(&a.cascade)?;
        mcu::check_region(
            layout,
            layout.cascade,
            "the face cascade",
            cascade.bytes().len(),
        )?;
        let at = layout.cascade.origin;
        emoedge::sys::atomic::write_ctx(out, &image(cascade.bytes(), at)?)?;
        eprintln!(
            "wrote {} ({format:?}, face cascade of {} bytes at {at:#010x})",
            out.display(),
            cascade.bytes().len()
        );
    }
    if let (Some(out), Some(frames)) = (&a.frames_out, &stream) {
        let (w, h) = (frames[0].width, frames[0].height);
        let bytes = mcu::camera::camera_frames_for(layout, frames)?;
        let at = layout.frames.origin;
        emoedge::sys::atomic::write_ctx(out, &image(&bytes, at)?)?;
        eprintln!(
            "wrote {} ({format:?}, {} camera frames of {w}x{h} at {at:#010x})",
            out.display(),
            frames.len()
        );
    } else if let Some(out) = &a.frames_out {
        let test = emoedge_runtime::paths::data_subdir("fer2013")?.join("test");
        let (ds, _) = load_split(&test, &indicatif::ProgressBar::hidden())?;
        let ds = ds.subsample(a.frames);
        let frames = mcu::test_frames(layout, &ds)?;
        let at = layout.frames.origin;
        emoedge::sys::atomic::write_ctx(out, &image(&frames, at)?)?;
        eprintln!(
            "wrote {} ({format:?}, {} test frames at {at:#010x})",
            out.display(),
            ds.len()
        );
    }
    if let (true, Some(board)) = (a.probe, board) {
        probe(board, blob)?;
    }
    let Some(board) = board.filter(|_| emulate) else {
        return Ok(Outcome::Ok);
    };
    let firmware = a.firmware.unwrap_or_else(|| mcu::firmware(board));
    if let Some(frames) = &stream {
        return run_stream(board, &firmware, &a.model, &file, &a.cascade, frames);
    }
    let test = emoedge_runtime::paths::data_subdir("fer2013")?.join("test");
    let (ds, _) = load_split(&test, &indicatif::ProgressBar::hidden())?;
    let ds = ds.subsample(a.frames);
    let (text, got) = mcu::run_frames(board, &firmware, blob, &ds)?;
    print!("{text}");
    let mut arena = vec![0i8; model.arena_len()];
    let mut differ = 0;
    let labels = mcu::parse_frame_labels(&text);
    for (i, g) in got.iter().enumerate() {
        let host = engine_logits(&model, &mut arena, ds.image(i))?;
        let host_label = emoedge_core::labels::name_of(
            model.labels(),
            emoedge_core::emotion::argmax(&host).unwrap_or(0),
        );
        let label = labels.get(i).copied().unwrap_or("?");
        if *g != host || label != host_label {
            differ += 1;
            eprintln!("frame {i}: MCU {label} {g:?}, host engine {host_label} {host:?}");
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

/// The first frames of the folder `dir`, as many as `board`'s frames region holds, at most
/// `most`.
fn read_stream(
    dir: &std::path::Path,
    board: &Board,
    most: usize,
) -> Result<Vec<emoedge_vision::Frame>> {
    let mut files = Files::new(&[dir.to_path_buf()], false)?;
    let mut frames = Vec::new();
    while frames.len() < most {
        let Some(f) = files.next_frame() else { break };
        let f = f?;
        let len = f.gray.len();
        let room =
            (board.frames.len as usize - emoedge_core::camera_frames::HEADER_LEN) / len.max(1);
        if frames.len() >= room {
            eprintln!(
                "the {} board's frames region holds {room} frames of {}x{}: running {room}",
                board.name, f.width, f.height
            );
            break;
        }
        frames.push(f);
    }
    if frames.is_empty() {
        bail!("no frames in {}", dir.display());
    }
    Ok(frames)
}

/// The whole job on the board in its emulator, frame by frame against the Pi's pipeline.
fn run_stream(
    board: &Board,
    firmware: &std::path::Path,
    model: &std::path::Path,
    blob: &ModelBlob,
    cascade: &std::path::Path,
    frames: &[emoedge_vision::Frame],
) -> Result<Outcome> {
    let cascade = Cascade::load(cascade)?;
    let dir = ModelDir::new(model);
    let pi = mcu::camera::pi_faces(&dir, blob.clone(), &cascade, frames)?;
    let (text, got) = mcu::camera::run_on_board(board, firmware, blob.bytes(), &cascade, frames)?;
    print!("{text}");
    let mut differ = Vec::new();
    for (i, (b, p)) in got.iter().zip(&pi).enumerate() {
        if let Some(d) = mcu::camera::first_difference(b, p) {
            eprintln!("frame {i} ({}): {d}", frames[i].source);
            differ.push(i);
        }
    }
    let faces: usize = pi.iter().map(Vec::len).sum();
    if let Some(&first) = differ.first() {
        bail!(
            "{} of {} frames differ between the {} and the Pi's pipeline (first: frame {first}, {})",
            differ.len(),
            frames.len(),
            board.name,
            frames[first].source
        );
    }
    println!(
        "all {} frames ({faces} faces): the {}'s boxes, labels and logits equal the Pi's pipeline",
        frames.len(),
        board.name
    );
    Ok(Outcome::Ok)
}

/// Writes the blob into the connected board's flash with probe-rs, or says how to get it.
fn probe(board: &Board, blob: &[u8]) -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let file = tmp.path().join("model.bin");
    std::fs::write(&file, blob).with_context(|| format!("writing {}", file.display()))?;
    let mut cmd = mcu::probe_command(board, &file)?;
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
            board.name
        );
    }
    eprintln!(
        "flashed {} bytes at {:#010x} on the {} ({})",
        blob.len(),
        board.blob.origin,
        board.name,
        board.probe_chip.unwrap_or_default()
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
