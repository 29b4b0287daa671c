//! The default bodies of the longer operations: Burn's own operations, so any backend
//! computes the same values, and the reference the kernels are tested against.

use crate::{BatchNormReluGrads, BatchNormReluTrain};
use burn::backend::Backend;
use burn::backend::tensor::FloatTensor;
use burn::tensor::IntDType;

pub(crate) fn batch_norm_relu_train<B: Backend>(
    x: FloatTensor<B>,
    gamma: FloatTensor<B>,
    beta: FloatTensor<B>,
    epsilon: f64,
) -> BatchNormReluTrain<B> {
    let r = B::batch_norm_train(x, gamma, beta, epsilon);
    BatchNormReluTrain {
        output: B::relu(r.output),
        mean: r.mean,
        variance: r.variance,
    }
}

pub(crate) fn batch_norm_relu_train_backward<B: Backend>(
    x: FloatTensor<B>,
    gamma: FloatTensor<B>,
    beta: FloatTensor<B>,
    mean: FloatTensor<B>,
    variance: FloatTensor<B>,
    epsilon: f64,
    output_grad: FloatTensor<B>,
) -> BatchNormReluGrads<B> {
    let y = B::relu(B::batch_norm(
        x.clone(),
        gamma.clone(),
        beta,
        mean.clone(),
        variance.clone(),
        epsilon,
    ));
    let g = B::relu_backward(y, output_grad);
    let r = B::batch_norm_train_backward(x, gamma, mean, variance, epsilon, g);
    BatchNormReluGrads {
        x: r.x_grad,
        gamma: r.gamma_grad,
        beta: r.beta_grad,
    }
}

pub(crate) fn max_pool2x2_train_backward<B: Backend>(
    x: FloatTensor<B>,
    output_grad: FloatTensor<B>,
) -> FloatTensor<B> {
    let (kernel, stride, padding, dilation) = ([2, 2], [2, 2], [0, 0], [1, 1]);
    let indices = B::max_pool2d_with_indices(
        x.clone(),
        kernel,
        stride,
        padding,
        dilation,
        false,
        IntDType::I64,
    )
    .indices;
    B::max_pool2d_with_indices_backward(
        x,
        kernel,
        stride,
        padding,
        dilation,
        false,
        output_grad,
        indices,
    )
    .x_grad
}
