//! Streaming area downscale to 48x48: a camera frame arrives line by line, and each pixel
//! is added to the output cell it falls in, so no full frame is ever held in RAM (a 160x120
//! frame would cost 19 KB; the running sums cost 4.6 KB).

use crate::{INPUT_LEN, INPUT_SIDE};

/// Largest source side: keeps every cell's sum of up to 4x4 pixels within a `u16`.
pub const MAX_SIDE: usize = 4 * INPUT_SIDE;

/// Running per-cell sums and counts of one frame being downscaled.
pub struct Binner {
    width: usize,
    height: usize,
    sums: [u16; INPUT_LEN],
    counts: [u8; INPUT_LEN],
}

/// A source size the binner cannot take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadSize {
    /// Width asked for.
    pub width: usize,
    /// Height asked for.
    pub height: usize,
}

impl Binner {
    /// A binner for `width x height` frames, each side from 48 to [`MAX_SIDE`].
    pub fn new(width: usize, height: usize) -> Result<Self, BadSize> {
        let ok = |s: usize| (INPUT_SIDE..=MAX_SIDE).contains(&s);
        if !ok(width) || !ok(height) {
            return Err(BadSize { width, height });
        }
        Ok(Binner {
            width,
            height,
            sums: [0; INPUT_LEN],
            counts: [0; INPUT_LEN],
        })
    }

    /// Forgets the frame so far.
    pub fn clear(&mut self) {
        self.sums = [0; INPUT_LEN];
        self.counts = [0; INPUT_LEN];
    }

    /// Adds source row `y` (pixels from `x = 0`; extra pixels past the width are ignored).
    pub fn add_row(&mut self, y: usize, row: impl Iterator<Item = u8>) {
        if y >= self.height {
            return;
        }
        let base = (y * INPUT_SIDE / self.height) * INPUT_SIDE;
        for (x, p) in row.take(self.width).enumerate() {
            let i = base + x * INPUT_SIDE / self.width;
            self.sums[i] += p as u16;
            self.counts[i] += 1;
        }
    }

    /// Writes the 48x48 frame: each cell the rounded mean of its pixels.
    pub fn finish(&self, out: &mut [u8; INPUT_LEN]) {
        for ((o, &s), &n) in out.iter_mut().zip(&self.sums).zip(&self.counts) {
            let n = n.max(1) as u16;
            *o = ((s + n / 2) / n) as u8;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halves_a_96_frame_by_averaging_2x2() {
        let mut b = Binner::new(96, 96).unwrap();
        for y in 0..96 {
            b.add_row(y, (0..96).map(|x| ((x % 2) * 100 + (y % 2) * 50) as u8));
        }
        let mut out = [0; INPUT_LEN];
        b.finish(&mut out);
        // (0 + 100 + 50 + 150) / 4 = 75 in every cell
        assert!(out.iter().all(|&p| p == 75));
    }

    #[test]
    fn uneven_ratio_covers_every_cell() {
        let mut b = Binner::new(160, 120).unwrap();
        for y in 0..120 {
            b.add_row(y, core::iter::repeat_n(255, 160));
        }
        let mut out = [0; INPUT_LEN];
        b.finish(&mut out);
        assert!(out.iter().all(|&p| p == 255));
    }

    #[test]
    fn rejects_sizes_it_cannot_sum() {
        assert!(Binner::new(320, 240).is_err());
        assert!(Binner::new(40, 48).is_err());
    }
}
