//! Gray image resizing, shared by the detector's pyramid and the pipeline's thumbnails.

/// A bilinear resizer (pixel centres aligned, as OpenCV's `INTER_LINEAR`; fixed point) that
/// keeps its column taps between calls for the same sizes, so
/// resizing video frames allocates nothing once warm.
#[derive(Default)]
pub struct Resizer {
    taps: Vec<(usize, usize, u32)>,
    sizes: (u32, u32),
}

impl Resizer {
    /// Resizes `src` (`w x h`) into `dst` (`dw x dh`).
    pub fn resize(&mut self, src: &[u8], w: u32, h: u32, dw: u32, dh: u32, dst: &mut Vec<u8>) {
        dst.clear();
        dst.resize((dw * dh) as usize, 0);
        if dw == w && dh == h {
            dst.copy_from_slice(src);
            return;
        }
        let (sx, sy) = (w as f64 / dw as f64, h as f64 / dh as f64);
        // Column taps once per pair of widths.
        if self.sizes != (w, dw) || self.taps.len() != dw as usize {
            self.sizes = (w, dw);
            self.taps.clear();
            self.taps.extend((0..dw).map(|x| {
                let fx = ((x as f64 + 0.5) * sx - 0.5).max(0.0);
                let x0 = (fx.floor() as u32).min(w - 1);
                let x1 = (x0 + 1).min(w - 1);
                (
                    x0 as usize,
                    x1 as usize,
                    ((fx - x0 as f64).min(1.0) * 256.0) as u32,
                )
            }));
        }
        let cols = &self.taps;
        for y in 0..dh {
            let fy = ((y as f64 + 0.5) * sy - 0.5).max(0.0);
            let y0 = (fy.floor() as u32).min(h - 1);
            let y1 = (y0 + 1).min(h - 1);
            let wy = ((fy - y0 as f64).min(1.0) * 256.0) as u32;
            let (r0, r1) = (
                &src[(y0 * w) as usize..][..w as usize],
                &src[(y1 * w) as usize..][..w as usize],
            );
            let out = &mut dst[(y * dw) as usize..][..dw as usize];
            for (o, &(x0, x1, wx)) in out.iter_mut().zip(cols) {
                let top = r0[x0] as u32 * (256 - wx) + r0[x1] as u32 * wx;
                let bot = r1[x0] as u32 * (256 - wx) + r1[x1] as u32 * wx;
                *o = ((top * (256 - wy) + bot * wy + (1 << 15)) >> 16) as u8;
            }
        }
    }
}
