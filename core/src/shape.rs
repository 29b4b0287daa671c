//! Tensor shapes. Every activation is one image in HWC order (channels innermost), int8.

use serde::{Deserialize, Serialize};

/// Height, width and channels of one activation tensor, stored HWC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shape {
    /// Rows.
    pub h: u16,
    /// Columns.
    pub w: u16,
    /// Channels.
    pub c: u16,
}

impl Shape {
    /// A shape of `h` rows, `w` columns and `c` channels.
    pub const fn new(h: u16, w: u16, c: u16) -> Self {
        Self { h, w, c }
    }

    /// Number of elements (= bytes, since activations are int8).
    pub const fn len(self) -> usize {
        self.h as usize * self.w as usize * self.c as usize
    }

    /// Whether the tensor has no elements.
    pub const fn is_empty(self) -> bool {
        self.len() == 0
    }
}

/// A 2-D window: kernel size, stride and padding (top, left, bottom, right).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    /// Kernel rows.
    pub kh: u8,
    /// Kernel columns.
    pub kw: u8,
    /// Stride along rows.
    pub sh: u8,
    /// Stride along columns.
    pub sw: u8,
    /// Padding: top, left, bottom, right.
    pub pad: [u8; 4],
}

impl Window {
    /// A square `k`x`k` window with stride `s` and padding `p` on every side.
    pub const fn square(k: u8, s: u8, p: u8) -> Self {
        Self {
            kh: k,
            kw: k,
            sh: s,
            sw: s,
            pad: [p; 4],
        }
    }

    /// Output rows and columns for an input of `h` x `w`, or `None` when the window does
    /// not fit (zero stride, kernel larger than the padded input, or zero-sized kernel).
    pub const fn output_hw(self, h: u16, w: u16) -> Option<(u16, u16)> {
        if self.sh == 0 || self.sw == 0 || self.kh == 0 || self.kw == 0 {
            return None;
        }
        let ph = h as u32 + self.pad[0] as u32 + self.pad[2] as u32;
        let pw = w as u32 + self.pad[1] as u32 + self.pad[3] as u32;
        if ph < self.kh as u32 || pw < self.kw as u32 {
            return None;
        }
        // Padding larger than the kernel would create windows that see only padding.
        if self.pad[0] >= self.kh
            || self.pad[1] >= self.kw
            || self.pad[2] >= self.kh
            || self.pad[3] >= self.kw
        {
            return None;
        }
        let oh = (ph - self.kh as u32) / self.sh as u32 + 1;
        let ow = (pw - self.kw as u32) / self.sw as u32 + 1;
        Some((oh as u16, ow as u16))
    }
}
