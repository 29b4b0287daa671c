//! Integral images of pixel values and of their squares.

/// `sum[y][x]` = Σ of pixels above and left of `(x, y)`, with a zero first row and column.
#[derive(Default)]
pub struct Integral {
    pub(crate) stride: usize,
    pub(crate) sum: Vec<u32>,
    pub(crate) sq: Vec<u64>,
}

impl Integral {
    /// Recomputes both tables for a `w x h` gray image.
    pub fn compute(&mut self, img: &[u8], w: u32, h: u32) {
        let (w, h) = (w as usize, h as usize);
        self.stride = w + 1;
        self.sum.clear();
        self.sum.resize((w + 1) * (h + 1), 0);
        self.sq.clear();
        self.sq.resize((w + 1) * (h + 1), 0);
        for y in 0..h {
            let (mut row, mut row_sq) = (0u32, 0u64);
            for x in 0..w {
                let p = img[y * w + x] as u32;
                row += p;
                row_sq += (p * p) as u64;
                let i = (y + 1) * self.stride + x + 1;
                self.sum[i] = self.sum[i - self.stride] + row;
                self.sq[i] = self.sq[i - self.stride] + row_sq;
            }
        }
    }

    /// Table indices of the rectangle's corners: top-left, top-right, bottom-left,
    /// bottom-right (the sum is `d - b - c + a`).
    #[inline(always)]
    fn corners(&self, x: usize, y: usize, w: usize, h: usize) -> [usize; 4] {
        let s = self.stride;
        [
            y * s + x,
            y * s + x + w,
            (y + h) * s + x,
            (y + h) * s + x + w,
        ]
    }

    /// Sum over the rectangle at `(x, y)` of size `w x h`.
    #[inline(always)]
    pub fn rect(&self, x: usize, y: usize, w: usize, h: usize) -> i64 {
        let [a, b, c, d] = self.corners(x, y, w, h);
        self.sum[d] as i64 - self.sum[b] as i64 - self.sum[c] as i64 + self.sum[a] as i64
    }

    /// Sum of squares over the rectangle.
    #[inline(always)]
    pub fn rect_sq(&self, x: usize, y: usize, w: usize, h: usize) -> u64 {
        let [a, b, c, d] = self.corners(x, y, w, h);
        self.sq[d] + self.sq[a] - self.sq[b] - self.sq[c]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rect_sums_match_brute_force() {
        let img: Vec<u8> = (0..7 * 5).map(|i| (i * 37 % 256) as u8).collect();
        let mut ii = Integral::default();
        ii.compute(&img, 7, 5);
        let (x, y, w, h) = (2, 1, 4, 3);
        let (mut s, mut q) = (0i64, 0u64);
        for yy in y..y + h {
            for xx in x..x + w {
                let p = img[yy * 7 + xx] as i64;
                s += p;
                q += (p * p) as u64;
            }
        }
        assert_eq!(ii.rect(x, y, w, h), s);
        assert_eq!(ii.rect_sq(x, y, w, h), q);
    }
}
