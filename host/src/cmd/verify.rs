//! `emoedge verify`: runs [`emoedge::verify::verify`] on a model folder, prints its table and
//! writes its report.

use super::{Outcome, progress};
use anyhow::{Result, bail};
use emoedge::mcu::link::{BoardLink, Wire};
use emoedge::verify::board::{BoardCheck, check_board, summary};
use emoedge::verify::{McuCheck, Options, Report, verify};
use std::path::{Path, PathBuf};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Model folder written by `quantize`.
    #[arg(long, default_value = "models/edge")]
    model: PathBuf,
    /// A split's folder of <class>/<image>, or FER2013's fer2013.csv with --split
    /// [default: $EMOEDGE_DATA/fer2013/test]
    #[arg(long)]
    data: Option<PathBuf>,
    /// With --data fer2013.csv: which rows (its Usage column) to verify on.
    #[arg(long, value_enum, default_value_t = emoedge::data::Split::Test)]
    split: emoedge::data::Split,
    /// A blob read back from a device: must equal the shipped one byte for byte.
    #[arg(long)]
    blob: Option<PathBuf>,
    /// Largest allowed accuracy drop of an int8 form below float, in percentage points.
    #[arg(long, default_value_t = 1.0)]
    max_drop: f64,
    /// Smallest allowed label agreement between tract and the engine.
    #[arg(long, default_value_t = 0.999)]
    min_agree: f64,
    /// Largest allowed logit difference between tract and the engine, in LSB: 1, the
    /// design's bar. Models quantized with `--scales exact` (the default) measure 0;
    /// `--scales plain` models part by 1-3 LSB on some logits, because tract rounds the
    /// requantization product in f32 (BENCHMARKS.md).
    #[arg(long, default_value_t = 1)]
    max_lsb: u32,
    /// Write the full report as JSON here (atomically).
    #[arg(long)]
    json: Option<PathBuf>,
    /// Also run the blob on a board's firmware in its emulator (--board) on this many
    /// images (spread over the data) and require its logits to equal the engine's.
    #[arg(long, value_name = "N", num_args = 0..=1, default_missing_value = "50")]
    mcu: Option<usize>,
    /// The board for --mcu, --port and --emulate (see `emoedge flash --help`); --port and
    /// --emulate need a board with a serial link: pico or stm32f405.
    #[arg(long, value_parser = emoedge::mcu::parse_board, default_value = "mps2-m4f")]
    board: &'static emoedge::mcu::Board,
    /// Firmware ELF for --mcu and --emulate [default: the board's, as `cargo build
    /// --release` in its firmware folder makes it].
    #[arg(long)]
    firmware: Option<PathBuf>,
    /// Check the model on the board plugged into this serial port (115200 8N1): send it
    /// faces of the data, compare every logit it answers with the host engine, and report
    /// its accuracy, agreement and latency. The board must hold the model folder's blob
    /// (`emoedge flash --board B --probe`, or its UF2); another blob stops the check before
    /// any face is sent. Only the board is checked: run `verify` without it for the
    /// artifacts.
    #[arg(long, value_name = "PATH", conflicts_with_all = ["emulate", "mcu", "blob"])]
    port: Option<String>,
    /// As --port, with the board's firmware in its emulator (rp2040js, QEMU) speaking the
    /// same link.
    #[arg(long, conflicts_with_all = ["mcu", "blob"])]
    emulate: bool,
    /// With --emulate on the Pico: speak over its emulated USB (CDC-ACM) instead of UART0.
    #[arg(long, requires = "emulate")]
    usb: bool,
    /// With --port or --emulate: faces to send, spread over the data [default: all].
    #[arg(long, value_name = "N")]
    images: Option<usize>,
    /// With --port or --emulate: seconds to wait for the board's hello.
    #[arg(long, value_name = "S", default_value_t = 20)]
    hello_wait: u64,
}

pub fn run(a: Args) -> Result<Outcome> {
    let data = match a.data {
        Some(d) => d,
        None => emoedge_runtime::paths::data_subdir("fer2013")?.join("test"),
    };
    let link = match (&a.port, a.emulate) {
        (Some(port), _) => Some(BoardLink::open_port(port)?),
        (None, true) => {
            let firmware = a
                .firmware
                .clone()
                .unwrap_or_else(|| emoedge::mcu::firmware(a.board));
            let blob = emoedge_runtime::ModelDir::new(&a.model).blob();
            let wire = if a.usb { Wire::Usb } else { Wire::Uart };
            Some(BoardLink::emulate(a.board, &firmware, &blob, wire)?)
        }
        (None, false) => None,
    };
    if let Some(mut link) = link {
        let check = BoardCheck {
            board: a.board,
            images: a.images,
            hello_wait: std::time::Duration::from_secs(a.hello_wait),
        };
        return run_board(
            &mut link,
            &a.model,
            &data,
            a.split,
            &check,
            a.json.as_deref(),
        );
    }
    let options = Options {
        model: a.model,
        data,
        split: a.split,
        device_blob: a.blob,
        max_drop_pp: a.max_drop,
        min_agree: a.min_agree,
        max_lsb: a.max_lsb,
        mcu: a.mcu.map(|images| McuCheck {
            firmware: a
                .firmware
                .unwrap_or_else(|| emoedge::mcu::firmware(a.board)),
            board: a.board,
            images,
        }),
    };
    let report = verify(&options, &|stage, len| progress::bar(stage, len))?;
    print_report(&report, &options);
    if let Some(path) = &a.json {
        emoedge::sys::atomic::write_ctx(path, serde_json::to_string_pretty(&report)?.as_bytes())?;
    }
    if !report.passed() {
        bail!("verify failed: {}", report.failures.join("; "));
    }
    println!("verify passed");
    Ok(super::report_skipped(&report.skipped_files))
}

/// `verify --port` and `--emulate`: the check on the board, its report printed and written
/// (also when the board stopped answering part-way: what it answered is kept).
fn run_board(
    link: &mut BoardLink,
    model: &Path,
    data: &Path,
    split: emoedge::data::Split,
    check: &BoardCheck,
    json: Option<&Path>,
) -> Result<Outcome> {
    let report = check_board(link, model, data, split, check, &|n| {
        progress::bar("faces", n)
    })?;
    print!("{}", summary(&report));
    if let Some(path) = json {
        emoedge::sys::atomic::write_ctx(path, serde_json::to_string_pretty(&report)?.as_bytes())?;
    }
    let failures = report.failures();
    if !failures.is_empty() {
        bail!("verify on the board failed: {}", failures.join("; "));
    }
    println!("verify on the board passed");
    Ok(Outcome::Ok)
}

/// The report as a table: accuracy and recall per form, agreement, logit differences.
fn print_report(r: &Report, o: &Options) {
    eprintln!("weights sha256: {}", r.weights_summary);
    if let (Some(true), Some(dev)) = (r.device_blob_identical, &o.device_blob) {
        eprintln!(
            "device blob {} is byte-identical to the shipped one",
            dev.display()
        );
    }
    eprintln!(
        "crop contract (detector box to 48x48, SCALE,DX,DY): {}",
        r.crop_contract
    );
    if !r.forms.iter().any(|f| f.form == emoedge::eval::Form::Float) {
        eprintln!(
            "no float weights in {}: comparing the int8 forms only",
            o.model.display()
        );
    }
    println!(
        "{} images from {} ({} skipped)",
        r.images,
        r.data.display(),
        r.skipped
    );
    print!("{:>8} {:>9} |", "form", "accuracy");
    for (name, _) in r.forms.first().map_or(&[][..], |f| &f.recall[..]) {
        print!(" {:>6}", &name[..6.min(name.len())]);
    }
    println!("   (recall per class)");
    for f in &r.forms {
        print!(
            "{:>8} {:>8.2}% |",
            format!("{:?}", f.form).to_lowercase(),
            f.accuracy * 100.0
        );
        for (_, recall) in &f.recall {
            print!(" {:>5.1}%", recall * 100.0);
        }
        println!();
    }
    let differ = r
        .disagreements
        .iter()
        .filter(|d| d.tract != d.engine)
        .count();
    println!(
        "label agreement tract/engine: {:.4}% ({differ} differ)",
        r.agreement_tract_engine * 100.0,
    );
    if let Some(ft) = r.agreement_float_tract {
        println!("label agreement float/tract:  {:.4}%", ft * 100.0);
    }
    println!(
        "largest logit difference tract/engine: {} LSB ({} images over {} LSB)",
        r.max_lsb_tract_engine, r.logits_off_by_more_than_tolerance, o.max_lsb
    );
    if let Some((equal, run)) = r.mcu_equal {
        println!("MCU firmware in QEMU: {equal}/{run} images with logits equal to the engine's");
    }
}
