//! The test-frames format: a batch of labelled 48x48 faces that `emoedge flash` writes into
//! a flash region of its own and the MCU firmware classifies, so that a board (or its
//! emulator) is checked against the host engine on real images without a camera.
//!
//! Layout, little-endian: `EMOF`, the frame count (`u32`), then per frame one label byte
//! (the class index, or [`NO_LABEL`]) and [`INPUT_LEN`] gray pixels, row-major.

use crate::preprocess::INPUT_LEN;

/// The first four bytes of a test-frames region.
pub const MAGIC: [u8; 4] = *b"EMOF";
/// Bytes before the first frame: magic and count.
pub const HEADER_LEN: usize = 8;
/// Bytes per frame: label and pixels.
pub const RECORD_LEN: usize = 1 + INPUT_LEN;
/// The label byte of a frame whose class is not known.
pub const NO_LABEL: u8 = 255;

/// Why a region does not hold test frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TestFramesError {
    /// The region does not start with [`MAGIC`] (nothing was flashed there).
    NoMagic,
    /// The count names more frames than the region holds.
    Truncated {
        /// Frames the header announces.
        count: usize,
        /// Frames the region has room for.
        room: usize,
    },
}

impl core::fmt::Display for TestFramesError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::NoMagic => write!(f, "no test frames (the region does not start with EMOF)"),
            Self::Truncated { count, room } => write!(
                f,
                "test frames truncated: {count} announced, room for {room} in the region"
            ),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for TestFramesError {}

/// A parsed test-frames region.
#[derive(Clone, Copy, Debug)]
pub struct TestFrames<'a> {
    records: &'a [u8],
    count: usize,
}

impl<'a> TestFrames<'a> {
    /// Checks the magic and that every announced frame lies within `region`.
    pub fn parse(region: &'a [u8]) -> Result<Self, TestFramesError> {
        if region.len() < HEADER_LEN || region[..4] != MAGIC {
            return Err(TestFramesError::NoMagic);
        }
        let count = u32::from_le_bytes([region[4], region[5], region[6], region[7]]) as usize;
        let room = (region.len() - HEADER_LEN) / RECORD_LEN;
        if count > room {
            return Err(TestFramesError::Truncated { count, room });
        }
        Ok(Self {
            records: &region[HEADER_LEN..HEADER_LEN + count * RECORD_LEN],
            count,
        })
    }

    /// Frames in the region.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether the region holds no frame.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Frame `i`: its label (`None` if unknown) and its pixels.
    pub fn get(&self, i: usize) -> Option<(Option<u8>, &'a [u8; INPUT_LEN])> {
        let rec = self.records.get(i * RECORD_LEN..(i + 1) * RECORD_LEN)?;
        let pixels = rec[1..].try_into().ok()?;
        Some(((rec[0] != NO_LABEL).then_some(rec[0]), pixels))
    }
}

/// Writes frames in the test-frames format.
#[cfg(any(test, feature = "std"))]
pub fn write<'f>(
    frames: impl ExactSizeIterator<Item = (Option<u8>, &'f [u8; INPUT_LEN])>,
) -> std::vec::Vec<u8> {
    let mut out = std::vec::Vec::with_capacity(HEADER_LEN + frames.len() * RECORD_LEN);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&(frames.len() as u32).to_le_bytes());
    for (label, pixels) in frames {
        out.push(label.unwrap_or(NO_LABEL));
        out.extend_from_slice(pixels);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_damage_is_named() {
        let a = [7u8; INPUT_LEN];
        let b: [u8; INPUT_LEN] = core::array::from_fn(|i| i as u8);
        let bytes = write([(Some(3), &a), (None, &b)].into_iter());
        let t = TestFrames::parse(&bytes).unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t.get(0), Some((Some(3), &a)));
        assert_eq!(t.get(1), Some((None, &b)));
        assert_eq!(t.get(2), None);
        assert_eq!(
            TestFrames::parse(&bytes[..bytes.len() - 1]).unwrap_err(),
            TestFramesError::Truncated { count: 2, room: 1 }
        );
        assert_eq!(
            TestFrames::parse(&[0xff; 64]).unwrap_err(),
            TestFramesError::NoMagic
        );
        assert_eq!(
            TestFrames::parse(b"EMO").unwrap_err(),
            TestFramesError::NoMagic
        );
    }
}
