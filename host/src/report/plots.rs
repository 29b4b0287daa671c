//! Pictures for people: training curves and confusion matrices, drawn with `plotters` into
//! memory and written as PNG atomically.
//!
//! The font comes from a crate (`epaint_default_fonts`, Ubuntu Light) rather than the
//! system, so a headless machine without fontconfig draws the same picture.

use crate::report::history::EpochMetrics;
use crate::report::metrics::Confusion;
use anyhow::{Result, anyhow};
use plotters::prelude::*;
use std::path::Path;

const FONT: &str = "sans-serif";

fn register_font() -> Result<()> {
    static ONCE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let ok = *ONCE.get_or_init(|| {
        plotters::style::register_font(FONT, FontStyle::Normal, epaint_default_fonts::UBUNTU_LIGHT)
            .is_ok()
    });
    if ok {
        Ok(())
    } else {
        Err(anyhow!("the bundled plot font did not load"))
    }
}

/// Renders `draw` on a `w x h` white canvas and writes it to `path` as PNG (atomically).
fn render(
    path: &Path,
    (w, h): (u32, u32),
    draw: impl FnOnce(&DrawingArea<BitMapBackend, plotters::coord::Shift>) -> Result<()>,
) -> Result<()> {
    register_font()?;
    let mut buf = vec![255u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        draw(&root)?;
        root.present()
            .map_err(|e| anyhow!("drawing {}: {e}", path.display()))?;
    }
    let img = image::RgbImage::from_raw(w, h, buf).ok_or_else(|| anyhow!("canvas size"))?;
    let mut png = std::io::Cursor::new(Vec::new());
    img.write_to(&mut png, image::ImageFormat::Png)?;
    crate::sys::atomic::write_ctx(path, png.get_ref())
}

fn err(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("plot: {e}")
}

/// `curves.png`: loss and accuracy per epoch, train and test side by side.
pub fn curves(history: &[EpochMetrics], path: &Path) -> Result<()> {
    if history.is_empty() {
        return Ok(());
    }
    let last = history.len() as f64;
    let epochs = |f: fn(&EpochMetrics) -> f64| -> Vec<(f64, f64)> {
        history.iter().map(|m| (m.epoch as f64, f(m))).collect()
    };
    render(path, (1100, 440), |root| {
        root.fill(&WHITE).map_err(err)?;
        let (left, right) = root.split_horizontally(550);
        type Pick = fn(&EpochMetrics) -> f64;
        let panels: [(&DrawingArea<_, _>, &str, Pick, Pick, SeriesLabelPosition); 2] = [
            (
                &left,
                "loss",
                |m| m.train_loss,
                |m| m.test_loss,
                SeriesLabelPosition::UpperRight,
            ),
            (
                &right,
                "accuracy (%)",
                |m| m.train_acc * 100.0,
                |m| m.test_acc * 100.0,
                SeriesLabelPosition::LowerRight,
            ),
        ];
        for (area, name, train, test, legend) in panels {
            let (tr, te) = (epochs(train), epochs(test));
            let vals = tr.iter().chain(&te).map(|p| p.1).filter(|v| v.is_finite());
            let (lo, hi) = vals.fold((f64::MAX, f64::MIN), |(a, b), v| (a.min(v), b.max(v)));
            let pad = ((hi - lo) * 0.08).max(1e-3);
            let mut chart = ChartBuilder::on(area)
                .caption(name, (FONT, 22))
                .margin(12)
                .x_label_area_size(36)
                .y_label_area_size(52)
                .build_cartesian_2d(1f64..last.max(2.0), (lo - pad)..(hi + pad))
                .map_err(err)?;
            chart
                .configure_mesh()
                .x_desc("epoch")
                .label_style((FONT, 14))
                .draw()
                .map_err(err)?;
            for (pts, colour, label) in [(tr, BLUE, "train"), (te, RED, "test")] {
                chart
                    .draw_series(LineSeries::new(pts, colour.stroke_width(2)))
                    .map_err(err)?
                    .label(label)
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
                    });
            }
            chart
                .configure_series_labels()
                .position(legend)
                .label_font((FONT, 15))
                .border_style(BLACK)
                .background_style(WHITE.mix(0.85))
                .draw()
                .map_err(err)?;
        }
        Ok(())
    })
}

/// `confusion.png`: the matrix with counts, each row shaded by its share (row = true class).
pub fn confusion(c: &Confusion, title: &str, path: &Path) -> Result<()> {
    let (left, top, cell) = (112i32, 92i32, 74i32);
    let side = cell * c.classes.len() as i32;
    let size = ((left + side + 20) as u32, (top + side + 48) as u32);
    render(path, size, |root| {
        root.fill(&WHITE).map_err(err)?;
        let text = |s: &str, x: i32, y: i32, px: u32, colour: RGBColor, anchor| {
            let style = TextStyle::from((FONT, px).into_font())
                .color(&colour)
                .pos(anchor);
            root.draw(&Text::new(s.to_string(), (x, y), style))
                .map_err(err)
        };
        use plotters::style::text_anchor::{HPos, Pos, VPos};
        let centre = Pos::new(HPos::Center, VPos::Center);
        text(title, left + side / 2, 18, 20, BLACK, centre)?;
        text("predicted", left + side / 2, 44, 15, BLACK, centre)?;
        for (k, name) in c.classes.iter().enumerate() {
            let k = k as i32;
            text(
                name,
                left + k * cell + cell / 2,
                top - 14,
                14,
                BLACK,
                centre,
            )?;
            text(
                name,
                left - 8,
                top + k * cell + cell / 2,
                14,
                BLACK,
                Pos::new(HPos::Right, VPos::Center),
            )?;
        }
        text(
            "rows: true class, shade: share of the row",
            left + side / 2,
            top + side + 24,
            14,
            BLACK,
            centre,
        )?;
        for (t, row) in c.counts.iter().enumerate() {
            let n: u64 = row.iter().sum();
            for (p, &count) in row.iter().enumerate() {
                let share = if n == 0 { 0.0 } else { count as f64 / n as f64 };
                let shade = (255.0 * (1.0 - share * 0.85)) as u8;
                let fill = RGBColor(shade, shade, 255);
                let (x, y) = (left + p as i32 * cell, top + t as i32 * cell);
                root.draw(&Rectangle::new(
                    [(x, y), (x + cell, y + cell)],
                    fill.filled(),
                ))
                .map_err(err)?;
                root.draw(&Rectangle::new(
                    [(x, y), (x + cell, y + cell)],
                    BLACK.mix(0.3),
                ))
                .map_err(err)?;
                let ink = if share > 0.55 { WHITE } else { BLACK };
                text(
                    &count.to_string(),
                    x + cell / 2,
                    y + cell / 2 - 8,
                    16,
                    ink,
                    centre,
                )?;
                text(
                    &format!("{:.0}%", share * 100.0),
                    x + cell / 2,
                    y + cell / 2 + 11,
                    13,
                    ink,
                    centre,
                )?;
            }
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(path: &Path) -> image::RgbImage {
        image::open(path).unwrap().to_rgb8()
    }

    #[test]
    fn draws_curves_and_confusion() {
        let dir = tempfile::tempdir().unwrap();
        let m = |epoch, acc: f64| EpochMetrics {
            epoch,
            train_loss: 1.5 - acc,
            train_acc: acc,
            test_loss: 1.6 - acc,
            test_acc: acc - 0.05,
            lr: 1e-3,
            train_seconds: 1.0,
            images_per_s: 1.0,
            eval_seconds: 1.0,
        };
        let p = dir.path().join("curves.png");
        curves(&[m(1, 0.3), m(2, 0.5), m(3, 0.6)], &p).unwrap();
        let img = decode(&p);
        assert_eq!(img.dimensions(), (1100, 440));
        // the red test curve is drawn
        assert!(img.pixels().any(|px| px.0 == [255, 0, 0]));

        let truth = [0u8, 0, 1, 2, 3, 4, 5, 6, 6];
        let pred = [0u8, 1, 1, 2, 3, 4, 5, 6, 0];
        let p = dir.path().join("confusion.png");
        confusion(
            &Confusion::from_pairs(&emoedge_core::labels::EMOTIONS, &truth, &pred),
            "test",
            &p,
        )
        .unwrap();
        let img = decode(&p);
        // a full row (1 of 1 right) is the darkest shade
        assert!(img.pixels().any(|px| px.0[0] < 60 && px.0[2] == 255));
    }
}
