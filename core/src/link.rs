//! The serial link between the host and a board's firmware: the messages and their framing,
//! the same on both ends, so that `emoedge verify --board` can send `test` faces to a chip
//! and compare what it answers with the host engine (ST's tools call this "validate on
//! target").
//!
//! The host asks, the board answers, one request at a time ([`Request`], [`Response`]). On
//! the wire each message is one frame:
//!
//! ```text
//! 0x00 | COBS( VERSION | postcard(message) | CRC-32 little-endian ) | 0x00
//! ```
//!
//! COBS leaves no zero byte inside a frame, so a zero always ends one: a receiver that
//! starts mid-stream, or after the firmware's text report, loses at most the frame it
//! joined. The version byte sits outside the postcard message, so two ends of different
//! versions still name the mismatch instead of misreading each other. The CRC-32 (the
//! blob's, ISO-HDLC) covers the version and the message. A damaged frame is answered with
//! [`Response::Error`], never a fault.

use crate::labels::MAX_CLASSES;
use crate::model::MAX_LAYERS;
use crate::preprocess::INPUT_LEN;
use crc::{CRC_32_ISO_HDLC, Crc};
use serde::{Deserialize, Serialize};

/// The protocol's version: the first byte of every frame's content.
pub const VERSION: u8 = 1;

/// The frame delimiter.
pub const DELIMITER: u8 = 0;

/// The largest frame content (version, message and CRC) either end accepts: a
/// [`Request::Classify`] with its face and room to spare.
pub const MAX_CONTENT: usize = INPUT_LEN + 64;

/// The largest frame on the wire, delimiters included.
pub const MAX_FRAME: usize = cobs::max_encoding_length(MAX_CONTENT) + 2;

const CRC32: Crc<u32> = Crc::<u32>::new(&CRC_32_ISO_HDLC);

/// What the host asks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request<'a> {
    /// Who are you, and which model do you hold? Answered with [`Response::Hello`].
    Hello,
    /// Classify this 48x48 gray face (row-major, [`INPUT_LEN`] bytes, before the input
    /// quantization). Answered with [`Response::Logits`] carrying the same `id`.
    Classify {
        /// The host's number for the face, echoed back.
        id: u32,
        /// The pixels.
        face: &'a [u8],
    },
    /// Classify this face and give the cost of each layer. Answered with
    /// [`Response::Profile`].
    Profile {
        /// The pixels, as for [`Request::Classify`].
        face: &'a [u8],
    },
}

/// What the board answers.
// A profile (every layer's cost) is the large variant; a board without a heap holds one
// response at a time on its stack, so boxing it would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Response<'a> {
    /// The board, its firmware and its model.
    #[serde(borrow)]
    Hello(Hello<'a>),
    /// The int8 logits of a [`Request::Classify`] and what the inference cost.
    Logits {
        /// The request's `id`.
        id: u32,
        /// One int8 logit per class.
        logits: heapless::Vec<i8, MAX_CLASSES>,
        /// The inference's cost in the board's [`CostUnit`].
        cost: u64,
    },
    /// The cost of each layer for a [`Request::Profile`].
    Profile {
        /// Per layer, in order.
        #[serde(borrow)]
        layers: heapless::Vec<LayerCost<'a>, MAX_LAYERS>,
        /// The whole inference.
        cost: u64,
    },
    /// The request could not be served.
    Error(LinkError),
}

/// A board's answer to [`Request::Hello`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello<'a> {
    /// The board's name (`emoedge flash --board NAME`).
    pub board: &'a str,
    /// Its processor core ("Cortex-M0+").
    pub core: &'a str,
    /// The core clock the firmware runs, Hz.
    pub clock_hz: u32,
    /// The firmware's version.
    pub firmware: &'a str,
    /// What the costs count.
    pub unit: CostUnit,
    /// Bytes of working memory the firmware has for a model.
    pub arena_len: u32,
    /// The model flashed beside the firmware.
    #[serde(borrow)]
    pub model: ModelState<'a>,
}

/// The model in a board's blob region, as the firmware found it at start.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ModelState<'a> {
    /// A blob that parsed and fits the arena.
    Ready(BlobId),
    /// No usable blob: the firmware's reason, as its report line gives it.
    Refused(&'a str),
}

/// What tells two blobs apart: the host compares it with the blob it holds before it sends
/// any face, so that a board holding another model is never measured as this one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobId {
    /// The blob's length in bytes.
    pub len: u32,
    /// The CRC-32 of its body, from its header.
    pub crc: u32,
    /// The SHA-256 of the float weights it was quantized from.
    pub weights_hash: [u8; 32],
}

impl BlobId {
    /// The identity of the blob whose header is `header` and whose body is `model`.
    pub fn new(header: &crate::model::Header, model: &crate::Model) -> Self {
        Self {
            len: header.blob_len() as u32,
            crc: header.crc,
            weights_hash: model.body().weights_hash,
        }
    }
}

/// What a board's costs count.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CostUnit {
    /// Core clock cycles (a chip, rp2040js).
    Cycles,
    /// Retired instructions (QEMU, which has no cycle model).
    Instructions,
}

impl CostUnit {
    /// The unit's name, plural ("cycles").
    pub fn plural(self) -> &'static str {
        match self {
            Self::Cycles => "cycles",
            Self::Instructions => "instructions",
        }
    }

    /// Its short form after "MAC/" ("cycle", "instr").
    pub fn short(self) -> &'static str {
        match self {
            Self::Cycles => "cycle",
            Self::Instructions => "instr",
        }
    }
}

/// One layer's cost in a [`Response::Profile`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerCost<'a> {
    /// The operation ("conv2d", "depthwise", ...).
    pub op: &'a str,
    /// Its multiply-accumulates.
    pub macs: u64,
    /// Its cost in the board's [`CostUnit`].
    pub cost: u64,
}

/// Why a frame or a request was refused; sent back as [`Response::Error`] by the board and
/// returned by [`FrameReader`] on either end.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum LinkError {
    /// The frame's content exceeds [`MAX_CONTENT`] (or the sender's buffer).
    TooLong {
        /// The most this end takes.
        max: u32,
    },
    /// The frame is not valid COBS, or too short to hold a version and a CRC.
    Framing,
    /// The frame's CRC does not match its content: damaged on the way.
    Crc {
        /// CRC in the frame.
        stored: u32,
        /// CRC of the content as received.
        actual: u32,
    },
    /// The frame was written in another protocol version.
    Version {
        /// The version in the frame.
        found: u8,
        /// The version this end speaks.
        supported: u8,
    },
    /// The content is not a message this end knows.
    Decode,
    /// A face of the wrong size.
    FaceSize {
        /// Bytes sent.
        got: u32,
        /// Bytes a face has.
        want: u32,
    },
    /// The board has no usable model (its hello says why).
    NoModel,
    /// The engine refused the face (cannot happen for a model the firmware accepted).
    Engine,
}

impl core::fmt::Display for LinkError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::TooLong { max } => write!(f, "frame longer than the {max} bytes this end takes"),
            Self::Framing => write!(
                f,
                "malformed frame (bad COBS, or no room for version and CRC)"
            ),
            Self::Crc { stored, actual } => write!(
                f,
                "frame damaged: CRC {actual:#010x} of what arrived, {stored:#010x} in the frame"
            ),
            Self::Version { found, supported } => write!(
                f,
                "link protocol version {found} in the frame, this end speaks version {supported}"
            ),
            Self::Decode => write!(f, "frame holds no message this end knows"),
            Self::FaceSize { got, want } => write!(f, "face of {got} bytes, a face has {want}"),
            Self::NoModel => write!(f, "the board holds no usable model"),
            Self::Engine => write!(f, "the engine refused the face"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for LinkError {}

/// Writes `message` as one frame (delimiters included) into `out`, using `scratch` for its
/// unframed content; returns the frame. Fails with [`LinkError::TooLong`] when either buffer
/// is too small.
pub fn encode<'o, T: Serialize>(
    message: &T,
    scratch: &mut [u8],
    out: &'o mut [u8],
) -> Result<&'o [u8], LinkError> {
    encode_as(VERSION, message, scratch, out)
}

/// A frame of `message` as an end speaking protocol `version` writes it: what tests of the
/// version check on either end send.
#[cfg(feature = "std")]
pub fn encode_as_version<T: Serialize>(version: u8, message: &T) -> std::vec::Vec<u8> {
    let (mut scratch, mut out) = (std::vec![0u8; MAX_CONTENT], std::vec![0u8; MAX_FRAME]);
    encode_as(version, message, &mut scratch, &mut out)
        .map(<[u8]>::to_vec)
        .unwrap_or_default()
}

fn encode_as<'o, T: Serialize>(
    version: u8,
    message: &T,
    scratch: &mut [u8],
    out: &'o mut [u8],
) -> Result<&'o [u8], LinkError> {
    let too_long = LinkError::TooLong {
        max: scratch.len().min(out.len()) as u32,
    };
    let (first, rest) = scratch.split_first_mut().ok_or(too_long)?;
    *first = version;
    let body = postcard::to_slice(message, rest)
        .map_err(|_| too_long)?
        .len();
    let content_len = 1 + body + 4;
    let content = scratch.get_mut(..content_len).ok_or(too_long)?;
    let crc = CRC32.checksum(&content[..1 + body]);
    content[1 + body..].copy_from_slice(&crc.to_le_bytes());
    if out.len() < cobs::max_encoding_length(content_len) + 2 {
        return Err(too_long);
    }
    out[0] = DELIMITER;
    let n = cobs::encode(content, &mut out[1..]);
    out[1 + n] = DELIMITER;
    Ok(&out[..n + 2])
}

/// Gathers frames from a byte stream, one byte at a time (what a UART gives), into a buffer
/// of its own; [`FrameReader::push`] returns each frame's message bytes, checked.
pub struct FrameReader<const N: usize> {
    buf: [u8; N],
    len: usize,
    overflow: bool,
}

impl<const N: usize> Default for FrameReader<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> FrameReader<N> {
    /// An empty reader.
    pub const fn new() -> Self {
        Self {
            buf: [0; N],
            len: 0,
            overflow: false,
        }
    }

    /// Takes one byte. At the end of a frame, returns its postcard message (version and CRC
    /// checked and stripped), or why the frame was refused; `None` otherwise, and for the
    /// empty frames between two delimiters.
    pub fn push(&mut self, byte: u8) -> Option<Result<&[u8], LinkError>> {
        if byte != DELIMITER {
            if self.len < N {
                self.buf[self.len] = byte;
                self.len += 1;
            } else {
                self.overflow = true;
            }
            return None;
        }
        let (len, overflow) = (self.len, self.overflow);
        self.len = 0;
        self.overflow = false;
        if overflow {
            return Some(Err(LinkError::TooLong { max: N as u32 }));
        }
        if len == 0 {
            return None;
        }
        Some(check(&mut self.buf[..len]))
    }
}

/// Undoes the COBS encoding of one frame's bytes (between delimiters) in place and checks
/// its CRC and version; returns the postcard message.
fn check(frame: &mut [u8]) -> Result<&[u8], LinkError> {
    let n = cobs::decode_in_place(frame).map_err(|_| LinkError::Framing)?;
    if n < 5 {
        return Err(LinkError::Framing);
    }
    let content = &frame[..n];
    let (covered, crc) = content.split_at(n - 4);
    let stored = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
    let actual = CRC32.checksum(covered);
    if stored != actual {
        return Err(LinkError::Crc { stored, actual });
    }
    if covered[0] != VERSION {
        return Err(LinkError::Version {
            found: covered[0],
            supported: VERSION,
        });
    }
    Ok(&covered[1..])
}

/// Reads one message from the bytes [`FrameReader::push`] returned.
pub fn decode<'a, T: Deserialize<'a>>(message: &'a [u8]) -> Result<T, LinkError> {
    match postcard::take_from_bytes(message) {
        Ok((value, [])) => Ok(value),
        _ => Err(LinkError::Decode),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame<T: Serialize>(m: &T) -> std::vec::Vec<u8> {
        let (mut scratch, mut out) = ([0u8; MAX_CONTENT], [0u8; MAX_FRAME]);
        encode(m, &mut scratch, &mut out).unwrap().to_vec()
    }

    /// Feeds `bytes` and returns what each completed frame gave.
    fn read(bytes: &[u8]) -> std::vec::Vec<Result<std::vec::Vec<u8>, LinkError>> {
        let mut r = FrameReader::<MAX_FRAME>::new();
        bytes
            .iter()
            .filter_map(|&b| r.push(b).map(|res| res.map(<[u8]>::to_vec)))
            .collect()
    }

    #[test]
    fn a_face_crosses_the_link_whole() {
        let face: std::vec::Vec<u8> = (0..INPUT_LEN).map(|i| (i % 256) as u8).collect();
        let req = Request::Classify { id: 7, face: &face };
        let f = frame(&req);
        assert!(f.len() <= MAX_FRAME);
        assert_eq!((f[0], f[f.len() - 1]), (0, 0));
        assert!(
            !f[1..f.len() - 1].contains(&0),
            "COBS leaves no zero inside"
        );
        let got = read(&f);
        assert_eq!(got.len(), 1);
        let msg = got[0].as_ref().unwrap();
        assert_eq!(decode::<Request>(msg).unwrap(), req);
    }

    #[test]
    fn text_before_a_frame_costs_nothing_but_itself() {
        let hello = Response::Hello(Hello {
            board: "pico",
            core: "Cortex-M0+",
            clock_hz: 125_000_000,
            firmware: "0.1.0",
            unit: CostUnit::Cycles,
            arena_len: 98_304,
            model: ModelState::Refused("no valid model blob in its flash region"),
        });
        let mut bytes = b"emoedge-mcu: error: test frames: none\n".to_vec();
        bytes.extend(frame(&hello));
        let got = read(&bytes);
        // The text is a frame of its own, refused; the hello after it arrives intact.
        assert_eq!(got.len(), 2);
        assert!(got[0].is_err());
        let msg = got[1].as_ref().unwrap();
        assert_eq!(decode::<Response>(msg).unwrap(), hello);
    }

    #[test]
    fn damaged_truncated_and_foreign_frames_are_named() {
        let f = frame(&Request::Hello);
        let mut bad = f.clone();
        bad[2] ^= 0x40;
        assert!(matches!(read(&bad)[0], Err(LinkError::Crc { .. })));
        // A frame cut short: its bytes end at the next delimiter.
        let cut = [&f[..f.len() - 3], &[0u8][..]].concat();
        assert!(read(&cut)[0].is_err());

        let (mut scratch, mut other) = ([0u8; 16], [0u8; 16]);
        let other = encode_as(VERSION + 1, &Request::Hello, &mut scratch, &mut other).unwrap();
        let got = read(other);
        assert_eq!(
            got[0],
            Err(LinkError::Version {
                found: VERSION + 1,
                supported: VERSION
            })
        );
    }

    #[test]
    fn overlong_frames_are_refused_and_the_next_one_read() {
        let mut bytes = std::vec![0u8];
        bytes.extend(std::iter::repeat_n(0x55, MAX_FRAME + 10));
        bytes.extend(frame(&Request::Hello));
        let got = read(&bytes);
        assert_eq!(
            got[0],
            Err(LinkError::TooLong {
                max: MAX_FRAME as u32
            })
        );
        assert_eq!(
            decode::<Request>(got[1].as_ref().unwrap()),
            Ok(Request::Hello)
        );
    }

    #[test]
    fn buffers_too_small_are_an_error_not_a_fault() {
        let face = [0u8; INPUT_LEN];
        let (mut scratch, mut out) = ([0u8; 100], [0u8; MAX_FRAME]);
        let err = encode(&Request::Profile { face: &face }, &mut scratch, &mut out);
        assert_eq!(err, Err(LinkError::TooLong { max: 100 }));
        assert_eq!(decode::<Request>(&[0x09]), Err(LinkError::Decode));
        assert_eq!(decode::<Request>(&[0x00, 0x00]), Err(LinkError::Decode));
    }
}
