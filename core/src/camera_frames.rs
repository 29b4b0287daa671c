//! The camera-frames format: a batch of whole gray camera frames that `emoedge flash
//! --stream` writes into a board's frames region, so that the firmware runs the whole job
//! (find the faces, crop, classify) on real frames without a camera.
//!
//! Layout, little-endian: `EMOS`, the frame count (`u32`), the width and height (`u16`
//! each), then each frame's `width · height` gray pixels, row-major. A region holds either
//! these or [test frames](crate::test_frames), told apart by the magic.

/// The first four bytes of a camera-frames region.
pub const MAGIC: [u8; 4] = *b"EMOS";
/// Bytes before the first frame: magic, count, width, height.
pub const HEADER_LEN: usize = 12;

/// Why a region does not hold camera frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CameraFramesError {
    /// The region does not start with [`MAGIC`].
    NoMagic,
    /// Width or height is zero.
    Empty,
    /// The count names more frames than the region holds.
    Truncated {
        /// Frames the header announces.
        count: usize,
        /// Frames the region has room for.
        room: usize,
    },
}

impl core::fmt::Display for CameraFramesError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::NoMagic => write!(f, "no camera frames (the region does not start with EMOS)"),
            Self::Empty => write!(f, "camera frames of zero width or height"),
            Self::Truncated { count, room } => write!(
                f,
                "camera frames truncated: {count} announced, room for {room} in the region"
            ),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for CameraFramesError {}

/// A parsed camera-frames region.
#[derive(Clone, Copy, Debug)]
pub struct CameraFrames<'a> {
    pixels: &'a [u8],
    count: usize,
    width: u16,
    height: u16,
}

impl<'a> CameraFrames<'a> {
    /// Checks the magic, the size and that every announced frame lies within `region`.
    pub fn parse(region: &'a [u8]) -> Result<Self, CameraFramesError> {
        if region.len() < HEADER_LEN || region[..4] != MAGIC {
            return Err(CameraFramesError::NoMagic);
        }
        let count = u32::from_le_bytes([region[4], region[5], region[6], region[7]]) as usize;
        let width = u16::from_le_bytes([region[8], region[9]]);
        let height = u16::from_le_bytes([region[10], region[11]]);
        let len = width as usize * height as usize;
        if len == 0 {
            return Err(CameraFramesError::Empty);
        }
        let room = (region.len() - HEADER_LEN) / len;
        if count > room {
            return Err(CameraFramesError::Truncated { count, room });
        }
        Ok(Self {
            pixels: &region[HEADER_LEN..HEADER_LEN + count * len],
            count,
            width,
            height,
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

    /// Frame width.
    pub fn width(&self) -> u32 {
        self.width as u32
    }

    /// Frame height.
    pub fn height(&self) -> u32 {
        self.height as u32
    }

    /// Frame `i`'s pixels.
    pub fn get(&self, i: usize) -> Option<&'a [u8]> {
        let len = self.width as usize * self.height as usize;
        self.pixels.get(i * len..(i + 1) * len)
    }
}

/// Writes gray frames of one size in the camera-frames format; `None` when a frame is not
/// `width · height` bytes or a side does not fit `u16`.
#[cfg(any(test, feature = "std"))]
pub fn write<'f>(
    width: u32,
    height: u32,
    frames: impl ExactSizeIterator<Item = &'f [u8]>,
) -> Option<std::vec::Vec<u8>> {
    let (w, h) = (u16::try_from(width).ok()?, u16::try_from(height).ok()?);
    let len = width as usize * height as usize;
    let mut out = std::vec::Vec::with_capacity(HEADER_LEN + frames.len() * len);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&(frames.len() as u32).to_le_bytes());
    out.extend_from_slice(&w.to_le_bytes());
    out.extend_from_slice(&h.to_le_bytes());
    for f in frames {
        if f.len() != len {
            return None;
        }
        out.extend_from_slice(f);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_damage_is_named() {
        let a = [7u8; 12];
        let b: [u8; 12] = core::array::from_fn(|i| i as u8);
        let bytes = write(4, 3, [&a[..], &b[..]].into_iter()).unwrap();
        let t = CameraFrames::parse(&bytes).unwrap();
        assert_eq!((t.len(), t.width(), t.height()), (2, 4, 3));
        assert_eq!(t.get(0), Some(&a[..]));
        assert_eq!(t.get(1), Some(&b[..]));
        assert_eq!(t.get(2), None);
        assert_eq!(
            CameraFrames::parse(&bytes[..bytes.len() - 1]).unwrap_err(),
            CameraFramesError::Truncated { count: 2, room: 1 }
        );
        assert_eq!(
            CameraFrames::parse(&[0xff; 64]).unwrap_err(),
            CameraFramesError::NoMagic
        );
        let mut empty = bytes.clone();
        empty[8] = 0;
        empty[9] = 0;
        assert_eq!(
            CameraFrames::parse(&empty).unwrap_err(),
            CameraFramesError::Empty
        );
        assert!(write(4, 3, [&a[..5]].into_iter()).is_none());
    }
}
