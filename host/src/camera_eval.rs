//! The whole face pipeline (`emoedge-vision`, as `emoedge-pi` runs it: detector, crop
//! contract and classifier) measured on a camera-like stream ([`crate::stream`]) against the
//! same faces classified directly, and the detector's false positives on real photos.
//!
//! The figures answer a user's question, "is the label on my face as good as the model's
//! score?", by splitting the loss into faces not found and faces found but cropped
//! differently from the training images.

use crate::data::Dataset;
use crate::stream::StreamSpec;
use emoedge_core::emotion::argmax;
use emoedge_core::preprocess::{CropContract, FaceBox, INPUT_LEN, crop_to_input};
use emoedge_runtime::{Classifier, ModelBlob, ModelDir, Runtime};
use emoedge_vision::detect::{Cascade, DetectParams, Detector};
use emoedge_vision::{Frame, Options, Pipeline};
use rayon::prelude::*;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// A detection counts as the face when it overlaps the face's truth box this much (IoU).
/// Haar boxes are tighter than FER2013's crops (about 0.8 of the side), so a right
/// detection overlaps ~0.6; a box on the mirrored context or a part of the face overlaps
/// far less.
pub const MATCH_IOU: f64 = 0.4;

/// How the pipeline is set up for a measurement.
#[derive(Clone, Debug)]
pub struct Setup {
    /// The face detector.
    pub cascade: Cascade,
    /// Its parameters, in frame pixels.
    pub detect: DetectParams,
    /// Detect on a copy of the frame this wide (0: as it is); see `emoedge-pi --detect-width`.
    pub detect_width: u32,
    /// How boxes become crops.
    pub crop: CropContract,
    /// Which int8 runtime classifies.
    pub runtime: Runtime,
}

impl Setup {
    fn pipeline(
        &self,
        dir: &ModelDir,
        blob: ModelBlob,
    ) -> Result<Pipeline, emoedge_runtime::Error> {
        let classifier = Classifier::new(dir, blob, self.runtime)?;
        Ok(Pipeline::new(
            Detector::new(self.cascade.clone()),
            classifier,
            Options {
                detect: self.detect,
                detect_width: self.detect_width,
                crop: self.crop,
                detect_every: 1,
                redetect_change: 0,
            },
        ))
    }
}

/// What happened to one face of the stream.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct FaceOutcome {
    /// The face's index in the dataset.
    pub index: usize,
    /// Its true class.
    pub label: u8,
    /// The class the model gives the dataset's 48x48 image.
    pub direct: u8,
    /// The class the model gives the frame cropped at the truth box: what the pipeline
    /// would give with a perfect detector and the box-as-is contract.
    pub truth_crop: u8,
    /// Where the face's 48x48 image lies in the frame.
    pub truth: FaceBox,
    /// The detection matched to the face and the class the pipeline gave it.
    pub found: Option<(FaceBox, u8)>,
    /// Detections in the frame other than the matched one.
    pub extra: u32,
}

/// Runs the pipeline on stream frames showing the faces at `indices` of `ds`, in parallel;
/// `progress` is called with the number of frames done since the last call.
pub fn run_stream(
    dir: &ModelDir,
    setup: &Setup,
    spec: &StreamSpec,
    ds: &Dataset,
    indices: &[usize],
    progress: &(dyn Fn(usize) + Sync),
) -> anyhow::Result<Vec<FaceOutcome>> {
    spec.check()?;
    let blob = dir.read_blob()?;
    let chunks: Vec<&[usize]> = indices.chunks(32).collect();
    let parts = chunks
        .par_iter()
        .map(|chunk| -> anyhow::Result<Vec<FaceOutcome>> {
            let mut pipeline = setup.pipeline(dir, blob.clone())?;
            let faces: Vec<[u8; INPUT_LEN]> = chunk.iter().map(|&i| *ds.image(i)).collect();
            let mut scores = Vec::new();
            pipeline.classifier_mut().scores(&faces, &mut scores)?;
            let mut truth_crops = vec![[0u8; INPUT_LEN]; chunk.len()];
            let mut out = Vec::with_capacity(chunk.len());
            for (k, &i) in chunk.iter().enumerate() {
                let shot = spec.render(i as u64, ds.image(i));
                let frame = Frame {
                    source: ds.paths[i].display().to_string(),
                    index: i as u64,
                    width: shot.width,
                    height: shot.height,
                    gray: shot.gray,
                    rgb: None,
                    video: false,
                };
                let report = pipeline.process(&frame, 0.0)?;
                // The frame cut at the face's truth box; classified with the chunk's others.
                let truth = shot.truth;
                crop_to_input(&frame.view()?, truth, &mut truth_crops[k])
                    .map_err(|e| anyhow::anyhow!("{}: crop {e:?}", frame.source))?;
                let best = report
                    .faces
                    .iter()
                    .map(|f| (f.bbox.iou(&truth), f))
                    .filter(|(iou, _)| *iou >= MATCH_IOU)
                    .max_by(|a, b| a.0.total_cmp(&b.0))
                    .map(|(_, f)| f);
                let found = best.map(|f| (f.bbox, f.class as u8));
                out.push(FaceOutcome {
                    index: i,
                    label: ds.labels[i],
                    direct: argmax(&scores[k]).unwrap_or(0) as u8,
                    truth_crop: 0, // set below, once the chunk's crops are scored
                    truth,
                    found,
                    extra: (report.faces.len() - usize::from(found.is_some())) as u32,
                });
            }
            pipeline
                .classifier_mut()
                .scores(&truth_crops, &mut scores)?;
            for (o, score) in out.iter_mut().zip(&scores) {
                o.truth_crop = argmax(score).unwrap_or(0) as u8;
            }
            progress(chunk.len());
            Ok(out)
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(parts.into_iter().flatten().collect())
}

/// Accuracy figures over a set of faces.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Figures {
    /// Faces in the stream.
    pub faces: usize,
    /// Faces the detector found.
    pub found: usize,
    /// `found / faces`.
    pub found_rate: f64,
    /// Pipeline accuracy among found faces.
    pub found_accuracy: f64,
    /// Direct accuracy on the same found faces.
    pub found_direct_accuracy: f64,
    /// Direct accuracy on all faces.
    pub direct_accuracy: f64,
    /// Accuracy of crops cut at the truth boxes, all faces: what the frame's rendering
    /// (enlarging, rotation, light, noise) leaves of the direct accuracy.
    pub truth_crop_accuracy: f64,
    /// Pipeline accuracy over all faces, a face not found counting as wrong.
    pub end_to_end_accuracy: f64,
    /// Detections that are not a stream face.
    pub extra_boxes: u64,
}

impl Figures {
    /// Figures over `outcomes`.
    pub fn of<'a>(outcomes: impl IntoIterator<Item = &'a FaceOutcome>) -> Self {
        let (mut n, mut found, mut right, mut right_direct_found, mut right_direct, mut extra) =
            (0usize, 0usize, 0usize, 0usize, 0usize, 0u64);
        let mut right_truth = 0usize;
        for o in outcomes {
            n += 1;
            extra += o.extra as u64;
            right_direct += usize::from(o.direct == o.label);
            right_truth += usize::from(o.truth_crop == o.label);
            if let Some((_, class)) = o.found {
                found += 1;
                right += usize::from(class == o.label);
                right_direct_found += usize::from(o.direct == o.label);
            }
        }
        let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        Self {
            faces: n,
            found,
            found_rate: ratio(found, n),
            found_accuracy: ratio(right, found),
            found_direct_accuracy: ratio(right_direct_found, found),
            direct_accuracy: ratio(right_direct, n),
            truth_crop_accuracy: ratio(right_truth, n),
            end_to_end_accuracy: ratio(right, n),
            extra_boxes: extra,
        }
    }

    /// Figures per true class, in `classes` order (the model's class names).
    pub fn per_class<'c>(
        outcomes: &[FaceOutcome],
        classes: &'c [String],
    ) -> Vec<(&'c str, Figures)> {
        classes
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let of_class = outcomes.iter().filter(|o| o.label as usize == i);
                (name.as_str(), Figures::of(of_class))
            })
            .collect()
    }
}

/// The crop contract that maps each found face's detection onto its truth box: the median
/// size ratio and median centre offsets over found faces, so a few odd boxes do not pull
/// it. `None` when no face was found.
pub fn fit_crop(outcomes: &[FaceOutcome]) -> Option<CropContract> {
    let mut scale = Vec::new();
    let mut dx = Vec::new();
    let mut dy = Vec::new();
    for o in outcomes {
        let Some((d, _)) = o.found else { continue };
        let t = o.truth;
        let (dw, dh) = (d.w as f64, d.h as f64);
        scale.push(t.w as f64 / dw);
        dx.push(((t.x as f64 + t.w as f64 / 2.0) - (d.x as f64 + dw / 2.0)) / dw);
        dy.push(((t.y as f64 + t.h as f64 / 2.0) - (d.y as f64 + dh / 2.0)) / dh);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    if scale.is_empty() {
        return None;
    }
    let milli = |v: f64| (v * 1000.0).round() as i32;
    Some(CropContract {
        scale_milli: milli(median(&mut scale)).max(1) as u32,
        dx_milli: milli(median(&mut dx)),
        dy_milli: milli(median(&mut dy)),
    })
}

/// The detector on real photos with reference boxes (`$EMOEDGE_DATA/faces`).
#[derive(Clone, Debug, Serialize)]
pub struct PhotoCheck {
    /// The folder.
    pub dir: PathBuf,
    /// Photos read.
    pub photos: usize,
    /// Reference faces.
    pub faces: usize,
    /// Reference faces a detection overlaps by IoU >= 0.3.
    pub found: usize,
    /// Detections overlapping no reference face: false positives.
    pub false_positives: usize,
}

/// Runs the detector on every photo listed in `dir/boxes.csv` (and every other image in
/// `dir`, which has no faces) and counts found faces and false positives.
pub fn check_photos(dir: &Path, model: &ModelDir, setup: &Setup) -> anyhow::Result<PhotoCheck> {
    use anyhow::Context;
    let csv_path = dir.join("boxes.csv");
    let text = std::fs::read_to_string(&csv_path)
        .with_context(|| format!("reading {}", csv_path.display()))?;
    let mut refs: Vec<(String, FaceBox)> = Vec::new();
    for (n, line) in text.lines().enumerate().skip(1) {
        let f: Vec<&str> = line.split(',').map(str::trim).collect();
        let bad = || {
            anyhow::anyhow!(
                "{}:{}: expected file,face_id,x,y,w,h",
                csv_path.display(),
                n + 1
            )
        };
        if f.len() != 6 {
            return Err(bad());
        }
        let num = |s: &str| s.parse::<i32>().map_err(|_| bad());
        let side = |s: &str| s.parse::<u32>().map_err(|_| bad());
        refs.push((
            f[0].to_string(),
            FaceBox::new(num(f[2])?, num(f[3])?, side(f[4])?, side(f[5])?),
        ));
    }
    let mut photos: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "png" | "jpg" | "jpeg"))
        })
        .collect();
    photos.sort();
    let blob = model.read_blob()?;
    let results = photos
        .par_iter()
        .map(|p| -> anyhow::Result<(usize, usize)> {
            let img = image::open(p)
                .with_context(|| format!("decoding {}", p.display()))?
                .into_luma8();
            let (width, height) = img.dimensions();
            let mut pipeline = setup.pipeline(model, blob.clone())?;
            let frame = Frame {
                source: p.display().to_string(),
                index: 0,
                width,
                height,
                gray: img.into_raw(),
                rgb: None,
                video: false,
            };
            let report = pipeline.process(&frame, 0.0)?;
            let boxes: Vec<FaceBox> = report.faces.iter().map(|f| f.bbox).collect();
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            let mine: Vec<&FaceBox> = refs
                .iter()
                .filter(|(f, _)| f == name)
                .map(|(_, r)| r)
                .collect();
            let found = mine
                .iter()
                .filter(|r| boxes.iter().any(|b| b.iou(r) >= 0.3))
                .count();
            let false_pos = boxes
                .iter()
                .filter(|b| mine.iter().all(|r| b.iou(r) < 0.3))
                .count();
            Ok((found, false_pos))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(PhotoCheck {
        dir: dir.to_path_buf(),
        photos: photos.len(),
        faces: refs.len(),
        found: results.iter().map(|r| r.0).sum(),
        false_positives: results.iter().map(|r| r.1).sum(),
    })
}

/// Evenly spread indices: `n` of `len` (all when `n` is 0 or at least `len`).
pub fn spread(len: usize, n: usize) -> Vec<usize> {
    if n == 0 || n >= len {
        return (0..len).collect();
    }
    (0..n).map(|k| k * len / n).collect()
}
