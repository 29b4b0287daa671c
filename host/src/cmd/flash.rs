//! `emoedge flash`: the model blob as a flash image, and a run of the firmware in QEMU.
//!
//! `--qemu` builds nothing: it runs the built firmware with the blob and a batch of test
//! frames in QEMU on an MPS2 board of the chosen core (`--core`: Cortex-M4F, or M0+ code)
//! and checks every label and logit against the engine on the host ([`crate::mcu`]).

use super::Outcome;
use crate::data::load_split;
use crate::mcu::{Core, intel_hex, run_frames, uf2_image};
use anyhow::{Result, bail};
use emoedge_runtime::{ModelDir, engine_logits};
use std::path::PathBuf;

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
    /// Core to run --qemu on: the Cortex-M4F build (DSP kernels) or the Cortex-M0+ build.
    #[arg(long, value_enum, default_value_t = Core::M4f)]
    core: Core,
    /// Firmware ELF for --qemu [default: the --core build under firmware/mcu/target, made by
    /// `cargo build --release --target TARGET` in firmware/mcu].
    #[arg(long)]
    firmware: Option<PathBuf>,
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

pub fn run(a: Args) -> Result<Outcome> {
    let file = ModelDir::new(&a.model).read_blob()?;
    let model = file.model()?;
    let blob = file.bytes();
    if let Some(out) = &a.out {
        let bytes = match a.format {
            Format::Raw => blob.to_vec(),
            Format::Hex => intel_hex(blob, a.addr).into_bytes(),
            Format::Uf2 => uf2_image(blob, a.addr, a.uf2_family)?,
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
    let firmware = a.firmware.unwrap_or_else(|| a.core.firmware("emoedge-mcu"));
    if !firmware.is_file() {
        bail!(
            "no firmware at {}: build it with `cargo build --release --target {}` in firmware/mcu",
            firmware.display(),
            a.core.target()
        );
    }
    let test = emoedge_core::paths::data_subdir("fer2013")?.join("test");
    let (ds, _) = load_split(&test, &indicatif::ProgressBar::hidden())?;
    let ds = ds.subsample(a.frames);
    let (text, got) = run_frames(&firmware, a.core, blob, &ds)?;
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
