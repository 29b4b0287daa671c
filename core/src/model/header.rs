//! The fixed 16-byte blob header, all fields little-endian:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | magic `EMOB` |
//! | 4 | 2 | format version ([`OLDEST_VERSION`] to [`FORMAT_VERSION`]) |
//! | 6 | 2 | flags (none defined: must be 0) |
//! | 8 | 4 | body length in bytes |
//! | 12 | 4 | CRC-32 (ISO-HDLC, as zlib) of the body |

use super::ModelError;
use crc::{CRC_32_ISO_HDLC, Crc};

/// First four bytes of every blob.
pub const MAGIC: [u8; 4] = *b"EMOB";
/// The body layout this build writes: version 2 added the class names.
pub const FORMAT_VERSION: u16 = 2;
/// The oldest body layout this build reads: a version 1 body has no class names and is
/// read as the seven emotions, so blobs already flashed keep working.
pub const OLDEST_VERSION: u16 = 1;
/// Header length.
pub const HEADER_LEN: usize = 16;

const CRC32: Crc<u32> = Crc::<u32>::new(&CRC_32_ISO_HDLC);

/// CRC-32 of a body, as stored in the header.
pub fn body_crc(body: &[u8]) -> u32 {
    CRC32.checksum(body)
}

/// A validated header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Body layout version.
    pub version: u16,
    /// Body length in bytes.
    pub body_len: u32,
    /// CRC-32 of the body.
    pub crc: u32,
}

impl Header {
    /// The header for `body`.
    pub fn for_body(body: &[u8]) -> Result<Self, ModelError> {
        let body_len = u32::try_from(body.len()).map_err(|_| ModelError::BodyTooLarge)?;
        Ok(Self {
            version: FORMAT_VERSION,
            body_len,
            crc: body_crc(body),
        })
    }

    /// Serialized form.
    pub fn to_bytes(self) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        h[0..4].copy_from_slice(&MAGIC);
        h[4..6].copy_from_slice(&self.version.to_le_bytes());
        h[6..8].copy_from_slice(&0u16.to_le_bytes());
        h[8..12].copy_from_slice(&self.body_len.to_le_bytes());
        h[12..16].copy_from_slice(&self.crc.to_le_bytes());
        h
    }

    /// Checks magic, version, flags and length of the header at the start of `blob`,
    /// without reading the body. Firmware uses this to size a read from flash.
    pub fn parse(blob: &[u8]) -> Result<Self, ModelError> {
        let h = blob.get(..HEADER_LEN).ok_or(ModelError::Truncated {
            needed: HEADER_LEN,
            got: blob.len(),
        })?;
        if h[0..4] != MAGIC {
            return Err(ModelError::BadMagic);
        }
        let version = u16::from_le_bytes([h[4], h[5]]);
        if !(OLDEST_VERSION..=FORMAT_VERSION).contains(&version) {
            return Err(ModelError::UnsupportedVersion {
                found: version,
                supported: FORMAT_VERSION,
            });
        }
        let flags = u16::from_le_bytes([h[6], h[7]]);
        if flags != 0 {
            return Err(ModelError::UnknownFlags(flags));
        }
        let body_len = u32::from_le_bytes([h[8], h[9], h[10], h[11]]);
        let crc = u32::from_le_bytes([h[12], h[13], h[14], h[15]]);
        Ok(Self {
            version,
            body_len,
            crc,
        })
    }

    /// The whole blob's length.
    pub fn blob_len(&self) -> usize {
        HEADER_LEN + self.body_len as usize
    }

    /// The body of `blob` after checking its length and CRC. Bytes after the body (flash
    /// erased to `0xFF`, say) are ignored.
    pub fn body<'a>(&self, blob: &'a [u8]) -> Result<&'a [u8], ModelError> {
        let body = blob
            .get(HEADER_LEN..self.blob_len())
            .ok_or(ModelError::Truncated {
                needed: self.blob_len(),
                got: blob.len(),
            })?;
        let actual = body_crc(body);
        if actual != self.crc {
            return Err(ModelError::Crc {
                stored: self.crc,
                actual,
            });
        }
        Ok(body)
    }
}
