//! The cascade blob: an OpenCV Haar cascade converted to integers, the form every device
//! evaluates and the form flashed beside the model on a microcontroller.
//!
//! Why integers: a Cortex-M0+ has no FPU, and the Pi and the chip must find the same boxes
//! in the same frame. Rectangle sums are exact integers already; the float parts of a
//! cascade (node thresholds, leaf values, stage thresholds) are stored in fixed point, and
//! the variance normalisation compares `v · 2^24 < T · isqrt(nf · 2^8)` instead of
//! `v / sqrt(nf) < t` (`T = t · 2^20`), so no division and no float is left at run time.
//! Two kinds of features, as OpenCV's cascades have them: Haar (weighted rectangle sums,
//! normalised by the window's variance) and LBP (local binary patterns of a 3x3 grid of
//! cells, integer comparisons only; no normalisation).
//!
//! Header, 24 bytes, little-endian:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | magic `EMOC` |
//! | 4 | 2 | format version ([`FORMAT_VERSION`]) |
//! | 6 | 1 | window width |
//! | 7 | 1 | window height |
//! | 8 | 2 | stages |
//! | 10 | 2 | weak classifiers, all stages |
//! | 12 | 2 | tree nodes, all weak classifiers |
//! | 14 | 1 | features: 0 Haar, 1 LBP |
//! | 15 | 1 | flags (none defined: must be 0) |
//! | 16 | 4 | body length in bytes |
//! | 20 | 4 | CRC-32 (ISO-HDLC, as the model blob's) of the body |
//!
//! Body, a stage after the other, each: `threshold: i32` (× 2^[`LEAF_SHIFT`]), `weak: u16`,
//! 2 zero bytes, then its weak classifiers, each: `nodes: u8, leaves: u8`, 2 zero bytes,
//! `nodes` × [node](NODE_LEN), `leaves` × `i32` (× 2^[`LEAF_SHIFT`]). A node: `threshold:
//! i32` (× 2^[`THRESHOLD_SHIFT`]), three rectangles `x, y, w, h: u8` (unused ones zero),
//! their weights `i8 × 3`, the rectangle count `u8`, then `left, right: i8` (> 0: a node of
//! this tree; ≤ 0: leaf `-c`) and 2 zero bytes. An LBP cascade's weak classifiers are
//! stumps of [`LBP_WEAK_LEN`] bytes each: the cell `x, y, w, h: u8` of the 3x3 grid's top-left
//! cell, the 256-bit subset of codes that take the first leaf (`u32 × 8`), the two leaves.
//!
//! [`CascadeBlob::parse`] checks all of it once (lengths, CRC, every rectangle inside the
//! window, every child and leaf index, every sum inside `i32`), so evaluating a window
//! cannot fail.

use crc::{CRC_32_ISO_HDLC, Crc};

/// First four bytes of every cascade blob.
pub const MAGIC: [u8; 4] = *b"EMOC";
/// The layout this build reads and writes.
pub const FORMAT_VERSION: u16 = 1;
/// Header length.
pub const HEADER_LEN: usize = 24;
/// Length of one tree node in the body.
pub const NODE_LEN: usize = 24;
/// Length of one LBP weak classifier in the body.
pub const LBP_WEAK_LEN: usize = 4 + 32 + 8;
/// Node thresholds are stored as `round(t · 2^THRESHOLD_SHIFT)`.
pub const THRESHOLD_SHIFT: u32 = 20;
/// Leaf values and stage thresholds are stored as `round(v · 2^LEAF_SHIFT)`.
pub const LEAF_SHIFT: u32 = 22;
/// Largest window side: keeps every product of the normalisation inside `i64`.
pub const MAX_WINDOW: u8 = 64;

const CRC32: Crc<u32> = Crc::<u32>::new(&CRC_32_ISO_HDLC);

/// Why bytes are not a usable cascade blob.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BlobError {
    /// Fewer bytes than a header: an empty or cut file.
    #[error("{len} bytes, shorter than the {HEADER_LEN}-byte cascade header")]
    TooShort {
        /// Bytes given.
        len: usize,
    },
    /// The first four bytes are not `EMOC`: not a cascade blob (or erased flash).
    #[error("not a cascade blob (no EMOC magic; erased flash reads 0xFF)")]
    Magic,
    /// A layout this build does not read.
    #[error("cascade blob format {found}, this build reads {supported}")]
    Version {
        /// Version in the header.
        found: u16,
        /// Version this build reads.
        supported: u16,
    },
    /// The header states more body than there are bytes.
    #[error("the header states a {stated}-byte body, {actual} bytes follow it")]
    Length {
        /// Body length in the header.
        stated: u32,
        /// Bytes after the header.
        actual: usize,
    },
    /// The body's CRC-32 does not match the header: damaged in transfer or in flash.
    #[error("body CRC-32 {actual:#010x} does not match the header's {stored:#010x}: damaged")]
    Crc {
        /// CRC in the header.
        stored: u32,
        /// CRC of the body as read.
        actual: u32,
    },
    /// The window is empty, too small for the normalisation border or over [`MAX_WINDOW`].
    #[error("window {width}x{height}: each side must be 3 to {MAX_WINDOW}")]
    Window {
        /// Width in the header.
        width: u8,
        /// Height in the header.
        height: u8,
    },
    /// The body does not hold what the header says, or holds something out of range.
    #[error("malformed body at byte {at}: {what}")]
    Malformed {
        /// What is wrong.
        what: &'static str,
        /// Body offset of the record.
        at: usize,
    },
}

/// CRC-32 of a body, as stored in the header.
pub fn body_crc(body: &[u8]) -> u32 {
    CRC32.checksum(body)
}

fn u16_at(b: &[u8], i: usize) -> u16 {
    u16::from_le_bytes([b[i], b[i + 1]])
}

fn u32_at(b: &[u8], i: usize) -> u32 {
    u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}

fn i32_at(b: &[u8], i: usize) -> i32 {
    u32_at(b, i) as i32
}

/// What a cascade's weak classifiers look at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Features {
    /// Weighted sums of up to three rectangles, normalised by the window's variance.
    Haar,
    /// Local binary patterns: the 8 cells around a 3x3 grid's centre, each compared with it.
    Lbp,
}

/// A checked cascade blob, borrowed from flash or memory.
#[derive(Clone, Copy, Debug)]
pub struct CascadeBlob<'a> {
    features: Features,
    width: u8,
    height: u8,
    stages: u16,
    weak: u16,
    nodes: u16,
    crc: u32,
    body: &'a [u8],
}

/// The cascade's verdict on one window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Window {
    /// Too flat to judge (standard deviation ≤ 10 grey levels): skipped, as OpenCV does.
    Flat,
    /// Rejected by this stage (0-based).
    Rejected {
        /// The stage.
        stage: u16,
    },
    /// Passed every stage.
    Face,
}

impl<'a> CascadeBlob<'a> {
    /// Checks `bytes` (header, body; bytes after the body, such as the rest of a flash
    /// region, are ignored).
    pub fn parse(bytes: &'a [u8]) -> Result<Self, BlobError> {
        if bytes.len() < HEADER_LEN {
            return Err(BlobError::TooShort { len: bytes.len() });
        }
        if bytes[0..4] != MAGIC {
            return Err(BlobError::Magic);
        }
        let version = u16_at(bytes, 4);
        if version != FORMAT_VERSION {
            return Err(BlobError::Version {
                found: version,
                supported: FORMAT_VERSION,
            });
        }
        let (width, height) = (bytes[6], bytes[7]);
        if !(3..=MAX_WINDOW).contains(&width) || !(3..=MAX_WINDOW).contains(&height) {
            return Err(BlobError::Window { width, height });
        }
        let malformed = |what, at| BlobError::Malformed { what, at };
        let features = match bytes[14] {
            0 => Features::Haar,
            1 => Features::Lbp,
            _ => return Err(malformed("unknown feature type", 0)),
        };
        if bytes[15] != 0 {
            return Err(malformed("unknown header flags", 0));
        }
        let stated = u32_at(bytes, 16);
        let rest = &bytes[HEADER_LEN..];
        if stated as usize > rest.len() {
            return Err(BlobError::Length {
                stated,
                actual: rest.len(),
            });
        }
        let body = &rest[..stated as usize];
        let stored = u32_at(bytes, 20);
        let actual = body_crc(body);
        if actual != stored {
            return Err(BlobError::Crc { stored, actual });
        }
        let blob = Self {
            features,
            width,
            height,
            stages: u16_at(bytes, 8),
            weak: u16_at(bytes, 10),
            nodes: u16_at(bytes, 12),
            crc: stored,
            body,
        };
        blob.check()?;
        Ok(blob)
    }

    /// Walks the body once: every record inside it, every index and rectangle valid.
    fn check(&self) -> Result<(), BlobError> {
        let b = self.body;
        let malformed = |what, at| BlobError::Malformed { what, at };
        if self.stages == 0 {
            return Err(malformed("the cascade has no stages", 0));
        }
        let (mut at, mut weak_seen, mut nodes_seen) = (0usize, 0u32, 0u32);
        for _ in 0..self.stages {
            if at + 8 > b.len() {
                return Err(malformed("stage record past the end", at));
            }
            let weak = u16_at(b, at + 4);
            if weak == 0 || u16_at(b, at + 6) != 0 {
                return Err(malformed(
                    "stage without weak classifiers or with flags",
                    at,
                ));
            }
            at += 8;
            // Largest |sum| a stage can reach, in leaf units: must stay inside i32.
            let mut bound = 0i64;
            for _ in 0..weak {
                if self.features == Features::Lbp {
                    let end = at + LBP_WEAK_LEN;
                    if end > b.len() {
                        return Err(malformed("weak classifier past the end", at));
                    }
                    let (x, y, w, h) = (
                        b[at] as u16,
                        b[at + 1] as u16,
                        b[at + 2] as u16,
                        b[at + 3] as u16,
                    );
                    if w == 0
                        || h == 0
                        || x + 3 * w > self.width as u16
                        || y + 3 * h > self.height as u16
                    {
                        return Err(malformed("an LBP grid lies outside the window", at));
                    }
                    bound += (i32_at(b, at + 36) as i64)
                        .abs()
                        .max((i32_at(b, at + 40) as i64).abs());
                    weak_seen += 1;
                    nodes_seen += 1;
                    at = end;
                    continue;
                }
                if at + 4 > b.len() {
                    return Err(malformed("weak classifier past the end", at));
                }
                let (nodes, leaves) = (b[at] as usize, b[at + 1] as usize);
                if nodes == 0 || leaves < 2 || leaves > nodes + 1 || u16_at(b, at + 2) != 0 {
                    return Err(malformed("a tree needs nodes and nodes + 1 leaves", at));
                }
                let end = at + 4 + nodes * NODE_LEN + leaves * 4;
                if end > b.len() {
                    return Err(malformed("weak classifier past the end", at));
                }
                for n in 0..nodes {
                    let o = at + 4 + n * NODE_LEN;
                    let count = b[o + 19] as usize;
                    if !(1..=3).contains(&count) {
                        return Err(malformed("a node needs 1 to 3 rectangles", o));
                    }
                    for r in 0..3 {
                        let (x, y, w, h) = (
                            b[o + 4 + 4 * r],
                            b[o + 5 + 4 * r],
                            b[o + 6 + 4 * r],
                            b[o + 7 + 4 * r],
                        );
                        let inside = x as u16 + w as u16 <= self.width as u16
                            && y as u16 + h as u16 <= self.height as u16;
                        if r < count && (!inside || w == 0 || h == 0) {
                            return Err(malformed("a rectangle lies outside the window", o));
                        }
                        if r >= count && (x, y, w, h, b[o + 16 + r]) != (0, 0, 0, 0, 0) {
                            return Err(malformed("an unused rectangle is not zero", o));
                        }
                    }
                    let child_ok = |c: i8| {
                        if c > 0 {
                            (c as usize) < nodes
                        } else {
                            ((-(c as i16)) as usize) < leaves
                        }
                    };
                    if !child_ok(b[o + 20] as i8) || !child_ok(b[o + 21] as i8) {
                        return Err(malformed("a node refers to a missing node or leaf", o));
                    }
                    if u16_at(b, o + 22) != 0 {
                        return Err(malformed("node padding is not zero", o));
                    }
                }
                let leaf_at = at + 4 + nodes * NODE_LEN;
                bound += (0..leaves)
                    .map(|l| (i32_at(b, leaf_at + 4 * l) as i64).abs())
                    .max()
                    .unwrap_or(0);
                weak_seen += 1;
                nodes_seen += nodes as u32;
                at = end;
            }
            if bound > i32::MAX as i64 / 2 {
                return Err(malformed("a stage's leaf sum can overflow", at));
            }
        }
        if at != b.len() {
            return Err(malformed("bytes after the last stage", at));
        }
        if weak_seen != self.weak as u32 || nodes_seen != self.nodes as u32 {
            return Err(malformed(
                "weak classifier or node count differs from the header",
                0,
            ));
        }
        Ok(())
    }

    /// What its weak classifiers look at.
    pub fn features(&self) -> Features {
        self.features
    }

    /// Window width the cascade was trained on.
    pub fn width(&self) -> u32 {
        self.width as u32
    }

    /// Window height.
    pub fn height(&self) -> u32 {
        self.height as u32
    }

    /// Stages.
    pub fn stages(&self) -> u16 {
        self.stages
    }

    /// Weak classifiers, all stages.
    pub fn weak(&self) -> u16 {
        self.weak
    }

    /// Tree nodes, all weak classifiers.
    pub fn nodes(&self) -> u16 {
        self.nodes
    }

    /// The body's CRC-32: names this cascade in reports.
    pub fn crc(&self) -> u32 {
        self.crc
    }

    /// Header and body length in bytes.
    pub fn len(&self) -> usize {
        HEADER_LEN + self.body.len()
    }

    /// Never: a parsed blob has a header.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// What the cascade says of the window whose top-left corner is at index `base` of an
    /// integral table pair with rows `stride` apart (see [`super::scan`]). `sum` and
    /// `sq` must reach the window's bottom-right corner.
    pub fn classify(&self, sum: &[u32], sq: &[u32], base: usize, stride: usize) -> Window {
        match self.features {
            Features::Haar => self.classify_haar(sum, sq, base, stride),
            Features::Lbp => self.classify_lbp(sum, base, stride),
        }
    }

    /// [`classify`](Self::classify) for Haar features (what the scan calls, once it knows
    /// the cascade's kind).
    pub fn classify_haar(&self, sum: &[u32], sq: &[u32], base: usize, stride: usize) -> Window {
        let (w, h) = (self.width as usize, self.height as usize);
        // The window's part of each table: one bounds check here, short indices below.
        let span = h * stride + w + 1;
        let (Some(ts), Some(tq)) = (sum.get(base..base + span), sq.get(base..base + span)) else {
            // A caller bug (the scan sizes its tables for the window): judged flat.
            return Window::Flat;
        };
        let rect = |t: &[u32], x: usize, y: usize, rw: usize, rh: usize| {
            let a = y * stride + x;
            let c = a + rh * stride;
            // Exact in wrapping u32: the true sum is non-negative and below 2^32.
            t[c + rw]
                .wrapping_sub(t[a + rw])
                .wrapping_sub(t[c])
                .wrapping_add(t[a])
        };
        // Variance normalisation over the window less a 1-pixel border (OpenCV's normrect).
        let area = ((w - 2) * (h - 2)) as u64;
        let s = rect(ts, 1, 1, w - 2, h - 2) as u64;
        let q = rect(tq, 1, 1, w - 2, h - 2) as u64;
        // area · q ≥ s² (Cauchy-Schwarz), so no underflow.
        let nf = area * q - s * s;
        // Standard deviation ≤ 10: sqrt(nf) / area ≤ 10.
        if nf <= 100 * area * area {
            return Window::Flat;
        }
        // sqrt(nf) · 2^4.
        let sd = (nf << 8).isqrt() as i64;
        let mut rest = self.body;
        for stage in 0..self.stages {
            let Some((head, after)) = rest.split_first_chunk::<8>() else {
                return Window::Flat; // cannot happen: `check` walked the body
            };
            let threshold = i32::from_le_bytes([head[0], head[1], head[2], head[3]]);
            let weak = u16::from_le_bytes([head[4], head[5]]);
            rest = after;
            let mut total = 0i32;
            for _ in 0..weak {
                let (nodes, leaves) = match rest {
                    [n, l, ..] => (*n as usize, *l as usize),
                    _ => return Window::Flat,
                };
                let len = 4 + nodes * NODE_LEN + leaves * 4;
                let Some(tree) = rest.get(4..len) else {
                    return Window::Flat;
                };
                let (node_bytes, leaf_bytes) = tree.split_at(nodes * NODE_LEN);
                let mut node = 0usize;
                let leaf = loop {
                    let Some(n) = node_bytes
                        .get(node * NODE_LEN..)
                        .and_then(|b| b.first_chunk::<NODE_LEN>())
                    else {
                        return Window::Flat;
                    };
                    let mut v = 0i32;
                    for r in 0..(n[19] as usize).min(3) {
                        let p = 4 + 4 * r;
                        let area = rect(
                            ts,
                            n[p] as usize,
                            n[p + 1] as usize,
                            n[p + 2] as usize,
                            n[p + 3] as usize,
                        );
                        v += (n[16 + r] as i8) as i32 * area as i32;
                    }
                    let t = i32::from_le_bytes([n[0], n[1], n[2], n[3]]) as i64;
                    let child = if ((v as i64) << 24) < t * sd {
                        n[20] as i8
                    } else {
                        n[21] as i8
                    };
                    if child <= 0 {
                        break (-(child as i32)) as usize;
                    }
                    node = child as usize;
                };
                let Some(l) = leaf_bytes.get(4 * leaf..4 * leaf + 4) else {
                    return Window::Flat;
                };
                total += i32::from_le_bytes([l[0], l[1], l[2], l[3]]);
                rest = &rest[len..];
            }
            if total < threshold {
                return Window::Rejected { stage };
            }
        }
        Window::Face
    }

    /// [`classify`](Self::classify) for LBP features: each weak classifier's 8-bit code
    /// (OpenCV's bit order, clockwise from the top-left cell, a bit set where the cell's
    /// sum is at least the centre's) picks its first leaf when the code is in its subset.
    pub fn classify_lbp(&self, sum: &[u32], base: usize, stride: usize) -> Window {
        let (w, h) = (self.width as usize, self.height as usize);
        let Some(t) = sum.get(base..base + h * stride + w + 1) else {
            return Window::Flat;
        };
        let mut rest = self.body;
        for stage in 0..self.stages {
            let Some((head, after)) = rest.split_first_chunk::<8>() else {
                return Window::Flat;
            };
            let threshold = i32::from_le_bytes([head[0], head[1], head[2], head[3]]);
            let weak = u16::from_le_bytes([head[4], head[5]]) as usize;
            let Some(stumps) = after.get(..weak * LBP_WEAK_LEN) else {
                return Window::Flat;
            };
            let mut total = 0i32;
            for st in stumps.chunks_exact(LBP_WEAK_LEN) {
                let (x, y, cw, ch) = (
                    st[0] as usize,
                    st[1] as usize,
                    st[2] as usize,
                    st[3] as usize,
                );
                // The 4x4 grid of integral points around the 3x3 cells.
                let p = |r: usize, c: usize| t[(y + r * ch) * stride + x + c * cw];
                let g: [[u32; 4]; 4] = core::array::from_fn(|r| core::array::from_fn(|c| p(r, c)));
                let cell = |r: usize, c: usize| {
                    g[r + 1][c + 1]
                        .wrapping_sub(g[r][c + 1])
                        .wrapping_sub(g[r + 1][c])
                        .wrapping_add(g[r][c])
                };
                let centre = cell(1, 1);
                let code = (((cell(0, 0) >= centre) as usize) << 7)
                    | (((cell(0, 1) >= centre) as usize) << 6)
                    | (((cell(0, 2) >= centre) as usize) << 5)
                    | (((cell(1, 2) >= centre) as usize) << 4)
                    | (((cell(2, 2) >= centre) as usize) << 3)
                    | (((cell(2, 1) >= centre) as usize) << 2)
                    | (((cell(2, 0) >= centre) as usize) << 1)
                    | ((cell(1, 0) >= centre) as usize);
                let word = 4 + 4 * (code >> 5);
                let bits = u32::from_le_bytes([st[word], st[word + 1], st[word + 2], st[word + 3]]);
                let leaf = if bits & (1 << (code & 31)) != 0 {
                    36
                } else {
                    40
                };
                total += i32::from_le_bytes([st[leaf], st[leaf + 1], st[leaf + 2], st[leaf + 3]]);
            }
            if total < threshold {
                return Window::Rejected { stage };
            }
            rest = &after[weak * LBP_WEAK_LEN..];
        }
        Window::Face
    }
}

/// A cascade in floats as OpenCV writes it, before conversion ([`encode`]).
#[cfg(feature = "std")]
#[derive(Clone, Debug)]
pub struct CascadeSpec {
    /// What its weak classifiers look at.
    pub features: Features,
    /// Window width.
    pub width: u32,
    /// Window height.
    pub height: u32,
    /// Stages in order.
    pub stages: Vec<StageSpec>,
}

/// A stage: its threshold and weak classifiers.
#[cfg(feature = "std")]
#[derive(Clone, Debug)]
pub struct StageSpec {
    /// Sum of leaves a window needs to pass.
    pub threshold: f32,
    /// The stage's weak classifiers.
    pub weak: Vec<WeakSpec>,
}

/// A weak classifier of either kind.
#[cfg(feature = "std")]
#[derive(Clone, Debug)]
pub enum WeakSpec {
    /// A tree of Haar feature tests.
    Haar(TreeSpec),
    /// An LBP stump.
    Lbp(LbpSpec),
}

/// An LBP stump: a 3x3 grid of cells and the codes that take the first leaf.
#[cfg(feature = "std")]
#[derive(Clone, Debug)]
pub struct LbpSpec {
    /// The top-left cell `(x, y, w, h)` in window pixels.
    pub cell: (u32, u32, u32, u32),
    /// 256 bits: code `c` takes `leaves[0]` when bit `c & 31` of word `c >> 5` is set.
    pub subset: [i32; 8],
    /// The two leaves.
    pub leaves: [f32; 2],
}

/// A weak classifier: a tree of feature tests.
#[cfg(feature = "std")]
#[derive(Clone, Debug)]
pub struct TreeSpec {
    /// Nodes; node 0 is the root.
    pub nodes: Vec<NodeSpec>,
    /// Leaf values.
    pub leaves: Vec<f32>,
}

/// A tree node: a Haar feature and its threshold.
#[cfg(feature = "std")]
#[derive(Clone, Debug)]
pub struct NodeSpec {
    /// Rectangles `(x, y, w, h, weight)` in window pixels.
    pub rects: Vec<(u32, u32, u32, u32, f32)>,
    /// Normalised feature threshold.
    pub threshold: f32,
    /// Child below the threshold (> 0: node; ≤ 0: leaf `-c`).
    pub left: i32,
    /// Child at or above it.
    pub right: i32,
}

/// Why a float cascade cannot be stored as a blob.
#[cfg(feature = "std")]
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    /// Something outside what the blob's integers hold.
    #[error("stage {stage}, weak classifier {weak}: {what}")]
    OutOfRange {
        /// Stage index.
        stage: usize,
        /// Weak classifier index within the stage.
        weak: usize,
        /// What does not fit.
        what: String,
    },
    /// A cascade-wide limit.
    #[error("{0}")]
    Cascade(String),
}

/// Converts a float cascade to the blob format, checking everything the format's integers
/// must hold (integer rectangle weights, thresholds and leaves in range).
#[cfg(feature = "std")]
pub fn encode(spec: &CascadeSpec) -> Result<Vec<u8>, EncodeError> {
    let (ww, wh) = (spec.width, spec.height);
    if !(3..=MAX_WINDOW as u32).contains(&ww) || !(3..=MAX_WINDOW as u32).contains(&wh) {
        return Err(EncodeError::Cascade(format!(
            "window {ww}x{wh}: each side must be 3 to {MAX_WINDOW}"
        )));
    }
    let fixed = |v: f32, shift: u32, what: &str, stage, weak| {
        let x = (v as f64 * (1u64 << shift) as f64).round();
        if x.abs() >= i32::MAX as f64 / 4.0 || !x.is_finite() {
            return Err(EncodeError::OutOfRange {
                stage,
                weak,
                what: format!("{what} {v} is out of range"),
            });
        }
        Ok(x as i32)
    };
    let mut body = Vec::new();
    let (mut n_weak, mut n_nodes) = (0usize, 0usize);
    for (si, stage) in spec.stages.iter().enumerate() {
        body.extend_from_slice(
            &fixed(stage.threshold, LEAF_SHIFT, "stage threshold", si, 0)?.to_le_bytes(),
        );
        let weak = u16::try_from(stage.weak.len()).map_err(|_| {
            EncodeError::Cascade(format!("stage {si} has too many weak classifiers"))
        })?;
        body.extend_from_slice(&weak.to_le_bytes());
        body.extend_from_slice(&[0, 0]);
        for (wi, weak) in stage.weak.iter().enumerate() {
            let bad = |what: String| EncodeError::OutOfRange {
                stage: si,
                weak: wi,
                what,
            };
            let tree = match (weak, spec.features) {
                (WeakSpec::Haar(tree), Features::Haar) => tree,
                (WeakSpec::Lbp(stump), Features::Lbp) => {
                    let (x, y, w, h) = stump.cell;
                    if w == 0 || h == 0 || x + 3 * w > ww || y + 3 * h > wh {
                        return Err(bad("an LBP grid lies outside the window".into()));
                    }
                    body.extend_from_slice(&[x as u8, y as u8, w as u8, h as u8]);
                    for word in stump.subset {
                        body.extend_from_slice(&word.to_le_bytes());
                    }
                    for leaf in stump.leaves {
                        body.extend_from_slice(
                            &fixed(leaf, LEAF_SHIFT, "leaf", si, wi)?.to_le_bytes(),
                        );
                    }
                    n_weak += 1;
                    n_nodes += 1;
                    continue;
                }
                _ => return Err(bad("a weak classifier of the other feature type".into())),
            };
            let nodes = u8::try_from(tree.nodes.len())
                .ok()
                .filter(|&n| n > 0 && n < 128)
                .ok_or_else(|| bad(format!("{} nodes (1 to 127)", tree.nodes.len())))?;
            let leaves = u8::try_from(tree.leaves.len())
                .ok()
                .filter(|&l| l < 128)
                .ok_or_else(|| bad(format!("{} leaves (up to 127)", tree.leaves.len())))?;
            body.extend_from_slice(&[nodes, leaves, 0, 0]);
            for node in &tree.nodes {
                body.extend_from_slice(
                    &fixed(node.threshold, THRESHOLD_SHIFT, "node threshold", si, wi)?
                        .to_le_bytes(),
                );
                if node.rects.is_empty() || node.rects.len() > 3 {
                    return Err(bad(format!(
                        "a feature of {} rectangles (1 to 3)",
                        node.rects.len()
                    )));
                }
                let mut weights = [0u8; 3];
                for (r, slot) in weights.iter_mut().enumerate() {
                    match node.rects.get(r) {
                        Some(&(x, y, w, h, weight)) => {
                            if x + w > ww || y + h > wh || w == 0 || h == 0 {
                                return Err(bad("a rectangle lies outside the window".into()));
                            }
                            if weight.fract() != 0.0 || weight.abs() > 127.0 {
                                return Err(bad(format!(
                                    "rectangle weight {weight} is not a small integer"
                                )));
                            }
                            body.extend_from_slice(&[x as u8, y as u8, w as u8, h as u8]);
                            *slot = (weight as i8) as u8;
                        }
                        None => body.extend_from_slice(&[0; 4]),
                    }
                }
                body.extend_from_slice(&weights);
                body.push(node.rects.len() as u8);
                let child = |c: i32| {
                    i8::try_from(c)
                        .map(|c| c as u8)
                        .map_err(|_| bad(format!("child index {c} out of range")))
                };
                body.push(child(node.left)?);
                body.push(child(node.right)?);
                body.extend_from_slice(&[0, 0]);
            }
            for &leaf in &tree.leaves {
                body.extend_from_slice(&fixed(leaf, LEAF_SHIFT, "leaf", si, wi)?.to_le_bytes());
            }
            n_weak += 1;
            n_nodes += tree.nodes.len();
        }
    }
    let count = |n: usize, what: &str| {
        u16::try_from(n).map_err(|_| EncodeError::Cascade(format!("{n} {what}: at most 65535")))
    };
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.push(ww as u8);
    out.push(wh as u8);
    out.extend_from_slice(&count(spec.stages.len(), "stages")?.to_le_bytes());
    out.extend_from_slice(&count(n_weak, "weak classifiers")?.to_le_bytes());
    out.extend_from_slice(&count(n_nodes, "nodes")?.to_le_bytes());
    out.push(match spec.features {
        Features::Haar => 0,
        Features::Lbp => 1,
    });
    out.push(0);
    let len =
        u32::try_from(body.len()).map_err(|_| EncodeError::Cascade("body over 4 GiB".into()))?;
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&body_crc(&body).to_le_bytes());
    out.extend_from_slice(&body);
    // What is written must read back: the checks of `parse` are the format's definition.
    CascadeBlob::parse(&out)
        .map_err(|e| EncodeError::Cascade(format!("the written blob does not read back: {e}")))?;
    Ok(out)
}
