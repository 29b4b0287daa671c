//! Fully connected layer (ONNX `QLinearMatMul` + bias folded into the accumulator).

use super::matmul::{self, MatMulBody};
use super::{ChannelParams, KernelError, check_len};
use crate::quant::OutputQuant;

/// A dense layer over the flattened input (HWC order). Weights are `(out, in)`.
#[derive(Clone, Copy, Debug)]
pub struct DenseParams<'a> {
    /// Input length.
    pub input_len: u32,
    /// Outputs.
    pub out_len: u16,
    /// Input zero point.
    pub input_zp: i8,
    /// Weights as bytes, `(out, in)`.
    pub weights: &'a [u8],
    /// Bias and requantization per output.
    pub channels: ChannelParams<'a>,
    /// Output zero point and fused activation clamp.
    pub output: OutputQuant,
}

impl DenseParams<'_> {
    /// Checks weights and channel params; returns the output length.
    pub fn output_len(&self) -> Result<usize, KernelError> {
        let wlen = self.out_len as usize * self.input_len as usize;
        check_len(wlen, self.weights.len(), |expected, got| {
            KernelError::WeightsLen { expected, got }
        })?;
        check_len(
            self.out_len as usize,
            self.channels.len(),
            |expected, got| KernelError::ChannelsLen { expected, got },
        )?;
        if !self.output.is_valid() {
            return Err(KernelError::BadClamp);
        }
        Ok(self.out_len as usize)
    }

    /// Multiply-accumulates of one run.
    pub fn macs(&self) -> Result<u64, KernelError> {
        Ok(self.output_len()? as u64 * self.input_len as u64)
    }
}

/// Runs the dense layer: one contiguous dot product per output.
pub fn dense(p: &DenseParams, input: &[i8], output: &mut [i8]) -> Result<(), KernelError> {
    dense_with::<matmul::Native>(p, input, output)
}

/// [`dense`] with matrix-product body `B`'s dot product.
pub(crate) fn dense_with<B: MatMulBody>(
    p: &DenseParams,
    input: &[i8],
    output: &mut [i8],
) -> Result<(), KernelError> {
    let n = p.output_len()?;
    check_len(p.input_len as usize, input.len(), |expected, got| {
        KernelError::InputLen { expected, got }
    })?;
    check_len(n, output.len(), |expected, got| KernelError::OutputLen {
        expected,
        got,
    })?;
    for (o, (y, wrow)) in output
        .iter_mut()
        .zip(p.weights.chunks_exact(input.len().max(1)))
        .enumerate()
    {
        let (bias, rq) = p.channels.get(o);
        *y = p
            .output
            .finish(bias.wrapping_add(B::dot(input, wrow, p.input_zp)), rq);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::reference;
    use crate::kernels::testutil::*;
    use proptest::prelude::*;

    #[test]
    fn fixture_with_zero_point_and_bias() {
        // x real = x - 2 = [1, -1, 3]; w0 = [2, 0, 1] -> 5 + bias 10; w1 = [-1, -1, -1] -> -3.
        let x = [3i8, 1, 5];
        let wts = [2u8, 0, 1, 255, 255, 255];
        let ch = unit_channels(&[10, 0]);
        let p = DenseParams {
            input_len: 3,
            out_len: 2,
            input_zp: 2,
            weights: &wts,
            channels: ChannelParams::parse(&ch, 2).unwrap(),
            output: OutputQuant::linear(-1),
        };
        let mut y = [0i8; 2];
        dense(&p, &x, &mut y).unwrap();
        assert_eq!(y, [14, -4]);
    }

    proptest! {
        #[test]
        fn fast_matches_reference((n, m, zp, w, ch, out, x) in (1u32..300, 1u16..10).prop_flat_map(|(n, m)|
            (Just(n), Just(m), any::<i8>(), bytes(n as usize * m as usize), channels(m as usize), output_quant(), acts(n as usize)))) {
            let p = DenseParams { input_len: n, out_len: m, input_zp: zp, weights: &w, channels: ChannelParams::parse(&ch, m as usize).unwrap(), output: out };
            let (mut a, mut b) = (vec![0i8; m as usize], vec![0i8; m as usize]);
            dense(&p, &x, &mut a).unwrap();
            reference::dense(&p, &x, &mut b).unwrap();
            prop_assert_eq!(a, b);
        }
    }
}
