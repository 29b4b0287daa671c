//! The detector's command-line settings, shared by `emoedge-pi` and `emoedge eval-camera`
//! so that both front ends take the same flags with the same defaults.

use crate::detect::{Cascade, DetectParams, SCALE_ONE, scale_from_ratio};
use anyhow::{Result, bail};
use emoedge_core::preprocess::CropContract;
use std::path::PathBuf;

/// The face cascade used when `--cascade` is not given (OpenCV's, shipped with its licence
/// in `models/`), relative to the repository root.
pub const DEFAULT_CASCADE: &str = "models/haarcascade_frontalface_alt2.xml";

/// Face detection and cropping flags.
#[derive(clap::Args, Clone, Debug)]
pub struct DetectArgs {
    /// Face cascade: OpenCV Haar cascade XML, or a cascade blob (`emoedge cascade`).
    #[arg(long, default_value = DEFAULT_CASCADE)]
    pub cascade: PathBuf,
    /// Pyramid step of the detector (OpenCV scaleFactor), above 1.
    #[arg(long, default_value_t = DetectParams::default().scale as f64 / SCALE_ONE as f64)]
    pub scale_factor: f64,
    /// Neighbours a detection needs (OpenCV minNeighbors).
    #[arg(long, default_value_t = DetectParams::default().min_neighbors)]
    pub min_neighbors: u32,
    /// Smallest face side, in frame pixels.
    #[arg(long, default_value_t = DetectParams::default().min_size)]
    pub min_size: u32,
    /// Detect on a copy of the frame at most this wide (0 = full size): faster on large
    /// frames, but faces under `min-size · width / detect-width` pixels are missed.
    #[arg(long, default_value_t = 0)]
    pub detect_width: u32,
    /// Crop contract: how a face box becomes the model's crop, as SCALE,DX,DY (crop side
    /// over box side; centre shift in box sides) [default: the model card's, fitted to
    /// FER2013's framing]
    #[arg(long, value_name = "SCALE,DX,DY")]
    pub crop: Option<CropContract>,
}

impl DetectArgs {
    /// The detector parameters; an error when the pyramid step is not above 1.
    pub fn params(&self) -> Result<DetectParams> {
        // Held in 1/65536ths: the step must stay above 1 once rounded.
        if self.scale_factor.is_nan() || !(1.00002..=16.0).contains(&self.scale_factor) {
            bail!("--scale-factor must be above 1 (and at most 16)");
        }
        Ok(DetectParams {
            scale: scale_from_ratio(self.scale_factor),
            min_neighbors: self.min_neighbors,
            min_size: self.min_size,
        })
    }

    /// The cascade, read and checked.
    pub fn cascade(&self) -> Result<Cascade> {
        Ok(Cascade::load(&self.cascade)?)
    }

    /// The crop contract: the one given, else the shipped one.
    pub fn crop(&self) -> CropContract {
        self.crop.unwrap_or(CropContract::FER2013)
    }
}
