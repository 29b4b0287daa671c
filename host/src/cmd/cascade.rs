//! `emoedge cascade`: converts an OpenCV face cascade (XML, Haar or LBP) into the cascade blob every
//! emoedge device evaluates, and says what it holds. `emoedge flash` writes the blob to a
//! board beside the model; `emoedge-pi` and `eval-camera` read either form.

use super::Outcome;
use anyhow::Result;
use emoedge_vision::args::DEFAULT_CASCADE;
use emoedge_vision::detect::Cascade;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// OpenCV cascade XML (or a blob, to check it and print what it holds).
    #[arg(default_value = DEFAULT_CASCADE)]
    cascade: PathBuf,
    /// Write the blob here (atomically).
    #[arg(long)]
    out: Option<PathBuf>,
}

pub fn run(a: Args) -> Result<Outcome> {
    let cascade = Cascade::load(&a.cascade)?;
    let blob = cascade.blob();
    eprintln!(
        "{}: {}x{} window, {} stages, {} weak classifiers, {} nodes; blob {} bytes, CRC-32 {:#010x}",
        a.cascade.display(),
        blob.width(),
        blob.height(),
        blob.stages(),
        blob.weak(),
        blob.nodes(),
        blob.len(),
        blob.crc()
    );
    if let Some(out) = &a.out {
        emoedge::sys::atomic::write_ctx(out, cascade.bytes())?;
        eprintln!("wrote {}", out.display());
    }
    Ok(Outcome::Ok)
}
