//! Pointwise (1x1, stride 1, no padding) convolution: a matrix product per pixel.

use super::matmul::{self, MatMulBody};
use super::{ChannelParams, KernelError, check_io, check_len};
use crate::quant::OutputQuant;
use crate::shape::Shape;

/// A 1x1 convolution. Weights are `(out_c, in_c)`.
#[derive(Clone, Copy, Debug)]
pub struct PointwiseParams<'a> {
    /// Input shape (HWC).
    pub input: Shape,
    /// Output channels.
    pub out_c: u16,
    /// Input zero point.
    pub input_zp: i8,
    /// Weights as bytes, `(out_c, in_c)`.
    pub weights: &'a [u8],
    /// Bias and requantization per output channel.
    pub channels: ChannelParams<'a>,
    /// Output zero point and fused activation clamp.
    pub output: OutputQuant,
}

impl PointwiseParams<'_> {
    /// Output shape, after checking weights and channel params.
    pub fn output_shape(&self) -> Result<Shape, KernelError> {
        let wlen = self.out_c as usize * self.input.c as usize;
        check_len(wlen, self.weights.len(), |expected, got| {
            KernelError::WeightsLen { expected, got }
        })?;
        check_len(self.out_c as usize, self.channels.len(), |expected, got| {
            KernelError::ChannelsLen { expected, got }
        })?;
        if !self.output.is_valid() {
            return Err(KernelError::BadClamp);
        }
        Ok(Shape::new(self.input.h, self.input.w, self.out_c))
    }

    /// Multiply-accumulates of one run.
    pub fn macs(&self) -> Result<u64, KernelError> {
        Ok(self.output_shape()?.len() as u64 * self.input.c as u64)
    }
}

impl PointwiseParams<'_> {
    /// Scratch bytes [`pointwise`] needs: the matrix product's own.
    pub fn scratch_len(&self) -> usize {
        matmul::block_scratch_len(self.input.c as usize)
    }
}

/// Runs the 1x1 convolution as a matrix product of pixels by weight rows: each pixel's
/// channels are one contiguous column, so the input is already the matrix
/// (the matrix product's columns).
pub fn pointwise(
    p: &PointwiseParams,
    input: &[i8],
    output: &mut [i8],
    scratch: &mut [i8],
) -> Result<(), KernelError> {
    pointwise_with::<matmul::Native>(p, input, output, scratch)
}

/// [`pointwise`] on matrix-product body `B`.
pub(crate) fn pointwise_with<B: MatMulBody>(
    p: &PointwiseParams,
    input: &[i8],
    output: &mut [i8],
    scratch: &mut [i8],
) -> Result<(), KernelError> {
    let out = p.output_shape()?;
    check_io(p.input, out, input, output)?;
    if scratch.len() < p.scratch_len() {
        return Err(KernelError::ScratchLen {
            needed: p.scratch_len(),
            got: scratch.len(),
        });
    }
    let m = matmul::MatMul {
        weights: p.weights,
        k: p.input.c as usize,
        channels: p.channels,
        output: p.output,
        zp: p.input_zp,
    };
    m.columns::<B>(input, output, scratch);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::reference;
    use crate::kernels::testutil::*;
    use proptest::prelude::*;

    #[test]
    fn fixture_mixes_channels() {
        // Two pixels of 3 channels; out 0 = c0 + c1 + c2 + bias 1, out 1 = c0 - c2.
        let x = [1i8, 2, 3, -4, 5, 6];
        let wts = [1u8, 1, 1, 1, 0, (-1i8) as u8];
        let ch = unit_channels(&[1, 0]);
        let p = PointwiseParams {
            input: Shape::new(1, 2, 3),
            out_c: 2,
            input_zp: 0,
            weights: &wts,
            channels: ChannelParams::parse(&ch, 2).unwrap(),
            output: OutputQuant::linear(0),
        };
        let mut y = [0i8; 4];
        pointwise(&p, &x, &mut y, &mut vec![0; p.scratch_len()]).unwrap();
        assert_eq!(y, [7, -2, 8, -10]);
    }

    #[allow(clippy::type_complexity)] // proptest strategy tuple
    fn case() -> impl Strategy<Value = (Shape, u16, i8, Vec<u8>, Vec<u8>, OutputQuant, Vec<i8>)> {
        (1u16..6, 1u16..6, 1u16..20, 1u16..20).prop_flat_map(|(h, w, c, oc)| {
            let shape = Shape::new(h, w, c);
            (
                Just(shape),
                Just(oc),
                any::<i8>(),
                bytes(oc as usize * c as usize),
                channels(oc as usize),
                output_quant(),
                acts(shape.len()),
            )
        })
    }

    proptest! {
        #[test]
        fn fast_matches_reference((input, out_c, input_zp, weights, ch, output, x) in case()) {
            let p = PointwiseParams { input, out_c, input_zp, weights: &weights, channels: ChannelParams::parse(&ch, out_c as usize).unwrap(), output };
            let n = p.output_shape().unwrap().len();
            let (mut a, mut b) = (vec![0i8; n], vec![0i8; n]);
            pointwise(&p, &x, &mut a, &mut vec![0; p.scratch_len()]).unwrap();
            reference::pointwise(&p, &x, &mut b).unwrap();
            prop_assert_eq!(a, b);
        }
    }
}
