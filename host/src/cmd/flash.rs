//! `emoedge flash`: what a microcontroller needs, and a run of it in QEMU.
//!
//! The model blob lives in its own flash region ([`BLOB_ADDR`]), apart from the firmware, so
//! a new model is flashed without rebuilding the firmware. `--qemu` builds nothing: it runs
//! the built firmware with the blob and a batch of test frames in QEMU's MPS2 AN386
//! (Cortex-M4F) and checks every label and logit against the engine on the host.

use super::Outcome;
use crate::data::load_split;
use crate::inference::{engine_logits, parse_blob};
use anyhow::{Context, Result, bail};
use emoedge_core::NUM_CLASSES;
use emoedge_core::model_files;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Flash address of the model blob (firmware/mcu/memory.x).
pub const BLOB_ADDR: u32 = 0x0008_0000;
/// Flash address of the test frames (firmware/mcu/memory.x).
pub const FRAMES_ADDR: u32 = 0x0018_0000;
/// Where `cargo build --release` in firmware/mcu puts the Cortex-M4F firmware.
pub const DEFAULT_FIRMWARE: &str = "firmware/mcu/target/thumbv7em-none-eabihf/release/emoedge-mcu";

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Model folder [default: models/edge]
    #[arg(long, default_value = "models/edge")]
    model: PathBuf,
    /// Write the blob as a flash image here (format from --format).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Image format: raw bytes, Intel HEX or UF2 placed at the blob's flash address.
    #[arg(long, value_enum, default_value_t = Format::Hex)]
    format: Format,
    /// Flash address of the blob in the image, for a board whose memory map differs from the
    /// QEMU firmware's (e.g. 0x10080000 on an RP2040, whose flash starts at 0x10000000).
    #[arg(long, default_value = "0x00080000", value_parser = parse_u32)]
    addr: u32,
    /// UF2 family ID (the bootloader drops blocks of other families); default RP2040.
    #[arg(long, default_value = "0xe48bff56", value_parser = parse_u32)]
    uf2_family: u32,
    /// Run the firmware with the blob and test frames in QEMU and compare with the host.
    #[arg(long)]
    qemu: bool,
    /// Firmware ELF for --qemu (build it with `cargo build --release` in firmware/mcu).
    #[arg(long, default_value = DEFAULT_FIRMWARE)]
    firmware: PathBuf,
    /// Test images to run in QEMU (spread over the FER2013 test split).
    #[arg(long, default_value_t = 20)]
    frames: usize,
}

/// Flash image formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// The blob's bytes.
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

/// UF2 image of `data` at `addr`: 512-byte blocks carrying 256 bytes each.
pub fn uf2_image(data: &[u8], addr: u32, family: u32) -> Result<Vec<u8>> {
    if !addr.is_multiple_of(256) {
        bail!("UF2 address {addr:#010x} is not 256-byte aligned");
    }
    uf2::bin_to_uf2(&data.to_vec(), family, addr).context("building the UF2 image")
}

/// Intel HEX of `data` at `addr` (extended linear address records, 16-byte data records).
pub fn intel_hex(data: &[u8], addr: u32) -> String {
    let mut out = String::new();
    let rec = |out: &mut String, kind: u8, a: u16, bytes: &[u8]| {
        let mut sum = bytes.len() as u8;
        sum = sum
            .wrapping_add((a >> 8) as u8)
            .wrapping_add(a as u8)
            .wrapping_add(kind);
        let mut line = format!(":{:02X}{:04X}{:02X}", bytes.len(), a, kind);
        for b in bytes {
            line += &format!("{b:02X}");
            sum = sum.wrapping_add(*b);
        }
        line += &format!("{:02X}\n", sum.wrapping_neg());
        out.push_str(&line);
    };
    let mut upper = None;
    for (i, chunk) in data.chunks(16).enumerate() {
        let a = addr + (i * 16) as u32;
        if upper != Some(a >> 16) {
            upper = Some(a >> 16);
            rec(&mut out, 4, 0, &((a >> 16) as u16).to_be_bytes());
        }
        rec(&mut out, 0, a as u16, chunk);
    }
    rec(&mut out, 1, 0, &[]);
    out
}

pub fn run(a: Args) -> Result<Outcome> {
    let blob_path = a.model.join(model_files::BLOB);
    let blob =
        std::fs::read(&blob_path).with_context(|| format!("reading {}", blob_path.display()))?;
    let model = parse_blob(&blob, &blob_path)?;
    if let Some(out) = &a.out {
        let bytes = match a.format {
            Format::Raw => blob.clone(),
            Format::Hex => intel_hex(&blob, a.addr).into_bytes(),
            Format::Uf2 => uf2_image(&blob, a.addr, a.uf2_family)?,
        };
        crate::atomic::write_ctx(out, &bytes)?;
        eprintln!(
            "wrote {} ({:?}, blob of {} bytes at {:#010x})",
            out.display(),
            a.format,
            blob.len(),
            a.addr
        );
    }
    if !a.qemu {
        return Ok(Outcome::Ok);
    }
    if !a.firmware.is_file() {
        bail!(
            "no firmware at {}: build it with `cargo build --release` in firmware/mcu",
            a.firmware.display()
        );
    }
    let test = emoedge_core::paths::data_subdir("fer2013")?.join("test");
    let (ds, _) = load_split(&test, &indicatif::ProgressBar::hidden())?;
    let ds = ds.subsample(a.frames);
    let (text, got) = run_frames(&a.firmware, &blob, &ds)?;
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

/// Runs the firmware in QEMU on every image of `ds` (labels included); returns what it
/// printed and the logits it reported per frame.
pub fn run_frames(
    firmware: &Path,
    blob: &[u8],
    ds: &crate::data::Dataset,
) -> Result<(String, Vec<[i8; NUM_CLASSES]>)> {
    if !firmware.is_file() {
        bail!(
            "no firmware at {}: build it with `cargo build --release` in firmware/mcu",
            firmware.display()
        );
    }
    let tmp = tempfile::tempdir()?;
    let (blob_file, frames_file) = (tmp.path().join("model.blob"), tmp.path().join("frames.bin"));
    std::fs::write(&blob_file, blob)?;
    let mut frames = b"EMOF".to_vec();
    frames.extend_from_slice(&(ds.len() as u32).to_le_bytes());
    for i in 0..ds.len() {
        frames.push(ds.labels[i]);
        frames.extend_from_slice(ds.image(i));
    }
    std::fs::write(&frames_file, &frames)?;
    let text = run_qemu(firmware, &blob_file, Some(&frames_file))?;
    let got = parse_frames(&text);
    if got.len() != ds.len() {
        bail!(
            "QEMU reported {} frames, expected {}:\n{text}",
            got.len(),
            ds.len()
        );
    }
    Ok((text, got))
}

/// Runs the firmware in QEMU (MPS2 AN386, instruction counting) with the blob and frames
/// loaded at their addresses; returns what it printed. Fails if QEMU does not exit cleanly.
pub fn run_qemu(firmware: &Path, blob: &Path, frames: Option<&Path>) -> Result<String> {
    let mut cmd = Command::new("qemu-system-arm");
    cmd.args([
        "-cpu",
        "cortex-m4",
        "-machine",
        "mps2-an386",
        "-nographic",
        "-monitor",
        "none",
    ])
    .args([
        "-semihosting-config",
        "enable=on,target=native",
        "-icount",
        "shift=0",
        "-kernel",
    ])
    .arg(firmware)
    .arg("-device")
    .arg(format!(
        "loader,file={},addr={BLOB_ADDR:#x}",
        blob.display()
    ));
    if let Some(f) = frames {
        cmd.arg("-device")
            .arg(format!("loader,file={},addr={FRAMES_ADDR:#x}", f.display()));
    }
    let out = cmd
        .output()
        .context("running qemu-system-arm (apt-get install qemu-system-arm)")?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() {
        bail!("the firmware failed in QEMU:\n{text}");
    }
    Ok(text)
}

/// The logits of each `frame N label X logits [..]` line.
pub fn parse_frames(text: &str) -> Vec<[i8; NUM_CLASSES]> {
    text.lines()
        .filter(|l| l.starts_with("frame "))
        .filter_map(|l| {
            let inner = l.split_once('[')?.1.split_once(']')?.0;
            let v: Vec<i8> = inner
                .split(',')
                .filter_map(|t| t.trim().parse().ok())
                .collect();
            v.try_into().ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intel_hex_records() {
        let h = intel_hex(&[0x01, 0x02, 0x03], 0x0008_0000);
        let lines: Vec<&str> = h.lines().collect();
        assert_eq!(
            lines,
            [":020000040008F2", ":03000000010203F7", ":00000001FF"]
        );
    }

    #[test]
    fn uf2_blocks_carry_the_blob_at_its_address() {
        let blob: Vec<u8> = (0..600u32).map(|i| (i * 7) as u8).collect();
        let img = uf2_image(&blob, 0x1008_0000, 0xe48b_ff56).unwrap();
        assert_eq!(img.len(), 3 * 512);
        let word = |b: &[u8], i: usize| u32::from_le_bytes(b[i * 4..i * 4 + 4].try_into().unwrap());
        let mut back = Vec::new();
        for (n, block) in img.chunks(512).enumerate() {
            assert_eq!(word(block, 0), 0x0A32_4655);
            assert_eq!(word(block, 1), 0x9E5D_5157);
            assert_eq!(word(block, 2), 0x2000, "family-ID flag");
            assert_eq!(word(block, 3), 0x1008_0000 + 256 * n as u32);
            assert_eq!(word(block, 4), 256);
            assert_eq!((word(block, 5), word(block, 6)), (n as u32, 3));
            assert_eq!(word(block, 7), 0xe48b_ff56);
            assert_eq!(word(block, 127), 0x0AB1_6F30);
            back.extend_from_slice(&block[32..32 + 256]);
        }
        assert_eq!(&back[..600], &blob[..]);
        assert!(uf2_image(&blob, 0x1008_0001, 0).is_err());
        assert_eq!(parse_u32("0x10"), Ok(16));
        assert!(parse_u32("zz").is_err());
    }

    #[test]
    fn parses_frame_lines() {
        let t = "emoedge-mcu: model ok\nframe 0 label happy logits [-3, 4, 5, 120, -128, 0, 1]\nlayer 0\n";
        assert_eq!(parse_frames(t), vec![[-3, 4, 5, 120, -128, 0, 1]]);
    }
}
