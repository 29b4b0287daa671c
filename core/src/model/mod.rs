//! The model blob: a fixed [`header`] and a postcard body ([`ModelBody`]).
//!
//! Parsing never panics and never reads past the buffer: every length, shape, quantization
//! parameter and layer chain is checked in [`Model::parse`] before anything runs, so a
//! truncated, tampered, wrong-version or wrong-shape blob is a [`ModelError`].

pub mod header;

use crate::kernels::{ChannelParams, ChannelParamsError, KernelError};
use crate::quant::{OutputQuant, Requant};
use crate::shape::{Shape, Window};
use serde::{Deserialize, Serialize};

pub use header::{FORMAT_VERSION, HEADER_LEN, Header, MAGIC, OLDEST_VERSION};

use crate::labels::{self, EMOTIONS, LabelError, MAX_CLASSES};

/// Most layers a model may have.
pub const MAX_LAYERS: usize = 32;

/// One layer of a sequential int8 network. Its input is the previous layer's output (the
/// model input for the first), including that tensor's zero point.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Layer<'a> {
    /// Dense convolution; weights `(out_c, kh, kw, in_c)`.
    Conv2d {
        /// Kernel, stride, padding.
        window: Window,
        /// Output channels.
        out_c: u16,
        /// int8 weights as bytes.
        weights: &'a [u8],
        /// Per-output-channel records (see [`ChannelParams`]).
        channels: &'a [u8],
        /// Output quantization.
        output: OutputQuant,
    },
    /// Depthwise convolution; weights `(kh, kw, c)`.
    Depthwise {
        /// Kernel, stride, padding.
        window: Window,
        /// int8 weights as bytes.
        weights: &'a [u8],
        /// Per-channel records.
        channels: &'a [u8],
        /// Output quantization.
        output: OutputQuant,
    },
    /// 1x1 convolution; weights `(out_c, in_c)`.
    Pointwise {
        /// Output channels.
        out_c: u16,
        /// int8 weights as bytes.
        weights: &'a [u8],
        /// Per-output-channel records.
        channels: &'a [u8],
        /// Output quantization.
        output: OutputQuant,
    },
    /// Max pool; keeps the input quantization.
    MaxPool {
        /// Kernel, stride, padding.
        window: Window,
    },
    /// Average pool over the whole plane.
    GlobalAvgPool {
        /// `in_scale / (h · w · out_scale)`.
        requant: Requant,
        /// Output quantization.
        output: OutputQuant,
    },
    /// Fully connected over the flattened (HWC) input; weights `(out, in)`.
    Dense {
        /// Outputs.
        out_len: u16,
        /// int8 weights as bytes.
        weights: &'a [u8],
        /// Per-output records.
        channels: &'a [u8],
        /// Output quantization.
        output: OutputQuant,
    },
}

impl Layer<'_> {
    /// Bytes of int8 weights.
    pub fn weight_bytes(&self) -> usize {
        match self {
            Layer::Conv2d { weights, .. }
            | Layer::Depthwise { weights, .. }
            | Layer::Pointwise { weights, .. }
            | Layer::Dense { weights, .. } => weights.len(),
            Layer::MaxPool { .. } | Layer::GlobalAvgPool { .. } => 0,
        }
    }
}

/// The postcard body of a blob.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelBody<'a> {
    /// Input shape (48x48x1 for the emotion models).
    pub input: Shape,
    /// Input zero point (scale is `1/255` by the preprocessing contract).
    pub input_zp: i8,
    /// SHA-256 of the float weights the model was quantized from; the ONNX export carries
    /// the same hash, so `verify` can tell whether two artifacts come from one model.
    pub weights_hash: [u8; 32],
    /// Scale of the int8 logits, to turn them into probabilities on hosts (unused on MCUs).
    pub output_scale: f32,
    /// The layers, in order.
    #[serde(borrow)]
    pub layers: heapless::Vec<Layer<'a>, MAX_LAYERS>,
    /// The class names, in output order (see [`crate::labels`] for what a name may hold).
    #[serde(borrow)]
    pub labels: heapless::Vec<&'a str, MAX_CLASSES>,
}

/// A version 1 body: a [`ModelBody`] without its class names, which were the seven
/// emotions.
#[derive(Deserialize)]
struct BodyV1<'a> {
    input: Shape,
    input_zp: i8,
    weights_hash: [u8; 32],
    output_scale: f32,
    #[serde(borrow)]
    layers: heapless::Vec<Layer<'a>, MAX_LAYERS>,
}

impl<'a> From<BodyV1<'a>> for ModelBody<'a> {
    fn from(v1: BodyV1<'a>) -> Self {
        Self {
            input: v1.input,
            input_zp: v1.input_zp,
            weights_hash: v1.weights_hash,
            output_scale: v1.output_scale,
            layers: v1.layers,
            labels: EMOTIONS.iter().copied().collect(),
        }
    }
}

/// Why a blob was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ModelError {
    /// The buffer ends before the header or the body does.
    Truncated {
        /// Bytes the header says the blob has.
        needed: usize,
        /// Bytes there are.
        got: usize,
    },
    /// The first four bytes are not [`MAGIC`]: not a model blob (or erased flash).
    BadMagic,
    /// The blob was written in a format version this build cannot read.
    UnsupportedVersion {
        /// Version in the blob.
        found: u16,
        /// Version this build reads.
        supported: u16,
    },
    /// Header flags this build does not know.
    UnknownFlags(u16),
    /// The body's CRC-32 does not match the header: the blob was damaged or tampered with.
    Crc {
        /// CRC in the header.
        stored: u32,
        /// CRC of the body as read.
        actual: u32,
    },
    /// The body is not a valid postcard [`ModelBody`] (bad encoding, or more than
    /// [`MAX_LAYERS`] layers).
    Decode,
    /// The body decodes but has bytes left over.
    TrailingBytes,
    /// The body is larger than 4 GiB.
    BodyTooLarge,
    /// The model has no layers.
    NoLayers,
    /// A layer's shapes, weights or clamp do not fit its input.
    Layer {
        /// Layer index.
        index: usize,
        /// What is wrong.
        error: KernelError,
    },
    /// A layer's per-channel records are malformed.
    Channels {
        /// Layer index.
        index: usize,
        /// What is wrong.
        error: ChannelParamsError,
    },
    /// A layer's int32 accumulator could overflow: `|bias| + taps · 255 · 128` exceeds
    /// `i32::MAX`. No trained model comes near this; it guards the engine against hostile
    /// blobs, so kernels can accumulate without overflow checks.
    Accumulator {
        /// Layer index.
        index: usize,
    },
    /// The class names are refused (count, a name, or two the same).
    Labels(LabelError),
    /// The last layer does not output one score per class name.
    OutputShape {
        /// Elements the last layer outputs.
        got: usize,
        /// Class names the model has.
        labels: usize,
    },
}

impl core::fmt::Display for ModelError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Truncated { needed, got } => {
                write!(f, "blob truncated: needs {needed} bytes, has {got}")
            }
            Self::BadMagic => write!(f, "not a model blob (bad magic)"),
            Self::UnsupportedVersion { found, supported } => {
                write!(
                    f,
                    "blob format version {found} is not supported (this build reads {supported})"
                )
            }
            Self::UnknownFlags(x) => write!(f, "unknown header flags {x:#06x}"),
            Self::Crc { stored, actual } => {
                write!(
                    f,
                    "body CRC mismatch (header {stored:#010x}, body {actual:#010x}): blob damaged or tampered"
                )
            }
            Self::Decode => write!(f, "body does not decode as a model"),
            Self::TrailingBytes => write!(f, "body has trailing bytes"),
            Self::BodyTooLarge => write!(f, "body larger than 4 GiB"),
            Self::NoLayers => write!(f, "model has no layers"),
            Self::Layer { index, error } => write!(f, "layer {index}: {error:?}"),
            Self::Channels { index, error } => {
                write!(f, "layer {index}: bad channel records: {error:?}")
            }
            Self::Accumulator { index } => {
                write!(f, "layer {index}: its accumulator could overflow int32")
            }
            Self::Labels(e) => write!(f, "{e}"),
            Self::OutputShape { got, labels } => {
                write!(f, "model outputs {got} values but names {labels} classes")
            }
        }
    }
}

#[cfg(any(test, feature = "std"))]
impl std::error::Error for ModelError {}

/// A layer resolved against its input: the kernel parameters, ready to run.
#[derive(Clone, Copy, Debug)]
pub enum Step<'a> {
    /// See [`crate::kernels::conv2d`].
    Conv2d(crate::kernels::conv2d::Conv2dParams<'a>),
    /// See [`crate::kernels::depthwise`].
    Depthwise(crate::kernels::depthwise::DepthwiseParams<'a>),
    /// See [`crate::kernels::pointwise`].
    Pointwise(crate::kernels::pointwise::PointwiseParams<'a>),
    /// See [`crate::kernels::pool::max_pool`].
    MaxPool(crate::kernels::pool::MaxPoolParams),
    /// See [`crate::kernels::pool::avg_pool`].
    AvgPool(crate::kernels::pool::AvgPoolParams),
    /// See [`crate::kernels::dense`].
    Dense(crate::kernels::dense::DenseParams<'a>),
}

impl Step<'_> {
    /// Short op name for reports (the firmware's per-step times, the serial link's profile).
    pub fn op_name(&self) -> &'static str {
        match self {
            Step::Conv2d(_) => "conv2d",
            Step::Depthwise(_) => "depthwise",
            Step::Pointwise(_) => "pointwise",
            Step::MaxPool(_) => "maxpool",
            Step::AvgPool(_) => "gavgpool",
            Step::Dense(_) => "dense",
        }
    }

    /// Scratch bytes the step's kernel needs beside its input and output: im2col columns
    /// and int16 column copies for convolutions, the copies for pointwise; none otherwise.
    pub fn scratch_len(&self) -> usize {
        match self {
            Step::Conv2d(p) => p.scratch_len(),
            Step::Pointwise(p) => p.scratch_len(),
            _ => 0,
        }
    }
}

/// Per-layer facts of a parsed model.
#[derive(Clone, Copy, Debug)]
pub struct StepInfo<'a> {
    /// Kernel parameters.
    pub step: Step<'a>,
    /// Input shape.
    pub input: Shape,
    /// Output shape.
    pub output: Shape,
    /// Output zero point.
    pub output_zp: i8,
    /// Multiply-accumulates.
    pub macs: u64,
}

/// A parsed, fully validated model, borrowing its weights from the blob.
#[derive(Clone, Debug)]
pub struct Model<'a> {
    body: ModelBody<'a>,
    steps: heapless::Vec<StepInfo<'a>, MAX_LAYERS>,
    activations_len: usize,
    scratch_len: usize,
}

impl<'a> Model<'a> {
    /// Parses and validates a whole blob (header, CRC, body, every layer).
    pub fn parse(blob: &'a [u8]) -> Result<Self, ModelError> {
        let header = Header::parse(blob)?;
        let body = header.body(blob)?;
        let (body, rest): (ModelBody<'a>, &[u8]) = if header.version == 1 {
            let (v1, rest): (BodyV1<'a>, &[u8]) =
                postcard::take_from_bytes(body).map_err(|_| ModelError::Decode)?;
            (v1.into(), rest)
        } else {
            postcard::take_from_bytes(body).map_err(|_| ModelError::Decode)?
        };
        if !rest.is_empty() {
            return Err(ModelError::TrailingBytes);
        }
        Self::from_body(body)
    }

    /// Validates a decoded body: resolves each layer against its input shape and zero point.
    pub fn from_body(body: ModelBody<'a>) -> Result<Self, ModelError> {
        use crate::kernels::{conv2d, dense, depthwise, pointwise, pool};
        if body.layers.is_empty() {
            return Err(ModelError::NoLayers);
        }
        labels::check(&body.labels).map_err(ModelError::Labels)?;
        let mut steps = heapless::Vec::new();
        let (mut shape, mut zp) = (body.input, body.input_zp);
        let (mut activations_len, mut scratch_len) = (0usize, 0usize);
        for (index, layer) in body.layers.iter().enumerate() {
            let lerr = |error| ModelError::Layer { index, error };
            let chans = |bytes, n: usize| {
                ChannelParams::parse(bytes, n)
                    .map_err(|error| ModelError::Channels { index, error })
            };
            let (step, out, macs, out_zp) = match *layer {
                Layer::Conv2d {
                    window,
                    out_c,
                    weights,
                    channels,
                    output,
                } => {
                    let p = conv2d::Conv2dParams {
                        input: shape,
                        window,
                        out_c,
                        input_zp: zp,
                        weights,
                        channels: chans(channels, out_c as usize)?,
                        output,
                    };
                    (
                        Step::Conv2d(p),
                        p.output_shape().map_err(lerr)?,
                        p.macs().map_err(lerr)?,
                        output.zero_point,
                    )
                }
                Layer::Depthwise {
                    window,
                    weights,
                    channels,
                    output,
                } => {
                    let p = depthwise::DepthwiseParams {
                        input: shape,
                        window,
                        input_zp: zp,
                        weights,
                        channels: chans(channels, shape.c as usize)?,
                        output,
                    };
                    (
                        Step::Depthwise(p),
                        p.output_shape().map_err(lerr)?,
                        p.macs().map_err(lerr)?,
                        output.zero_point,
                    )
                }
                Layer::Pointwise {
                    out_c,
                    weights,
                    channels,
                    output,
                } => {
                    let p = pointwise::PointwiseParams {
                        input: shape,
                        out_c,
                        input_zp: zp,
                        weights,
                        channels: chans(channels, out_c as usize)?,
                        output,
                    };
                    (
                        Step::Pointwise(p),
                        p.output_shape().map_err(lerr)?,
                        p.macs().map_err(lerr)?,
                        output.zero_point,
                    )
                }
                Layer::MaxPool { window } => {
                    let p = pool::MaxPoolParams {
                        input: shape,
                        window,
                    };
                    (Step::MaxPool(p), p.output_shape().map_err(lerr)?, 0, zp)
                }
                Layer::GlobalAvgPool { requant, output } => {
                    let p =
                        pool::AvgPoolParams::global(shape, zp, requant, output).map_err(lerr)?;
                    (
                        Step::AvgPool(p),
                        p.output_shape().map_err(lerr)?,
                        shape.len() as u64,
                        output.zero_point,
                    )
                }
                Layer::Dense {
                    out_len,
                    weights,
                    channels,
                    output,
                } => {
                    let input_len =
                        u32::try_from(shape.len()).map_err(|_| lerr(KernelError::BadWindow))?;
                    let p = dense::DenseParams {
                        input_len,
                        out_len,
                        input_zp: zp,
                        weights,
                        channels: chans(channels, out_len as usize)?,
                        output,
                    };
                    p.output_len().map_err(lerr)?;
                    (
                        Step::Dense(p),
                        Shape::new(1, 1, out_len),
                        p.macs().map_err(lerr)?,
                        output.zero_point,
                    )
                }
            };
            // Worst case |Σ (x - zp) · w| + |bias| must fit the i32 accumulator.
            let (taps, bias) = match &step {
                Step::Conv2d(p) => (
                    p.window.kh as u64 * p.window.kw as u64 * shape.c as u64,
                    p.channels.max_abs_bias(),
                ),
                Step::Depthwise(p) => (
                    p.window.kh as u64 * p.window.kw as u64,
                    p.channels.max_abs_bias(),
                ),
                Step::Pointwise(p) => (shape.c as u64, p.channels.max_abs_bias()),
                Step::Dense(p) => (p.input_len as u64, p.channels.max_abs_bias()),
                Step::AvgPool(p) => (p.window.kh as u64 * p.window.kw as u64, 0),
                Step::MaxPool(_) => (0, 0),
            };
            if bias as u64 + taps * 255 * 128 > i32::MAX as u64 {
                return Err(ModelError::Accumulator { index });
            }
            // Layer 0 reads the caller's input; later layers read the previous output, which
            // sits at the opposite end of the arena from the one they write.
            let need = if index == 0 {
                out.len()
            } else {
                shape.len() + out.len()
            };
            activations_len = activations_len.max(need);
            scratch_len = scratch_len.max(step.scratch_len());
            // `layers` and `steps` have the same capacity, so this never fails.
            let _ = steps.push(StepInfo {
                step,
                input: shape,
                output: out,
                output_zp: out_zp,
                macs,
            });
            (shape, zp) = (out, out_zp);
        }
        if shape.len() != body.labels.len() {
            return Err(ModelError::OutputShape {
                got: shape.len(),
                labels: body.labels.len(),
            });
        }
        Ok(Self {
            body,
            steps,
            activations_len,
            scratch_len,
        })
    }

    /// The decoded body.
    pub fn body(&self) -> &ModelBody<'a> {
        &self.body
    }

    /// The class names, in output order: one per logit.
    pub fn labels(&self) -> &[&'a str] {
        &self.body.labels
    }

    /// The resolved layers.
    pub fn steps(&self) -> &[StepInfo<'a>] {
        &self.steps
    }

    /// Bytes of arena [`crate::Engine::run`] needs for this model: the activations
    /// ([`Model::activations_len`]) followed by the kernels' scratch ([`Model::scratch_len`]).
    pub fn arena_len(&self) -> usize {
        self.activations_len + self.scratch_len
    }

    /// Arena bytes for the layers' inputs and outputs: `max(out_0, max_i(in_i + out_i))`.
    pub fn activations_len(&self) -> usize {
        self.activations_len
    }

    /// Arena bytes for kernel scratch (im2col columns), the most any one layer needs.
    pub fn scratch_len(&self) -> usize {
        self.scratch_len
    }

    /// Total multiply-accumulates per inference.
    pub fn macs(&self) -> u64 {
        self.steps.iter().map(|s| s.macs).sum()
    }

    /// Total bytes of int8 weights.
    pub fn weight_bytes(&self) -> usize {
        self.body.layers.iter().map(Layer::weight_bytes).sum()
    }

    /// Zero point of the logits.
    pub fn output_zero_point(&self) -> i8 {
        self.steps
            .last()
            .map_or(self.body.input_zp, |s| s.output_zp)
    }
}

/// Serializes a body into a complete blob (host side).
#[cfg(feature = "std")]
pub fn write_blob(body: &ModelBody) -> Result<std::vec::Vec<u8>, ModelError> {
    let bytes = postcard::to_allocvec(body).map_err(|_| ModelError::Decode)?;
    let header = Header::for_body(&bytes)?;
    let mut out = std::vec::Vec::with_capacity(HEADER_LEN + bytes.len());
    out.extend_from_slice(&header.to_bytes());
    out.extend_from_slice(&bytes);
    Ok(out)
}
