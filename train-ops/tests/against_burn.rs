//! Each fast operation against Burn's own on the same Flex autodiff device: values and every
//! gradient, on random shapes (batch 1, odd sizes, strides, padding, 1x1 and depthwise).

use burn::backend::ops::ConvOptions;
use burn::nn::pool::MaxPool2dConfig;
use burn::nn::{BatchNorm, BatchNormConfig, DropoutConfig};
use burn::prelude::*;
use burn::tensor::{Gradients, TensorData};
use emoedge_train_ops as ops;
use proptest::prelude::*;

fn device() -> Device {
    Device::flex().autodiff()
}

/// Deterministic values in [-1, 1) from a seed (xorshift), shifted by `offset`.
fn values(seed: u64, len: usize, offset: f32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0 + offset
        })
        .collect()
}

fn tensor<const D: usize>(seed: u64, dims: [usize; D], offset: f32) -> Tensor<D> {
    let n = dims.iter().product();
    Tensor::from_data(TensorData::new(values(seed, n, offset), dims), &device()).require_grad()
}

/// The gradients of `Σ y · r`, with `r` deterministic values from `seed`: each output gets
/// a gradient of its own, so a backward that mixes outputs up shows.
fn weighted_backward(y: &Tensor<4>, seed: u64) -> Gradients {
    let r = Tensor::from_data(
        TensorData::new(values(seed, y.shape().num_elements(), 0.0), y.dims()),
        &device(),
    );
    (y.clone() * r).sum().backward()
}

fn vec_of<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().expect("f32 data")
}

/// Every value of `got` within `tol · (1 + |want|)` of `want`.
fn assert_close(what: &str, got: &[f32], want: &[f32], tol: f32) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= tol * (1.0 + w.abs()),
            "{what}[{i}]: got {g}, Burn gives {w}"
        );
    }
}

#[derive(Clone, Debug)]
struct Conv {
    n: usize,
    cin: usize,
    cout: usize,
    h: usize,
    w: usize,
    k: [usize; 2],
    stride: [usize; 2],
    pad: [usize; 2],
    depthwise: bool,
    bias: bool,
    seed: u64,
}

fn conv_case() -> impl Strategy<Value = Conv> {
    (
        (1usize..4, 1usize..6, 1usize..6, 1usize..11, 1usize..11),
        (
            1usize..4,
            1usize..4,
            1usize..3,
            1usize..3,
            0usize..3,
            0usize..3,
        ),
        (any::<bool>(), any::<bool>(), any::<u64>()),
    )
        .prop_filter_map(
            "the kernel fits the padded input",
            |((n, cin, cout, h, w), (kh, kw, sh, sw, ph, pw), (depthwise, bias, seed))| {
                let cout = if depthwise { cin } else { cout };
                (h + 2 * ph >= kh && w + 2 * pw >= kw).then_some(Conv {
                    n,
                    cin,
                    cout,
                    h,
                    w,
                    k: [kh, kw],
                    stride: [sh, sw],
                    pad: [ph, pw],
                    depthwise,
                    bias,
                    seed,
                })
            },
        )
}

fn check_conv(c: &Conv) {
    let groups = if c.depthwise { c.cin } else { 1 };
    let options = ConvOptions::new(c.stride, c.pad, [1, 1], groups);
    let run = |fast: bool| {
        let x = tensor(c.seed, [c.n, c.cin, c.h, c.w], 0.0);
        let w = tensor(c.seed ^ 1, [c.cout, c.cin / groups, c.k[0], c.k[1]], 0.0);
        let b = c.bias.then(|| tensor(c.seed ^ 2, [c.cout], 0.0));
        let y = if fast {
            ops::conv2d(x.clone(), w.clone(), b.clone(), options.clone())
        } else {
            burn::tensor::module::conv2d(x.clone(), w.clone(), b.clone(), options.clone())
        };
        let grads = weighted_backward(&y, c.seed ^ 3);
        let grad = |t: &Tensor<4>| vec_of(t.grad(&grads).expect("a gradient"));
        (
            vec_of(y),
            grad(&x),
            grad(&w),
            b.map(|b| vec_of(b.grad(&grads).expect("a gradient"))),
        )
    };
    let (y, dx, dw, db) = run(true);
    let (y0, dx0, dw0, db0) = run(false);
    assert_close("output", &y, &y0, 1e-5);
    assert_close("input gradient", &dx, &dx0, 1e-5);
    assert_close("weight gradient", &dw, &dw0, 1e-4);
    if let (Some(db), Some(db0)) = (db, db0) {
        assert_close("bias gradient", &db, &db0, 1e-4);
    }
}

#[derive(Clone, Debug)]
struct Norm {
    dims: [usize; 4],
    offset: f32,
    seed: u64,
}

fn norm_case() -> impl Strategy<Value = Norm> {
    (
        (1usize..5, 1usize..7, 1usize..9, 1usize..9),
        prop_oneof![Just(0.0f32), Just(3.0), Just(-20.0)],
        any::<u64>(),
    )
        .prop_filter_map(
            "more than one value per channel",
            |((n, c, h, w), offset, seed)| {
                (n * h * w > 1).then_some(Norm {
                    dims: [n, c, h, w],
                    offset,
                    seed,
                })
            },
        )
}

fn check_norm(c: &Norm) {
    let [_, ch, _, _] = c.dims;
    let run = |fast: bool| {
        let x = tensor(c.seed, c.dims, c.offset);
        let gamma = tensor(c.seed ^ 1, [ch], 1.0);
        let beta = tensor(c.seed ^ 2, [ch], 0.0);
        let (y, mean, var) = if fast {
            ops::batch_norm_relu_train(x.clone(), gamma.clone(), beta.clone(), 1e-5)
        } else {
            let r = burn::tensor::module::batch_norm_train(
                x.clone(),
                gamma.clone(),
                beta.clone(),
                1e-5,
            );
            (burn::tensor::activation::relu(r.output), r.mean, r.variance)
        };
        let grads = weighted_backward(&y, c.seed ^ 3);
        (
            vec_of(y),
            vec_of(mean),
            vec_of(var),
            vec_of(x.grad(&grads).expect("x gradient")),
            vec_of(gamma.grad(&grads).expect("gamma gradient")),
            vec_of(beta.grad(&grads).expect("beta gradient")),
        )
    };
    let fast = run(true);
    let burn = run(false);
    assert_close("output", &fast.0, &burn.0, 1e-4);
    assert_close("mean", &fast.1, &burn.1, 1e-5);
    assert_close("variance", &fast.2, &burn.2, 1e-4);
    assert_close("input gradient", &fast.3, &burn.3, 2e-3);
    assert_close("gamma gradient", &fast.4, &burn.4, 1e-3);
    assert_close("beta gradient", &fast.5, &burn.5, 1e-4);
}

#[derive(Clone, Debug)]
struct Pool {
    dims: [usize; 4],
    /// Coarse values after a ReLU: most windows hold ties, many all zeros.
    ties: bool,
    seed: u64,
}

fn pool_case() -> impl Strategy<Value = Pool> {
    (
        (1usize..4, 1usize..5, 2usize..12, 2usize..12),
        any::<bool>(),
        any::<u64>(),
    )
        .prop_map(|((n, c, h, w), ties, seed)| Pool {
            dims: [n, c, h, w],
            ties,
            seed,
        })
}

/// The output and the input gradient equal Burn's exactly: the same maxima, and each
/// gradient at the same winner of its window.
fn check_pool(c: &Pool) {
    let layer = MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init();
    let run = |fast: bool| {
        let mut v = values(c.seed, c.dims.iter().product(), 0.0);
        if c.ties {
            v.iter_mut()
                .for_each(|x| *x = (*x * 2.0).round().max(0.0) / 2.0);
        }
        let x = Tensor::<4>::from_data(TensorData::new(v, c.dims), &device()).require_grad();
        let y = if fast {
            ops::max_pool2d_layer(&layer, x.clone())
        } else {
            layer.forward(x.clone())
        };
        let grads = weighted_backward(&y, c.seed ^ 3);
        (vec_of(y), vec_of(x.grad(&grads).expect("x gradient")))
    };
    let (y, dx) = run(true);
    let (y0, dx0) = run(false);
    assert_eq!(y, y0, "output");
    assert_eq!(dx, dx0, "input gradient");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn max_pooling_matches_burn(c in pool_case()) {
        check_pool(&c);
    }

    #[test]
    fn convolution_matches_burn(c in conv_case()) {
        check_conv(&c);
    }

    #[test]
    fn batch_norm_relu_matches_burn(c in norm_case()) {
        check_norm(&c);
    }
}

#[test]
fn the_shapes_our_networks_train_with_match_burn() {
    for (cin, cout, h, k, s, depthwise) in [
        (1, 16, 48, 3, 1, false),
        (16, 32, 48, 3, 2, false),
        (64, 64, 12, 3, 1, true),
        (64, 128, 12, 1, 1, false),
    ] {
        check_conv(&Conv {
            n: 3,
            cin,
            cout,
            h,
            w: h,
            k: [k, k],
            stride: [s, s],
            pad: [k / 2, k / 2],
            depthwise,
            bias: false,
            seed: 7,
        });
    }
    check_norm(&Norm {
        dims: [4, 16, 48, 48],
        offset: 0.5,
        seed: 11,
    });
    for (dims, ties) in [([3, 64, 44, 44], true), ([3, 128, 8, 8], false)] {
        check_pool(&Pool {
            dims,
            ties,
            seed: 5,
        });
    }
}

/// The running statistics move exactly as `BatchNorm::forward` moves them, and evaluation
/// (no autodiff) takes Burn's path unchanged.
#[test]
fn running_statistics_follow_batch_norm() {
    let bn_fast: BatchNorm = BatchNormConfig::new(5).init(&device());
    let bn_burn = bn_fast.clone();
    for step in 0..3u64 {
        let x = tensor(step, [4, 5, 6, 7], 2.0);
        let fast = ops::batch_norm_relu(&bn_fast, x.clone());
        let burn = burn::tensor::activation::relu(bn_burn.forward(x));
        assert_close("output", &vec_of(fast), &vec_of(burn), 1e-4);
    }
    assert_close(
        "running mean",
        &vec_of(bn_fast.running_mean.value()),
        &vec_of(bn_burn.running_mean.value()),
        1e-5,
    );
    assert_close(
        "running variance",
        &vec_of(bn_fast.running_var.value()),
        &vec_of(bn_burn.running_var.value()),
        1e-5,
    );
    let inference = Device::flex();
    let x = Tensor::<4>::from_data(
        TensorData::new(values(9, 4 * 5 * 6 * 7, 2.0), [4, 5, 6, 7]),
        &inference,
    );
    let (a, b) = (bn_fast.valid(), bn_burn.valid());
    assert_close(
        "inference output",
        &vec_of(ops::batch_norm_relu(&a, x.clone())),
        &vec_of(burn::tensor::activation::relu(b.forward(x))),
        1e-6,
    );
}

/// Dropout in training: Burn's contract (each value kept with probability `1 - p` and scaled
/// by `1 / (1 - p)`, the gradient through the same mask), a seeded device repeating its
/// mask, and no change outside training.
#[test]
fn dropout_keeps_burns_contract() {
    let layer = DropoutConfig::new(0.25).init();
    let dims = [4, 8, 32, 32];
    let n: usize = dims.iter().product();
    let run = |seed: u64| {
        let device = device();
        device.seed(seed);
        let x = Tensor::<4>::from_data(TensorData::new(values(1, n, 2.0), dims), &device)
            .require_grad();
        let y = ops::dropout(&layer, x.clone());
        let r = Tensor::from_data(TensorData::new(values(2, n, 0.0), dims), &device);
        let grads = (y.clone() * r).sum().backward();
        (
            vec_of(x.clone()),
            vec_of(y),
            vec_of(x.grad(&grads).expect("x gradient")),
        )
    };
    let (x, y, dx) = run(3);
    let r = values(2, n, 0.0);
    let kept = y.iter().filter(|&&v| v != 0.0).count() as f64 / n as f64;
    assert!((kept - 0.75).abs() < 0.01, "kept {kept}");
    for i in 0..n {
        // x lies in [1, 3): a dropped value is the only zero.
        let want = if y[i] == 0.0 { 0.0 } else { x[i] / 0.75 };
        assert!(
            (y[i] - want).abs() <= 1e-6 * want.abs(),
            "y[{i}] {} vs {want}",
            y[i]
        );
        let g = if y[i] == 0.0 { 0.0 } else { r[i] / 0.75 };
        assert!((dx[i] - g).abs() <= 1e-6, "dx[{i}] {} vs {g}", dx[i]);
    }
    assert_eq!(run(3).1, y, "the same seed, the same mask");
    assert_ne!(run(4).1, y, "another seed, another mask");
    let eval = layer.valid();
    let x = Tensor::<4>::from_data(TensorData::new(values(1, n, 2.0), dims), &Device::flex());
    assert_eq!(vec_of(ops::dropout(&eval, x.clone())), vec_of(x));
}
