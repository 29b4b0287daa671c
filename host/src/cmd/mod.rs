//! One file per subcommand. Each parses its own flags (clap) and returns an [`Outcome`].

mod average;
mod bench;
mod cascade;
mod curves;
mod eval;
mod eval_camera;
mod flash;
mod progress;
mod quantize;
mod stream;
mod train;
mod verify;

use clap::{Parser, Subcommand};

/// How a command ended when it did not fail outright.
#[derive(Debug)]
pub enum Outcome {
    /// Everything worked.
    Ok,
    /// The work was done, but something was skipped (exit status 3), e.g. corrupt images.
    Partial(String),
}

/// emoedge: train, evaluate, quantize, export, flash and verify facial-emotion models.
#[derive(Parser, Debug)]
#[command(version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Train a model on FER-style folders (train/<class>/*.png, test/<class>/*.png).
    Train(train::Args),
    /// Evaluate a model on a folder: accuracy, per-class precision/recall/F1, confusion.
    Eval(eval::Args),
    /// Run the whole Pi pipeline (detect, crop, classify) on a camera-like stream made
    /// from a labelled folder: faces found, accuracy among them beside direct accuracy,
    /// end-to-end accuracy, extra boxes, per class; and the detector on real photos.
    EvalCamera(eval_camera::Args),
    /// Write a camera-like stream made from a labelled folder: PNG frames + truth.csv.
    Stream(stream::Args),
    /// Quantize a trained run to int8 and write the ONNX model, the MCU blob and quant.json.
    Quantize(quantize::Args),
    /// Check that every deployed form (tract int8, engine int8) is as accurate as the float
    /// model, that they agree, and that the artifacts carry the same weights.
    Verify(verify::Args),
    /// Convert an OpenCV face cascade (XML, Haar or LBP) into the checked integer blob every device runs
    /// and `flash` writes to a board.
    Cascade(cascade::Args),
    /// Write the blob (and test frames) as a flash image for a board, write it to a board
    /// with probe-rs (--probe), or run the board's firmware in its emulator and compare
    /// every logit with the host (--emulate).
    Flash(flash::Args),
    /// Average a run's weights over a range of epochs (SWA) into a model folder, with
    /// BatchNorm statistics re-estimated on the training images.
    Average(average::Args),
    /// Benchmarks: training throughput, and engine vs tract inference latency.
    Bench(bench::Args),
    /// Redraw curves.png (loss and accuracy per epoch) from a folder's metrics.csv.
    Curves(curves::Args),
}

impl Cli {
    /// Runs the chosen subcommand.
    pub fn run(self) -> anyhow::Result<Outcome> {
        match self.command {
            Command::Train(a) => train::run(a),
            Command::Eval(a) => eval::run(a),
            Command::EvalCamera(a) => eval_camera::run(a),
            Command::Stream(a) => stream::run(a),
            Command::Quantize(a) => quantize::run(a),
            Command::Verify(a) => verify::run(a),
            Command::Cascade(a) => cascade::run(a),
            Command::Flash(a) => flash::run(a),
            Command::Average(a) => average::run(a),
            Command::Bench(a) => bench::run(a),
            Command::Curves(a) => curves::run(a),
        }
    }
}

/// Turns a list of skipped files into an outcome, printing each once.
pub(crate) fn report_skipped(skipped: &[emoedge::data::Skipped]) -> Outcome {
    for s in skipped {
        eprintln!("skipped {}: {}", s.path.display(), s.reason);
    }
    if skipped.is_empty() {
        Outcome::Ok
    } else {
        Outcome::Partial(format!("{} file(s) were skipped", skipped.len()))
    }
}
