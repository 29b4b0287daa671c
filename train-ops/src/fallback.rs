//! The default bodies of the fused BatchNorm + ReLU operations: Burn's own operations, so any
//! backend computes the same values, and the reference the kernels are tested against.

use crate::{BatchNormReluGrads, BatchNormReluTrain};
use burn::backend::Backend;
use burn::backend::tensor::FloatTensor;

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
