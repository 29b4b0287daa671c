//! Annotated images: each face's box and label drawn on the frame.

use anyhow::{Context, Result};
use emoedge_core::Emotion;
use emoedge_core::labels::MAX_CLASSES;
use emoedge_vision::frame::Frame;
use emoedge_vision::pipeline::FrameReport;
use font8x8::UnicodeFonts;
use image::{Rgb, RgbImage};
use std::path::Path;

/// Colours for classes that are not emotions, by class index: distinct on a dark frame.
const PALETTE: [[u8; 3]; MAX_CLASSES] = [
    [250, 200, 0],
    [50, 110, 230],
    [230, 40, 40],
    [120, 160, 30],
    [160, 60, 200],
    [255, 130, 0],
    [0, 190, 190],
    [200, 200, 200],
    [240, 100, 170],
    [140, 90, 40],
    [150, 230, 120],
    [100, 170, 255],
    [255, 170, 140],
    [180, 140, 255],
    [255, 255, 120],
    [90, 130, 110],
];

/// The colour of class `index` named `label`, as the live page draws it too (the server
/// fills them in): an emotion keeps its own colour in every model, any other class takes
/// the palette's colour at its index.
pub fn colour(label: &str, index: usize) -> Rgb<u8> {
    Rgb(match Emotion::from_name(label) {
        Some(Emotion::Angry) => [230, 40, 40],
        Some(Emotion::Disgusted) => [120, 160, 30],
        Some(Emotion::Fearful) => [160, 60, 200],
        Some(Emotion::Happy) => [250, 200, 0],
        Some(Emotion::Neutral) => [200, 200, 200],
        Some(Emotion::Sad) => [50, 110, 230],
        Some(Emotion::Surprised) => [255, 130, 0],
        None => PALETTE[index % MAX_CLASSES],
    })
}

fn fill(img: &mut RgbImage, x0: i64, y0: i64, w: i64, h: i64, c: Rgb<u8>) {
    for y in y0.max(0)..(y0 + h).min(img.height() as i64) {
        for x in x0.max(0)..(x0 + w).min(img.width() as i64) {
            img.put_pixel(x as u32, y as u32, c);
        }
    }
}

/// Writes `text` with the 8x8 bitmap font at `scale`, on a dark background.
fn text(img: &mut RgbImage, x0: i64, y0: i64, s: &str, scale: i64, c: Rgb<u8>) {
    fill(
        img,
        x0,
        y0,
        (s.len() as i64) * 8 * scale + 2 * scale,
        8 * scale + 2 * scale,
        Rgb([0, 0, 0]),
    );
    for (i, ch) in s.chars().enumerate() {
        let Some(glyph) = font8x8::BASIC_FONTS.get(ch) else {
            continue;
        };
        for (row, bits) in glyph.iter().enumerate() {
            for col in 0..8 {
                if bits & (1 << col) != 0 {
                    let x = x0 + scale + (i as i64 * 8 + col) * scale;
                    let y = y0 + scale + row as i64 * scale;
                    fill(img, x, y, scale, scale, c);
                }
            }
        }
    }
}

/// The frame in colour with the report's faces drawn on it ([`draw_faces`]), taking the
/// frame's colour copy where it has one.
pub fn draw(frame: Frame, report: &FrameReport) -> RgbImage {
    let mut img = match frame.rgb {
        Some(rgb) => rgb,
        None => RgbImage::from_fn(frame.width, frame.height, |x, y| {
            let g = frame.gray[(y * frame.width + x) as usize];
            Rgb([g, g, g])
        }),
    };
    draw_faces(&mut img, report);
    img
}

/// Draws each face of the report: its box in its label's colour, the label and its
/// probability above it, and the track id where there is one.
pub fn draw_faces(img: &mut RgbImage, report: &FrameReport) {
    let t = ((img.width().max(img.height()) / 400) as i64).max(2);
    for f in &report.faces {
        let b = f.bbox;
        let [x, y, w, h] = [b.x as i64, b.y as i64, b.w as i64, b.h as i64];
        let c = colour(f.label(), f.class);
        fill(img, x, y, w, t, c);
        fill(img, x, y + h - t, w, t, c);
        fill(img, x, y, t, h, c);
        fill(img, x + w - t, y, t, h, c);
        let (name, p) = (f.label(), f.label_probability());
        let label = match f.track {
            Some(id) => format!("#{id} {name} {:.0}%", p * 100.0),
            None => format!("{name} {:.0}%", p * 100.0),
        };
        let scale = (w / 100).clamp(1, 4);
        text(img, x, (y - 10 * scale).max(0), &label, scale, c);
    }
}

/// Draws the report's faces on the frame ([`draw`]) and saves it as PNG into `dir`.
pub fn save(dir: &Path, frame: &Frame, report: &FrameReport) -> Result<()> {
    let img = draw(frame.clone(), report);
    let stem = Path::new(&frame.source)
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("frame")
        .to_string();
    let name = if frame.video {
        format!("{stem}-{:06}.png", frame.index)
    } else {
        format!("{stem}.png")
    };
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join(name);
    img.save(&path)
        .with_context(|| format!("writing {}", path.display()))
}
