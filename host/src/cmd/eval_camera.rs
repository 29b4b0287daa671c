//! `emoedge eval-camera`: the whole Pi pipeline on a camera-like stream made from a labelled
//! folder: faces found, accuracy among them beside direct accuracy on the same faces,
//! end-to-end accuracy, extra boxes, per class; and the detector on real photos.

use super::stream::SpecArgs;
use super::{Outcome, progress};
use anyhow::{Context, Result, bail};
use emoedge::camera_eval::{
    FaceOutcome, Figures, PhotoCheck, Setup, check_photos, fit_crop, run_stream, spread,
};
use emoedge::data::{Split, load_for_model};
use emoedge::stream::StreamSpec;
use emoedge_runtime::{ModelDir, Runtime};
use emoedge_vision::args::DetectArgs;
use serde::Serialize;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Model folder (int8).
    #[arg(long, default_value = "models/edge")]
    model: PathBuf,
    /// Int8 runtime.
    #[arg(long, value_enum, default_value_t = Runtime::Engine)]
    runtime: Runtime,
    /// A split's folder of <class>/<image> faces, or FER2013's fer2013.csv with --split
    /// [default: $EMOEDGE_DATA/fer2013/test]
    #[arg(long)]
    data: Option<PathBuf>,
    /// With --data fer2013.csv: which rows (its Usage column) to take.
    #[arg(long, value_enum, default_value_t = Split::Test)]
    split: Split,
    /// Faces to use, spread evenly over the folder (0: all).
    #[arg(long, default_value_t = 0)]
    faces: usize,
    #[command(flatten)]
    spec: SpecArgs,
    #[command(flatten)]
    detect: DetectArgs,
    /// Photos with reference boxes for the false-positive count [default: $EMOEDGE_DATA/faces]
    #[arg(long)]
    photos: Option<PathBuf>,
    /// Write the report as JSON here (atomically).
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(Serialize)]
struct Report {
    model: PathBuf,
    data: PathBuf,
    stream: StreamSpec,
    cascade: PathBuf,
    scale_factor: f64,
    min_neighbors: u32,
    min_size: u32,
    detect_width: u32,
    crop: String,
    overall: Figures,
    per_class: Vec<(String, Figures)>,
    fitted_crop: Option<String>,
    photos: PhotoCheck,
    /// Each face: its truth, the direct and truth-box classes, the matched detection.
    outcomes: Vec<FaceOutcome>,
}

pub fn run(a: Args) -> Result<Outcome> {
    let spec = a.spec.spec()?;
    let detect = a.detect.params()?;
    let dir = ModelDir::new(&a.model);
    if !dir.has_int8() {
        bail!(
            "{}: no int8 model (model.blob, model.int8.onnx)",
            a.model.display()
        );
    }
    let setup = Setup {
        cascade: a.detect.cascade()?,
        detect,
        detect_width: a.detect.detect_width,
        crop: a.detect.crop(),
        runtime: a.runtime,
    };
    let data = match a.data {
        Some(d) => d,
        None => emoedge_runtime::paths::data_subdir("fer2013")?.join("test"),
    };
    let photos = match a.photos {
        Some(p) => p,
        None => emoedge_runtime::paths::data_subdir("faces")?,
    };
    let classes = emoedge::eval::model_labels(&a.model)?;
    let (ds, skipped) = load_for_model(&data, a.split, &classes, &progress::bar("decode", 0))?;
    let picks = spread(ds.len(), a.faces);
    let pb = progress::bar("frames", picks.len() as u64);
    let outcomes = run_stream(&dir, &setup, &spec, &ds, &picks, &|n| pb.inc(n as u64))
        .with_context(|| format!("running the pipeline on a stream from {}", data.display()))?;
    pb.finish_and_clear();
    let photo = check_photos(&photos, &dir, &setup)?;
    let overall = Figures::of(&outcomes);
    let per_class: Vec<(String, Figures)> = Figures::per_class(&outcomes, &classes)
        .into_iter()
        .map(|(c, f)| (c.to_string(), f))
        .collect();
    let fitted = fit_crop(&outcomes);

    println!(
        "{} faces from {} in {}x{} frames (faces {}-{} px, seed {}); crop {}",
        overall.faces,
        data.display(),
        spec.frame.0,
        spec.frame.1,
        spec.face_px.0,
        spec.face_px.1,
        spec.seed,
        setup.crop
    );
    println!(
        "{:<10} {:>6} {:>7} {:>9} {:>9} {:>9} {:>6}",
        "class", "faces", "found", "pipeline", "direct*", "end2end", "extra"
    );
    let pct = |v: f64| format!("{:.2}%", v * 100.0);
    for (name, f) in per_class
        .iter()
        .map(|(n, f)| (n.as_str(), f))
        .chain([("all", &overall)])
    {
        println!(
            "{:<10} {:>6} {:>7} {:>9} {:>9} {:>9} {:>6}",
            name,
            f.faces,
            pct(f.found_rate),
            pct(f.found_accuracy),
            pct(f.found_direct_accuracy),
            pct(f.end_to_end_accuracy),
            f.extra_boxes
        );
    }
    println!(
        "* direct: the model on the same found faces' 48x48 images; on all faces {}; \
         frames cropped at the truth boxes {}",
        pct(overall.direct_accuracy),
        pct(overall.truth_crop_accuracy)
    );
    println!(
        "photos {}: {} of {} reference faces found, {} false positives in {} photos",
        photo.dir.display(),
        photo.found,
        photo.faces,
        photo.false_positives,
        photo.photos
    );
    if let Some(c) = fitted {
        println!(
            "crop contract fitted to these faces (medians of truth box against detection): {c}"
        );
    }
    if let Some(path) = &a.json {
        let report = Report {
            model: a.model.clone(),
            data: data.clone(),
            stream: spec,
            cascade: a.detect.cascade.clone(),
            scale_factor: a.detect.scale_factor,
            min_neighbors: detect.min_neighbors,
            min_size: detect.min_size,
            detect_width: a.detect.detect_width,
            crop: setup.crop.to_string(),
            overall,
            per_class,
            fitted_crop: fitted.map(|c| c.to_string()),
            photos: photo,
            outcomes,
        };
        emoedge::sys::atomic::write_ctx(path, serde_json::to_string_pretty(&report)?.as_bytes())?;
    }
    Ok(super::report_skipped(&skipped))
}
