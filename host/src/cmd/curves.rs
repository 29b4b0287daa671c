//! `emoedge curves`: redraws `curves.png` from a run's or model folder's `metrics.csv`
//! (training draws it every epoch; this is for folders made before, or copied without it).

use super::Outcome;
use anyhow::Result;
use emoedge::report::history::read_metrics_csv;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Folder holding metrics.csv (a run folder or a shipped model folder).
    dir: PathBuf,
    /// Picture to write [default: DIR/curves.png]
    #[arg(long)]
    out: Option<PathBuf>,
}

pub fn run(a: Args) -> Result<Outcome> {
    let history = read_metrics_csv(&a.dir.join("metrics.csv"))?;
    let out = a.out.unwrap_or_else(|| a.dir.join("curves.png"));
    emoedge::report::plots::curves(&history, &out)?;
    eprintln!("{} epochs drawn to {}", history.len(), out.display());
    Ok(Outcome::Ok)
}
