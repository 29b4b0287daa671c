//! Fast CPU training operations for Burn's Flex backend, as a Burn backend extension.
//!
//! Burn's CPU backend (Flex) trains our networks at a third of PyTorch's speed on the same
//! cores, and most of the gap is in places its training path takes through generic code:
//! the dense convolution's weight gradient (a convolution of two transposed views, copied
//! in full first), the depthwise convolution's gradients (a loop of one-channel
//! convolutions and slice assignments), BatchNorm in training (a composite of two
//! transposed copies and a dozen full passes), max pooling (general 3-D code keeping an
//! `i64` index per output) and dropout (a Bernoulli tensor drawn one value at a time). This
//! crate replaces those, and only those, with kernels on Burn's own contiguous NCHW layout
//! ([`kernels`]), behind the extension trait [`TrainOps`]:
//!
//! - implemented for `Flex` with the kernels (other dtypes, dilations and group counts fall
//!   back to Burn's own operations);
//! - implemented for `Autodiff<B>` with hand-written backward steps that call the kernels;
//! - reached from [`conv2d`], [`batch_norm_relu`], [`max_pool2d_layer`] and [`dropout`],
//!   which take the fast path on a Flex device and Burn's standard operations on any other
//!   (a GPU), so a model written against them runs everywhere and trains fast on the CPU.
//!
//! Why an extension and not a patched `burn-flex`: it builds against the released crates,
//! touches no Burn source, and the kernels sit in one module an upstream change can lift
//! as it is (`docs/training-kernels.md`).

pub mod kernels;

mod autodiff;
mod fallback;
mod flex;

use burn::backend::ops::ConvOptions;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Dispatch, DispatchDevice, ExtensionType, backend_extension};
use burn::nn::conv::Conv2d;
use burn::nn::pool::MaxPool2d;
use burn::nn::{BatchNorm, Dropout, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::Distribution;
use std::sync::atomic::{AtomicBool, Ordering};

/// What [`TrainOps::batch_norm_relu_train`] returns: the output and the batch statistics.
#[derive(ExtensionType)]
pub struct BatchNormReluTrain<B: Backend> {
    /// `relu(batch_norm(x))`, the shape of `x`.
    pub output: FloatTensor<B>,
    /// The batch mean per channel, `[channels]`.
    pub mean: FloatTensor<B>,
    /// The biased batch variance per channel, `[channels]`.
    pub variance: FloatTensor<B>,
}

/// The gradients of [`TrainOps::batch_norm_relu_train`] for its three differentiable inputs.
#[derive(ExtensionType)]
pub struct BatchNormReluGrads<B: Backend> {
    /// Gradient for the input.
    pub x: FloatTensor<B>,
    /// Gradient for the scale.
    pub gamma: FloatTensor<B>,
    /// Gradient for the shift.
    pub beta: FloatTensor<B>,
}

/// The training operations. Every method has a default body of Burn operations, so a backend
/// that implements nothing still computes the right values; `Flex` overrides them with
/// [`kernels`], `Autodiff<B>` overrides the two forward operations with backward steps that
/// call `B`'s gradient methods.
#[backend_extension(Flex, Autodiff)]
pub trait TrainOps: Backend {
    /// A 2-D convolution without bias (add a bias after it), differentiated by
    /// [`TrainOps::conv2d_train_input_grad`] and [`TrainOps::conv2d_train_weight_grad`].
    fn conv2d_train(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        Self::conv2d(x, weight, None, options)
    }

    /// Gradient of [`TrainOps::conv2d_train`] for its input.
    fn conv2d_train_input_grad(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        output_grad: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        Self::conv2d_x_backward(x, weight, output_grad, options)
    }

    /// Gradient of [`TrainOps::conv2d_train`] for its weight.
    fn conv2d_train_weight_grad(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        output_grad: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        Self::conv2d_weight_backward(x, weight, output_grad, options)
    }

    /// BatchNorm with the batch's own statistics, then ReLU, as one operation.
    fn batch_norm_relu_train(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> BatchNormReluTrain<Self> {
        fallback::batch_norm_relu_train::<Self>(x, gamma, beta, epsilon)
    }

    /// Gradients of [`TrainOps::batch_norm_relu_train`], given the statistics it returned.
    #[allow(clippy::too_many_arguments)]
    fn batch_norm_relu_train_backward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        variance: FloatTensor<Self>,
        epsilon: f64,
        output_grad: FloatTensor<Self>,
    ) -> BatchNormReluGrads<Self> {
        fallback::batch_norm_relu_train_backward::<Self>(
            x,
            gamma,
            beta,
            mean,
            variance,
            epsilon,
            output_grad,
        )
    }

    /// 2x2 max pooling with stride 2, no padding (an odd last row or column is dropped),
    /// differentiated by [`TrainOps::max_pool2x2_train_backward`].
    fn max_pool2x2_train(x: FloatTensor<Self>) -> FloatTensor<Self> {
        Self::max_pool2d(x, [2, 2], [2, 2], [0, 0], [1, 1], false)
    }

    /// Gradient of [`TrainOps::max_pool2x2_train`] for its input: each output's gradient to
    /// its window's largest value (the first in row order on a tie).
    fn max_pool2x2_train_backward(
        x: FloatTensor<Self>,
        output_grad: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        fallback::max_pool2x2_train_backward::<Self>(x, output_grad)
    }
}

static ENABLED: AtomicBool = AtomicBool::new(true);

/// Turns the fast operations on or off for the whole process (on by default). Off, every
/// function here takes Burn's standard operations: how benchmarks measure what the kernels
/// gain, and a way out should a kernel ever be suspected.
pub fn set_enabled(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

/// Whether the fast operations are on ([`set_enabled`]).
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Whether the fast operations apply on `device`: they are on and it runs on Flex (with or
/// without autodiff), where [`TrainOps`] is implemented. Anything else takes Burn's
/// standard operations.
pub fn applies_to(device: &Device) -> bool {
    enabled()
        && matches!(
            device.clone().without_autodiff().as_dispatch(),
            DispatchDevice::Flex(_)
        )
}

/// A 2-D convolution, `burn::tensor::module::conv2d`'s contract, with the fast gradients on a
/// Flex device.
pub fn conv2d(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    options: ConvOptions<2>,
) -> Tensor<4> {
    if !applies_to(&x.device()) {
        return burn::tensor::module::conv2d(x, weight, bias, options);
    }
    let y = Tensor::<4>::from_dispatch(Dispatch::conv2d_train(
        x.into_dispatch(),
        weight.into_dispatch(),
        options,
    ));
    match bias {
        Some(b) => {
            let [c] = b.dims();
            y + b.reshape([1, c, 1, 1])
        }
        None => y,
    }
}

/// `relu(bn.forward(x))`: in training (an autodiff device and a trainable layer, Burn's own
/// rule) one fused operation on Flex that also updates the running statistics exactly as
/// `BatchNorm::forward` does; otherwise `BatchNorm::forward` and `relu`.
pub fn batch_norm_relu(bn: &BatchNorm, x: Tensor<4>) -> Tensor<4> {
    let device = x.device();
    if !(applies_to(&device) && device.is_autodiff() && bn.training.is_enabled()) {
        return burn::tensor::activation::relu(bn.forward(x));
    }
    let (output, mean, variance) =
        batch_norm_relu_train(x, bn.gamma.val(), bn.beta.val(), bn.epsilon);
    let (mean, variance) = (mean.detach(), variance.detach());
    let m = bn.momentum;
    let running_mean = bn
        .running_mean
        .value_sync()
        .to_device(&device)
        .mul_scalar(1.0 - m)
        .add(mean.mul_scalar(m));
    let running_var = bn
        .running_var
        .value_sync()
        .to_device(&device)
        .mul_scalar(1.0 - m)
        .add(variance.mul_scalar(m));
    bn.running_mean.update(running_mean.detach());
    bn.running_var.update(running_var.detach());
    output
}

/// `relu(batch_norm(x))` with the batch's own statistics (one fused operation where
/// [`applies_to`] the device, Burn's operations elsewhere): the output, the
/// batch mean and the biased batch variance (`[channels]`), as Burn's
/// `burn::tensor::module::batch_norm_train` returns them. Differentiable in `x`, `gamma` and
/// `beta`.
pub fn batch_norm_relu_train(
    x: Tensor<4>,
    gamma: Tensor<1>,
    beta: Tensor<1>,
    epsilon: f64,
) -> (Tensor<4>, Tensor<1>, Tensor<1>) {
    if !applies_to(&x.device()) {
        let r = burn::tensor::module::batch_norm_train(x, gamma, beta, epsilon);
        return (burn::tensor::activation::relu(r.output), r.mean, r.variance);
    }
    let r = Dispatch::batch_norm_relu_train(
        x.into_dispatch(),
        gamma.into_dispatch(),
        beta.into_dispatch(),
        epsilon,
    );
    (
        Tensor::from_dispatch(r.output),
        Tensor::from_dispatch(r.mean),
        Tensor::from_dispatch(r.variance),
    )
}

/// `layer.forward(x)` for a Burn `Conv2d` layer, through [`conv2d`] (`Same` padding, whose
/// sides depend on the input size, through `layer.forward`).
pub fn conv2d_layer(layer: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    let ((top, bottom), (left, right)) = match layer.padding {
        PaddingConfig2d::Valid => ((0, 0), (0, 0)),
        PaddingConfig2d::Explicit(top, left, bottom, right) => ((top, bottom), (left, right)),
        PaddingConfig2d::Same => return layer.forward(x),
    };
    let options = ConvOptions::new_with_padding(
        layer.stride,
        [(top, bottom), (left, right)],
        layer.dilation,
        layer.groups,
    );
    conv2d(
        x,
        layer.weight.val(),
        layer.bias.as_ref().map(|b| b.val()),
        options,
    )
}

/// `layer.forward(x)` for a Burn `MaxPool2d` layer; a 2x2 pool with stride 2, no padding and
/// no dilation (what our networks use) takes the fast operation where [`applies_to`] the
/// device.
pub fn max_pool2d_layer(layer: &MaxPool2d, x: Tensor<4>) -> Tensor<4> {
    let two_by_two = layer.kernel_size == [2, 2]
        && layer.stride == [2, 2]
        && layer.dilation == [1, 1]
        && matches!(layer.padding, PaddingConfig2d::Valid);
    if !(two_by_two && applies_to(&x.device())) {
        return layer.forward(x);
    }
    Tensor::from_dispatch(Dispatch::max_pool2x2_train(x.into_dispatch()))
}

/// `layer.forward(x)` for a Burn `Dropout` layer. In training on a Flex device the mask is
/// made by [`kernels::dropout::mask`], seeded by two draws from the device's random stream
/// (so a seeded run repeats exactly), and applied as one product; elsewhere, and outside
/// training, `layer.forward`.
pub fn dropout<const D: usize>(layer: &Dropout, x: Tensor<D>) -> Tensor<D> {
    let device = x.device();
    let p = layer.prob;
    if !(applies_to(&device) && device.is_autodiff() && layer.training.is_enabled())
        || p <= 0.0
        || p >= 1.0
    {
        return layer.forward(x);
    }
    let draws = Tensor::<1>::random([2], Distribution::Default, &device)
        .into_data()
        .try_to_vec::<f32>()
        .unwrap_or_default();
    let seed = draws
        .iter()
        .fold(0u64, |s, v| (s << 32) | u64::from(v.to_bits()));
    let shape = x.shape();
    let m = kernels::dropout::mask(seed, shape.num_elements(), 1.0 - p);
    x * Tensor::<D>::from_data(TensorData::new(m, shape), &device)
}
