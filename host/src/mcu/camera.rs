//! The whole job on a board, checked: camera frames and the face cascade flashed beside the
//! model, the firmware's report of every frame's faces (box, label, int8 logits) read back
//! and compared with the Pi's pipeline on the same frames.

use super::{Board, Flashed, emulate_flashed};
use anyhow::{Context, Result, bail};
use emoedge_core::camera_frames;
use emoedge_core::preprocess::{CropContract, FaceBox, INPUT_LEN, crop_to_input};
use emoedge_runtime::{Classifier, ModelBlob, ModelDir, Runtime};
use emoedge_vision::detect::{Cascade, DetectParams, Detector};
use emoedge_vision::{Frame, Options, Pipeline};
use std::fmt;
use std::path::Path;

/// One face as a board or the Pi reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FrameFace {
    /// The detector's box, in frame pixels.
    pub bbox: FaceBox,
    /// The label's name.
    pub label: String,
    /// The model's int8 logits for the face's crop.
    pub logits: Vec<i8>,
}

impl fmt::Display for FrameFace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.bbox;
        write!(
            f,
            "box {} {} {} {} {} {:?}",
            b.x, b.y, b.w, b.h, self.label, self.logits
        )
    }
}

/// One frame of a board's report.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BoardFrame {
    /// The faces reported, in the detector's order.
    pub faces: Vec<FrameFace>,
    /// Faces found beyond what the report holds.
    pub more: u32,
    /// Windows the cascade evaluated.
    pub windows: u64,
    /// Raw detections dropped for want of buffer (0 unless the frame was crowded).
    pub dropped: u64,
    /// Detection cost (cycles or instructions).
    pub detect: u64,
    /// Classification cost of all the frame's faces.
    pub classify: u64,
}

/// The firmware's `frame …` and `face …` lines, in order.
pub fn parse_report(text: &str) -> Result<Vec<BoardFrame>> {
    let mut frames: Vec<BoardFrame> = Vec::new();
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let after = |key: &str| -> Option<u64> {
            let i = words.iter().position(|w| *w == key)?;
            words.get(i + 1)?.parse().ok()
        };
        match words.first() {
            Some(&"frame") if words.get(2) == Some(&"faces") => {
                let bad = || anyhow::anyhow!("a frame line the host cannot read: {line:?}");
                frames.push(BoardFrame {
                    faces: Vec::new(),
                    more: after("more").ok_or_else(bad)? as u32,
                    windows: after("windows").ok_or_else(bad)?,
                    dropped: after("dropped").ok_or_else(bad)?,
                    detect: after("detect").ok_or_else(bad)?,
                    classify: after("classify").ok_or_else(bad)?,
                });
            }
            Some(&"face") => {
                let bad = || anyhow::anyhow!("a face line the host cannot read: {line:?}");
                let frame = frames.last_mut().ok_or_else(bad)?;
                let i = words.iter().position(|w| *w == "box").ok_or_else(bad)?;
                let n = |k: usize| -> Result<i64> {
                    words
                        .get(i + k)
                        .and_then(|w| w.parse().ok())
                        .ok_or_else(bad)
                };
                let bbox = FaceBox::new(n(1)? as i32, n(2)? as i32, n(3)? as u32, n(4)? as u32);
                let label = line
                    .split_once(" label ")
                    .and_then(|(_, r)| r.split_once(" logits"))
                    .map(|(l, _)| l.to_string())
                    .ok_or_else(bad)?;
                let inner = line
                    .split_once('[')
                    .and_then(|(_, r)| r.split_once(']'))
                    .map(|(l, _)| l)
                    .ok_or_else(bad)?;
                let logits = inner
                    .split(',')
                    .map(|t| t.trim().parse::<i8>())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|_| bad())?;
                frame.faces.push(FrameFace {
                    bbox,
                    label,
                    logits,
                });
            }
            _ => {}
        }
    }
    Ok(frames)
}

/// What the Pi's pipeline (`emoedge-pi --runtime engine`, the shipped detector settings
/// and crop contract) reports for each frame of the model `blob` of `dir`, with each face's
/// int8 logits from the pipeline's classifier on the same crop.
pub fn pi_faces(
    dir: &ModelDir,
    blob: ModelBlob,
    cascade: &Cascade,
    frames: &[Frame],
) -> Result<Vec<Vec<FrameFace>>> {
    let classifier = Classifier::new(dir, blob, Runtime::Engine)?;
    let contract = CropContract::FER2013;
    let mut pipeline = Pipeline::new(
        Detector::new(cascade.clone()),
        classifier,
        Options {
            detect: DetectParams::default(),
            detect_width: 0,
            crop: contract,
            detect_every: 1,
            redetect_change: 0,
        },
    );
    let mut out = Vec::with_capacity(frames.len());
    for f in frames {
        let report = pipeline.process(f, 0.0)?;
        let view = f.view()?;
        let mut faces = Vec::with_capacity(report.faces.len());
        for face in &report.faces {
            let mut crop = [0u8; INPUT_LEN];
            crop_to_input(&view, contract.crop_box(face.bbox), &mut crop)
                .map_err(|e| anyhow::anyhow!("{}: crop {e:?}", f.source))?;
            faces.push(FrameFace {
                bbox: face.bbox,
                label: face.label().to_string(),
                logits: pipeline.classifier_mut().logits(&crop)?,
            });
        }
        out.push(faces);
    }
    Ok(out)
}

/// `frames` in the camera-frames format for `board`: refused unless they are all one size,
/// within the board's largest, and fit its frames region.
pub fn camera_frames_for(board: &Board, frames: &[Frame]) -> Result<Vec<u8>> {
    let Some(first) = frames.first() else {
        bail!("no frames to run");
    };
    let (w, h) = (first.width, first.height);
    let (max_w, max_h) = board.camera_max;
    if w > max_w as u32 || h > max_h as u32 {
        bail!(
            "{} frames are {w}x{h}; the {} board detects on frames up to {max_w}x{max_h} \
             (make a stream of that size: `emoedge stream --frame {max_w}x{max_h}`)",
            first.source,
            board.name
        );
    }
    if let Some(f) = frames.iter().find(|f| (f.width, f.height) != (w, h)) {
        bail!(
            "{} is {}x{}, the frames before it {w}x{h}: a board's frames are all one size",
            f.source,
            f.width,
            f.height
        );
    }
    let bytes = camera_frames::write(w, h, frames.iter().map(|f| &f.gray[..]))
        .context("frames do not fit the camera-frames format")?;
    let what = format!("{} camera frames of {w}x{h}", frames.len());
    super::check_region(board, board.frames, &what, bytes.len())?;
    Ok(bytes)
}

/// Runs `firmware` in `board`'s emulator with the model blob, the cascade and `frames` (gray,
/// all one size) flashed, and reads its report back.
pub fn run_on_board(
    board: &Board,
    firmware: &Path,
    blob: &[u8],
    cascade: &Cascade,
    frames: &[Frame],
) -> Result<(String, Vec<BoardFrame>)> {
    let bytes = camera_frames_for(board, frames)?;
    super::check_region(
        board,
        board.cascade,
        "the face cascade",
        cascade.bytes().len(),
    )?;
    super::check_fits(board, blob.len())?;
    super::check_firmware(board, firmware)?;
    let tmp = tempfile::tempdir()?;
    let write = |name: &str, data: &[u8]| -> Result<std::path::PathBuf> {
        let path = tmp.path().join(name);
        std::fs::write(&path, data)?;
        Ok(path)
    };
    let (b, f, c) = (
        write("model.blob", blob)?,
        write("frames.bin", &bytes)?,
        write("face.cascade", cascade.bytes())?,
    );
    let text = emulate_flashed(
        board,
        firmware,
        &Flashed {
            blob: Some(&b),
            frames: Some(&f),
            cascade: Some(&c),
        },
    )?;
    let got = parse_report(&text)?;
    super::check_frame_count(&text, got.len(), frames.len())?;
    Ok((text, got))
}

/// The first difference between a board's frame and the Pi's, if any.
pub fn first_difference(board: &BoardFrame, pi: &[FrameFace]) -> Option<String> {
    if board.more > 0 {
        return Some(format!(
            "the board found {} more faces than its report holds",
            board.more
        ));
    }
    if board.faces.len() != pi.len() {
        return Some(format!(
            "the board found {} faces, the Pi {}",
            board.faces.len(),
            pi.len()
        ));
    }
    board
        .faces
        .iter()
        .zip(pi)
        .enumerate()
        .find(|(_, (b, p))| b != p)
        .map(|(k, (b, p))| format!("face {k}: board {b}, Pi {p}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_frame_and_face_lines() {
        let t = "emoedge-mcu: model ok\n\
                 frame 0 faces 1 more 0 windows 5321 raw 9 dropped 0 detect 41 classify 39 instructions\n\
                 face 0 0 box 212 140 118 118 label happy logits [-3, 4, 5, 120, -128, 0, 1]\n\
                 frame 1 faces 0 more 0 windows 5000 raw 0 dropped 0 detect 40 classify 0 instructions\n";
        let f = parse_report(t).unwrap();
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].faces[0].bbox, FaceBox::new(212, 140, 118, 118));
        assert_eq!(f[0].faces[0].label, "happy");
        assert_eq!(f[0].faces[0].logits, [-3, 4, 5, 120, -128, 0, 1]);
        assert_eq!((f[0].windows, f[0].detect, f[0].classify), (5321, 41, 39));
        assert!(f[1].faces.is_empty());
        assert_eq!(first_difference(&f[1], &[]), None);
        let e = first_difference(&f[0], &[]).unwrap();
        assert!(e.contains("1 faces, the Pi 0"), "{e}");
        let mut other = f[0].faces.clone();
        other[0].logits[0] = -4;
        let e = first_difference(&f[0], &other).unwrap();
        assert!(e.starts_with("face 0: board box 212"), "{e}");
        assert!(parse_report("face 0 0 box 1 2\n").is_err());
    }
}
