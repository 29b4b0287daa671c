//! [`TrainOps`] on `Autodiff<B>`: the two forward operations with backward steps that call
//! `B`'s gradient methods, following the shape of Burn's own `batch_norm_train` and `conv2d`
//! steps (checkpoint the inputs the backward needs, keep the batch statistics as state).

use crate::{BatchNormReluTrain, TrainOps};
use burn::backend::AutodiffBackend;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::autodiff::{Autodiff, NodeId};
use burn::backend::ops::ConvOptions;
use burn::backend::tensor::FloatTensor;

#[derive(Debug)]
struct Conv2dTrain;

impl<B: TrainOps> Backward<B, 2> for Conv2dTrain {
    type State = (NodeId, NodeId, ConvOptions<2>);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, ck: &mut Checkpointer) {
        let [node_x, node_w] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (x_state, w_state, options) = ops.state;
        let x = ck.retrieve_node_output::<FloatTensor<B>>(x_state);
        let w = ck.retrieve_node_output::<FloatTensor<B>>(w_state);
        if let Some(node) = node_x {
            let g = B::conv2d_train_input_grad(x.clone(), w.clone(), grad.clone(), options.clone());
            grads.register::<B>(node.id, g);
        }
        if let Some(node) = node_w {
            grads.register::<B>(node.id, B::conv2d_train_weight_grad(x, w, grad, options));
        }
    }
}

#[derive(Debug)]
struct BatchNormReluStep;

impl<B: TrainOps> Backward<B, 3> for BatchNormReluStep {
    // The input, gamma and beta are checkpointed; the statistics come along as computed.
    type State = (NodeId, NodeId, NodeId, FloatTensor<B>, FloatTensor<B>, f64);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, ck: &mut Checkpointer) {
        let [node_x, node_gamma, node_beta] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (x_state, gamma_state, beta_state, mean, variance, epsilon) = ops.state;
        let x = ck.retrieve_node_output::<FloatTensor<B>>(x_state);
        let gamma = ck.retrieve_node_output::<FloatTensor<B>>(gamma_state);
        let beta = ck.retrieve_node_output::<FloatTensor<B>>(beta_state);
        let g = B::batch_norm_relu_train_backward(x, gamma, beta, mean, variance, epsilon, grad);
        if let Some(node) = node_x {
            grads.register::<B>(node.id, g.x);
        }
        if let Some(node) = node_gamma {
            grads.register::<B>(node.id, g.gamma);
        }
        if let Some(node) = node_beta {
            grads.register::<B>(node.id, g.beta);
        }
    }
}

#[derive(Debug)]
struct MaxPool2x2;

impl<B: TrainOps> Backward<B, 1> for MaxPool2x2 {
    // The input alone: the backward finds each window's winner in it again.
    type State = NodeId;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, ck: &mut Checkpointer) {
        let [node_x] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let x = ck.retrieve_node_output::<FloatTensor<B>>(ops.state);
        if let Some(node) = node_x {
            grads.register::<B>(node.id, B::max_pool2x2_train_backward(x, grad));
        }
    }
}

impl<B: TrainOps, C: CheckpointStrategy> TrainOps for Autodiff<B, C> {
    fn max_pool2x2_train(x: FloatTensor<Self>) -> FloatTensor<Self> {
        match MaxPool2x2
            .prepare::<C>([x.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let x_state = prep.checkpoint(&x);
                prep.finish(x_state, B::max_pool2x2_train(Self::inner(x)))
            }
            OpsKind::UnTracked(prep) => prep.finish(B::max_pool2x2_train(Self::inner(x))),
        }
    }

    fn conv2d_train(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        match Conv2dTrain
            .prepare::<C>([x.node(), weight.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let x_state = prep.checkpoint(&x);
                let w_state = prep.checkpoint(&weight);
                let y = B::conv2d_train(Self::inner(x), Self::inner(weight), options.clone());
                prep.finish((x_state, w_state, options), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::conv2d_train(
                Self::inner(x),
                Self::inner(weight),
                options,
            )),
        }
    }

    fn batch_norm_relu_train(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> BatchNormReluTrain<Self> {
        match BatchNormReluStep
            .prepare::<C>([x.node(), gamma.node(), beta.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let x_state = prep.checkpoint(&x);
                let gamma_state = prep.checkpoint(&gamma);
                let beta_state = prep.checkpoint(&beta);
                let r = B::batch_norm_relu_train(
                    Self::inner(x),
                    Self::inner(gamma),
                    Self::inner(beta),
                    epsilon,
                );
                let state = (
                    x_state,
                    gamma_state,
                    beta_state,
                    r.mean.clone(),
                    r.variance.clone(),
                    epsilon,
                );
                BatchNormReluTrain {
                    output: prep.finish(state, r.output),
                    mean: Self::from_inner(r.mean),
                    variance: Self::from_inner(r.variance),
                }
            }
            OpsKind::UnTracked(prep) => {
                let r = B::batch_norm_relu_train(
                    Self::inner(x),
                    Self::inner(gamma),
                    Self::inner(beta),
                    epsilon,
                );
                BatchNormReluTrain {
                    output: prep.finish(r.output),
                    mean: Self::from_inner(r.mean),
                    variance: Self::from_inner(r.variance),
                }
            }
        }
    }
}
