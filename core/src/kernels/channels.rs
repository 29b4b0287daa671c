//! Per-output-channel parameters (bias and requantization), borrowed from a blob.

use crate::quant::Requant;

/// Bytes per channel record: `bias: i32 LE`, `mult: i32 LE`, `shift: i8`.
pub const CHANNEL_RECORD_LEN: usize = 9;

/// Per-output-channel bias and [`Requant`], as packed little-endian records.
///
/// Only [`ChannelParams::parse`] builds one, and it validates every record, so
/// [`ChannelParams::get`] needs no checks on the hot path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChannelParams<'a> {
    bytes: &'a [u8],
}

/// A channel record is malformed: wrong total length, or an invalid multiplier/shift.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChannelParamsError {
    /// The byte length is not `channels · CHANNEL_RECORD_LEN`.
    Len { expected: usize, got: usize },
    /// Record `channel` holds a multiplier/shift that [`Requant::new`] rejects.
    Requant { channel: usize },
}

impl<'a> ChannelParams<'a> {
    /// Validates `bytes` as `channels` records.
    pub fn parse(bytes: &'a [u8], channels: usize) -> Result<Self, ChannelParamsError> {
        let expected = channels * CHANNEL_RECORD_LEN;
        if bytes.len() != expected {
            return Err(ChannelParamsError::Len {
                expected,
                got: bytes.len(),
            });
        }
        for (channel, rec) in bytes.chunks_exact(CHANNEL_RECORD_LEN).enumerate() {
            let (m, s) = mult_shift(rec);
            Requant::new(m, s).map_err(|_| ChannelParamsError::Requant { channel })?;
        }
        Ok(Self { bytes })
    }

    /// Number of channels.
    pub fn len(&self) -> usize {
        self.bytes.len() / CHANNEL_RECORD_LEN
    }

    /// Whether there are no channels.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Bias and requantization of channel `c`. `c < len()` is the caller's shape check;
    /// out of range gives a zero bias and a zero multiplier rather than a panic.
    #[inline(always)]
    pub fn get(&self, c: usize) -> (i32, Requant) {
        let Some(rec) = self
            .bytes
            .get(c * CHANNEL_RECORD_LEN..(c + 1) * CHANNEL_RECORD_LEN)
        else {
            return (0, Requant::ZERO);
        };
        let bias = i32::from_le_bytes([rec[0], rec[1], rec[2], rec[3]]);
        let (m, s) = mult_shift(rec);
        (bias, Requant::validated(m, s))
    }

    /// Every channel's bias and requantization, in order: what kernels that walk the
    /// channels in order use, with no per-channel index check.
    #[inline(always)]
    pub fn iter(&self) -> impl Iterator<Item = (i32, Requant)> + 'a {
        self.bytes.chunks_exact(CHANNEL_RECORD_LEN).map(|rec| {
            let bias = i32::from_le_bytes([rec[0], rec[1], rec[2], rec[3]]);
            let (m, s) = mult_shift(rec);
            (bias, Requant::validated(m, s))
        })
    }

    /// Largest `|bias|` over all channels.
    pub fn max_abs_bias(&self) -> u32 {
        (0..self.len())
            .map(|c| self.get(c).0.unsigned_abs())
            .max()
            .unwrap_or(0)
    }

    /// The raw records, for writing back into a blob.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Packs records (host side, and tests).
    #[cfg(any(test, feature = "std"))]
    pub fn encode(records: &[(i32, Requant)]) -> std::vec::Vec<u8> {
        let mut out = std::vec::Vec::with_capacity(records.len() * CHANNEL_RECORD_LEN);
        for (bias, rq) in records {
            out.extend_from_slice(&bias.to_le_bytes());
            out.extend_from_slice(&rq.mult().to_le_bytes());
            out.push(rq.shift() as i8 as u8);
        }
        out
    }
}

fn mult_shift(rec: &[u8]) -> (i32, i32) {
    (
        i32::from_le_bytes([rec[4], rec[5], rec[6], rec[7]]),
        rec[8] as i8 as i32,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_validation() {
        let rq = Requant::new(1 << 30, 3).unwrap();
        let bytes = ChannelParams::encode(&[(-7, rq), (1 << 20, rq)]);
        assert_eq!(bytes.len(), 18);
        let p = ChannelParams::parse(&bytes, 2).unwrap();
        assert_eq!(p.get(0), (-7, rq));
        assert_eq!(p.get(1), (1 << 20, rq));
        assert_eq!(
            ChannelParams::parse(&bytes, 3),
            Err(ChannelParamsError::Len {
                expected: 27,
                got: 18
            })
        );
        let mut bad = bytes.clone();
        bad[9 + 7] = 0x20; // multiplier of channel 1 no longer normalised
        assert_eq!(
            ChannelParams::parse(&bad, 2),
            Err(ChannelParamsError::Requant { channel: 1 })
        );
    }
}
