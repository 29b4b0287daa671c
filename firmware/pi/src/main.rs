//! `emoedge-pi`: the Raspberry Pi / Linux runtime. Frames in, faces found, emotions out.
//!
//! This first version resolves the shipped model and the inputs, and says clearly what is
//! missing; the frame sources, face detector and inference land with their issues.

use anyhow::{Result, bail};
use clap::Parser;
use std::path::PathBuf;

/// The model folder the runtime uses when `--model` is not given.
const DEFAULT_MODEL: &str = "models/edge";

/// Find faces in camera frames or images and label their emotions.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Image files or folders [default: $EMOEDGE_DATA/faces]
    inputs: Vec<PathBuf>,
    /// Model folder holding model.int8.onnx and model.blob.
    #[arg(long, default_value = DEFAULT_MODEL)]
    model: PathBuf,
}

fn run(args: Args) -> Result<()> {
    let onnx = args.model.join("model.int8.onnx");
    if !onnx.is_file() {
        bail!(
            "no model at {}: none is shipped yet. Make one with\n  \
             cargo run --release -p emoedge -- train --out runs/edge\n  \
             cargo run --release -p emoedge -- quantize --model runs/edge --out {}\n\
             or pass --model DIR",
            onnx.display(),
            args.model.display()
        );
    }
    let inputs = if args.inputs.is_empty() {
        vec![emoedge_core::paths::data_subdir("faces")?]
    } else {
        args.inputs
    };
    bail!(
        "found {} but this build cannot run it yet (inputs: {:?})",
        onnx.display(),
        inputs
    )
}

fn main() -> std::process::ExitCode {
    match run(Args::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
