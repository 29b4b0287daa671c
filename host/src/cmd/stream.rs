//! `emoedge stream`: camera-like frames made from a labelled folder, written as PNG files
//! with a `truth.csv`, for `emoedge-pi` or any other pipeline to be run on.

use super::{Outcome, progress};
use anyhow::{Context, Result};
use emoedge::data::{CsvClasses, Split, load_source};
use emoedge::stream::StreamSpec;
use rayon::prelude::*;
use std::path::PathBuf;

/// How the frames are made (shared with `emoedge eval-camera`).
#[derive(clap::Args, Debug, Clone)]
pub struct SpecArgs {
    /// Seed of every random choice; the same seed makes the same frames.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Frame size.
    #[arg(long, value_name = "WxH", default_value = "640x480")]
    frame: String,
    /// Side of a face's 48x48 image in the frame, pixels, drawn per frame.
    #[arg(long, value_name = "MIN-MAX", default_value = "96-192")]
    face_px: String,
    /// Largest rotation of a face either way, degrees.
    #[arg(long, default_value_t = StreamSpec::default().rotation_deg)]
    rotation: f32,
    /// Mirrored context around a face on each side, fraction of its side, drawn per frame.
    #[arg(long, value_name = "MIN-MAX", default_value = "0.15-0.35")]
    context: String,
    /// Exposure gain, drawn per frame.
    #[arg(long, value_name = "MIN-MAX", default_value = "0.7-1.2")]
    gain: String,
    /// Side light: brightness change across a face, fraction, either way.
    #[arg(long, default_value_t = StreamSpec::default().side_light)]
    side_light: f32,
    /// Sensor noise, standard deviation in grey levels.
    #[arg(long, default_value_t = StreamSpec::default().noise)]
    noise: f32,
}

/// `MIN-MAX` as two numbers.
fn range<T: std::str::FromStr>(flag: &str, text: &str) -> Result<(T, T)> {
    text.split_once('-')
        .and_then(|(a, b)| Some((a.trim().parse().ok()?, b.trim().parse().ok()?)))
        .with_context(|| format!("--{flag} {text}: expected MIN-MAX, e.g. 1-2"))
}

impl SpecArgs {
    /// The spec these flags describe, checked.
    pub fn spec(&self) -> Result<StreamSpec> {
        let (w, h) = emoedge_vision::frame::parse_size(&self.frame)?;
        let spec = StreamSpec {
            frame: (w, h),
            face_px: range("face-px", &self.face_px)?,
            context: range("context", &self.context)?,
            rotation_deg: self.rotation,
            gain: range("gain", &self.gain)?,
            side_light: self.side_light,
            noise: self.noise,
            seed: self.seed,
        };
        spec.check()?;
        Ok(spec)
    }
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// A split's folder of <class>/<image> faces, or FER2013's fer2013.csv with --split
    /// [default: $EMOEDGE_DATA/fer2013/test]
    #[arg(long)]
    data: Option<PathBuf>,
    /// With --data fer2013.csv: which rows (its Usage column) to take.
    #[arg(long, value_enum, default_value_t = Split::Test)]
    split: Split,
    /// Folder to write `frame-NNNNNN.png` and `truth.csv` into (created).
    #[arg(long)]
    out: PathBuf,
    /// Faces to use, spread evenly over the folder (0: all).
    #[arg(long, default_value_t = 0)]
    faces: usize,
    #[command(flatten)]
    spec: SpecArgs,
}

pub fn run(a: Args) -> Result<Outcome> {
    let spec = a.spec.spec()?;
    let data = match a.data {
        Some(d) => d,
        None => emoedge_runtime::paths::data_subdir("fer2013")?.join("test"),
    };
    let (ds, skipped) = load_source(
        &data,
        a.split,
        &CsvClasses::Fer2013,
        &progress::bar("decode", 0),
    )?;
    let picks = emoedge::camera_eval::spread(ds.len(), a.faces);
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let pb = progress::bar("frames", picks.len() as u64);
    let rows = picks
        .par_iter()
        .map(|&i| -> Result<String> {
            let shot = spec.render(i as u64, ds.image(i));
            let name = format!("frame-{i:06}.png");
            let mut png = Vec::new();
            image::GrayImage::from_raw(shot.width, shot.height, shot.gray)
                .context("frame buffer size")?
                .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)?;
            emoedge::sys::atomic::write_ctx(&a.out.join(&name), &png)?;
            pb.inc(1);
            let emoedge_core::preprocess::FaceBox { x, y, w, h } = shot.truth;
            let label = emoedge_core::labels::name_of(&ds.classes, ds.labels[i] as usize);
            Ok(format!(
                "{name},{},{label},{x},{y},{w},{h},{:.2}\n",
                ds.paths[i].display(),
                shot.rotation_deg
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    pb.finish_and_clear();
    let mut csv = String::from("frame,source,label,x,y,w,h,rotation_deg\n");
    csv.extend(rows);
    emoedge::sys::atomic::write_ctx(&a.out.join("truth.csv"), csv.as_bytes())?;
    eprintln!(
        "{} frames and truth.csv written to {} (seed {})",
        picks.len(),
        a.out.display(),
        spec.seed
    );
    Ok(super::report_skipped(&skipped))
}
