//! [`TrainOps`] on Flex: its tensors in and out of the [`kernels`](crate::kernels).
//!
//! A kernel runs on `f32` data with dilation 1; anything else (another dtype, a dilated or
//! grouped-but-not-depthwise convolution) takes Burn's own operation.

use crate::kernels::conv::{self, ConvGeom};
use crate::kernels::pool::{self, Planes};
use crate::kernels::{Nchw, batch_norm};
use crate::{BatchNormReluGrads, BatchNormReluTrain, TrainOps, fallback};
use burn::backend::ops::{ConvOptions, ModuleOps};
use burn::backend::{Flex, TensorMetadata, flex::FlexTensor};
use burn::tensor::TensorData;

/// `t` as a contiguous `f32` slice owner, or `None` for another dtype.
fn contiguous_f32(t: FlexTensor) -> Option<FlexTensor> {
    let t = if t.is_contiguous() {
        t
    } else {
        t.to_contiguous()
    };
    t.as_slice::<f32>().is_some().then_some(t)
}

fn data(t: &FlexTensor) -> &[f32] {
    t.as_slice::<f32>()
        .expect("contiguous_f32 checked the layout and dtype")
}

fn tensor(values: Vec<f32>, shape: Vec<usize>) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape))
}

/// The geometry of a convolution with dilation 1 and output size `out` (`[oh, ow]`), or
/// `None` where the kernels do not apply.
fn conv_geom(
    x: &FlexTensor,
    w: &FlexTensor,
    o: &ConvOptions<2>,
    out: impl FnOnce(&[usize]) -> Option<[usize; 2]>,
) -> Option<ConvGeom> {
    let (xs, ws) = (x.shape(), w.shape());
    if o.dilation != [1, 1] || xs.num_dims() != 4 || ws.num_dims() != 4 {
        return None;
    }
    let [oh, ow] = out(&xs)?;
    Some(ConvGeom {
        n: xs[0],
        cin: xs[1],
        h: xs[2],
        w: xs[3],
        cout: ws[0],
        oh,
        ow,
        kh: ws[2],
        kw: ws[3],
        stride: o.stride,
        pad: o.padding_begin(),
    })
}

/// The geometry of a backward step: the output size is the gradient's.
fn geom(x: &FlexTensor, w: &FlexTensor, dy: &FlexTensor, o: &ConvOptions<2>) -> Option<ConvGeom> {
    let ys = dy.shape();
    conv_geom(x, w, o, |_| (ys.num_dims() == 4).then(|| [ys[2], ys[3]]))
}

/// The geometry of a forward convolution, its output size computed as Burn computes it.
fn forward_geom(x: &FlexTensor, w: &FlexTensor, o: &ConvOptions<2>) -> Option<ConvGeom> {
    let ws = w.shape();
    if ws.num_dims() != 4 {
        return None;
    }
    conv_geom(x, w, o, |xs| {
        let out = |len: usize, k: usize, a: usize| {
            let (b, e) = o.padding[a];
            (len + b + e).checked_sub(k).map(|v| v / o.stride[a] + 1)
        };
        Some([out(xs[2], ws[2], 0)?, out(xs[3], ws[3], 1)?])
    })
}

fn is_depthwise(g: &ConvGeom, o: &ConvOptions<2>) -> bool {
    o.groups == g.cin && g.cout == g.cin
}

/// Runs `kernel(x, w, dy, geometry, depthwise)` on a convolution's backward operands as
/// contiguous `f32` when a kernel covers it (dense, or depthwise), else `None`.
fn conv_grad(
    x: &FlexTensor,
    w: &FlexTensor,
    dy: &FlexTensor,
    o: &ConvOptions<2>,
    kernel: impl FnOnce(&[f32], &[f32], &[f32], &ConvGeom, bool) -> FlexTensor,
) -> Option<FlexTensor> {
    let g = geom(x, w, dy, o)?;
    let depthwise = o.groups != 1 && is_depthwise(&g, o);
    if o.groups != 1 && !depthwise {
        return None;
    }
    let (x, w, dy) = (
        contiguous_f32(x.clone())?,
        contiguous_f32(w.clone())?,
        contiguous_f32(dy.clone())?,
    );
    Some(kernel(data(&x), data(&w), data(&dy), &g, depthwise))
}

impl TrainOps for Flex {
    fn conv2d_train(x: FlexTensor, weight: FlexTensor, options: ConvOptions<2>) -> FlexTensor {
        if let (Some(g), Some(xc), Some(w)) = (
            forward_geom(&x, &weight, &options),
            contiguous_f32(x.clone()),
            contiguous_f32(weight.clone()),
        ) {
            let shape = vec![g.n, g.cout, g.oh, g.ow];
            if options.groups == 1 {
                return tensor(conv::dense_forward(data(&xc), data(&w), &g), shape);
            }
            if is_depthwise(&g, &options)
                && let Some(y) = conv::depthwise_forward(data(&xc), data(&w), &g)
            {
                return tensor(y, shape);
            }
        }
        Flex::conv2d(x, weight, None, options)
    }

    fn conv2d_train_input_grad(
        x: FlexTensor,
        weight: FlexTensor,
        output_grad: FlexTensor,
        options: ConvOptions<2>,
    ) -> FlexTensor {
        let fast = conv_grad(
            &x,
            &weight,
            &output_grad,
            &options,
            |_, w, dy, g, depthwise| {
                let dx = match depthwise {
                    false => conv::dense_input_grad(dy, w, g),
                    true => conv::depthwise_input_grad(dy, w, g),
                };
                tensor(dx, vec![g.n, g.cin, g.h, g.w])
            },
        );
        fast.unwrap_or_else(|| Flex::conv2d_x_backward(x, weight, output_grad, options))
    }

    fn conv2d_train_weight_grad(
        x: FlexTensor,
        weight: FlexTensor,
        output_grad: FlexTensor,
        options: ConvOptions<2>,
    ) -> FlexTensor {
        let fast = conv_grad(
            &x,
            &weight,
            &output_grad,
            &options,
            |x, _, dy, g, depthwise| {
                let (dw, per_group) = match depthwise {
                    false => (conv::dense_weight_grad(x, dy, g), g.cin),
                    true => (conv::depthwise_weight_grad(x, dy, g), 1),
                };
                tensor(dw, vec![g.cout, per_group, g.kh, g.kw])
            },
        );
        fast.unwrap_or_else(|| Flex::conv2d_weight_backward(x, weight, output_grad, options))
    }

    fn batch_norm_relu_train(
        x: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        epsilon: f64,
    ) -> BatchNormReluTrain<Self> {
        let shape = x.shape();
        let (Some(xc), Some(gc), Some(bc)) = (
            contiguous_f32(x.clone()),
            contiguous_f32(gamma.clone()),
            contiguous_f32(beta.clone()),
        ) else {
            return fallback::batch_norm_relu_train::<Flex>(x, gamma, beta, epsilon);
        };
        let d = nchw(&shape.to_vec());
        let (y, mean, var) = batch_norm::forward(data(&xc), d, data(&gc), data(&bc), epsilon);
        BatchNormReluTrain {
            output: tensor(y, shape.to_vec()),
            mean: tensor(mean, vec![d.c]),
            variance: tensor(var, vec![d.c]),
        }
    }

    fn batch_norm_relu_train_backward(
        x: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        mean: FlexTensor,
        variance: FlexTensor,
        epsilon: f64,
        output_grad: FlexTensor,
    ) -> BatchNormReluGrads<Self> {
        let shape = x.shape();
        let all = [&x, &gamma, &beta, &mean, &variance, &output_grad]
            .map(|t| contiguous_f32((*t).clone()));
        let [Some(xc), Some(gc), Some(bc), Some(mc), Some(vc), Some(dy)] = all else {
            return fallback::batch_norm_relu_train_backward::<Flex>(
                x,
                gamma,
                beta,
                mean,
                variance,
                epsilon,
                output_grad,
            );
        };
        let d = nchw(&shape.to_vec());
        let (dx, dgamma, dbeta) = batch_norm::backward(
            data(&xc),
            data(&dy),
            d,
            data(&gc),
            data(&bc),
            data(&mc),
            data(&vc),
            epsilon,
        );
        BatchNormReluGrads {
            x: tensor(dx, shape.to_vec()),
            gamma: tensor(dgamma, vec![d.c]),
            beta: tensor(dbeta, vec![d.c]),
        }
    }

    fn max_pool2x2_train(x: FlexTensor) -> FlexTensor {
        let dims = x.shape().to_vec();
        if let (Some(d), Some(xc)) = (planes(&dims), contiguous_f32(x.clone())) {
            let [oh, ow] = d.pooled();
            let y = pool::max_pool2x2_forward(data(&xc), d);
            return tensor(y, vec![dims[0], dims[1], oh, ow]);
        }
        Flex::max_pool2d(x, [2, 2], [2, 2], [0, 0], [1, 1], false)
    }

    fn max_pool2x2_train_backward(x: FlexTensor, output_grad: FlexTensor) -> FlexTensor {
        let dims = x.shape().to_vec();
        if let (Some(d), Some(xc), Some(dy)) = (
            planes(&dims),
            contiguous_f32(x.clone()),
            contiguous_f32(output_grad.clone()),
        ) {
            return tensor(pool::max_pool2x2_backward(data(&xc), data(&dy), d), dims);
        }
        fallback::max_pool2x2_train_backward::<Flex>(x, output_grad)
    }
}

/// A 4-D tensor's `[n, c, h, w]` as `n · c` planes, or `None` for another rank.
fn planes(dims: &[usize]) -> Option<Planes> {
    let &[n, c, h, w] = dims else { return None };
    Some(Planes {
        planes: n * c,
        h,
        w,
    })
}

/// `[n, c, ...]` as `n`, `c` and the product of the rest.
fn nchw(dims: &[usize]) -> Nchw {
    Nchw {
        n: dims[0],
        c: dims[1],
        spatial: dims[2..].iter().product(),
    }
}
