//! Throughput and latency measurements behind `emoedge bench`: medians over repeated
//! measurements, returned as figures for the caller to print.

use crate::data::Dataset;
use crate::model::{Arch, Block, ModelConfig, costs};
use crate::train::config::TrainConfig;
use anyhow::Result;
use burn::optim::{AdamWConfig, GradientsParams};
use burn::prelude::*;
use burn::tensor::TensorData;
use emoedge_runtime::{ModelDir, TractModel, engine_logits};
use std::time::Instant;

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Training steps of one network: forward, cross-entropy, backward and an AdamW step on a
/// fixed batch, the loss read back each step as the training loop does.
#[derive(Clone, Debug)]
pub struct TrainThroughput {
    /// The network.
    pub arch: Arch,
    /// Its parameters.
    pub params: usize,
    /// Its multiply-accumulates per image.
    pub macs: u64,
    /// Images per step.
    pub batch: usize,
    /// Steps measured (after 3 warm-up steps).
    pub steps: usize,
    /// Median seconds per step.
    pub step_s: f64,
}

impl TrainThroughput {
    /// Images per second at the median step.
    pub fn images_per_s(&self) -> f64 {
        self.batch as f64 / self.step_s
    }
}

/// Times `steps` training steps of `model_cfg` at `batch` (after 3 warm-up steps).
pub fn train_throughput(
    model_cfg: ModelConfig,
    batch: usize,
    steps: usize,
) -> Result<TrainThroughput> {
    let arch = model_cfg.arch;
    let device = crate::sys::backend::device().autodiff();
    device.seed(1);
    let cfg = TrainConfig::new(model_cfg, Default::default());
    let mut model = cfg.model.init(&device);
    let mut optim = AdamWConfig::new().init();
    let k = costs(&cfg.model.blocks);
    let x: Vec<f32> = (0..batch * 48 * 48)
        .map(|i| (i % 251) as f32 / 251.0)
        .collect();
    let labels: Vec<i64> = (0..batch as i64).map(|i| i % 7).collect();
    let mut times = Vec::new();
    for step in 0..steps + 3 {
        let t0 = Instant::now();
        let xb = Tensor::<4>::from_data(TensorData::new(x.clone(), [batch, 1, 48, 48]), &device);
        let yb = Tensor::<1, Int>::from_data(TensorData::new(labels.clone(), [batch]), &device);
        let logits = model.forward(xb);
        let loss = burn::nn::loss::CrossEntropyLossConfig::new()
            .init(&device)
            .forward(logits, yb);
        // Read the loss each step, as the training loop does.
        std::hint::black_box(loss.clone().into_scalar::<f32>());
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(1e-3, model, grads);
        if step >= 3 {
            times.push(t0.elapsed().as_secs_f64());
        }
    }
    Ok(TrainThroughput {
        arch,
        params: k.params,
        macs: k.macs,
        batch,
        steps,
        step_s: median(&mut times),
    })
}

/// One convolution block's training cost, milliseconds per batch (medians).
#[derive(Clone, Debug)]
pub struct BlockCost {
    /// Its place among the convolution blocks.
    pub index: usize,
    /// `conv3x3/2`, `depthwise`, `pointwise`.
    pub name: String,
    /// Its output, `CxHxW`.
    pub output: String,
    /// Convolution forward.
    pub conv_ms: f64,
    /// BatchNorm and ReLU forward (one fused operation where there is a BatchNorm).
    pub bn_relu_ms: f64,
    /// Backward of the block.
    pub backward_ms: f64,
}

impl BlockCost {
    /// Forward and backward together.
    pub fn total_ms(&self) -> f64 {
        self.conv_ms + self.bn_relu_ms + self.backward_ms
    }
}

/// Per-block training cost: for each conv block (conv + BatchNorm + ReLU) of the network,
/// its input is made by running the blocks before it; then, `reps` times, the block's
/// forward is timed op by op and its backward (from `sum` of its output, with the input
/// requiring a gradient as inside a network) as a whole.
pub fn profile_train(cfg: ModelConfig, batch: usize, reps: usize) -> Result<Vec<BlockCost>> {
    let device = crate::sys::backend::device().autodiff();
    device.seed(1);
    let model = cfg.init(&device);
    let pool = burn::nn::pool::MaxPool2dConfig::new([2, 2])
        .with_strides([2, 2])
        .init();
    let px: Vec<f32> = (0..batch * 48 * 48)
        .map(|i| (i % 251) as f32 / 251.0)
        .collect();
    let mut x = Tensor::<4>::from_data(TensorData::new(px, [batch, 1, 48, 48]), &device);
    let sync = |d: &Device| d.sync().map_err(|e| anyhow::anyhow!("{e:?}"));
    let mut ci = 0usize;
    let mut rows = Vec::new();
    for b in &cfg.blocks {
        match b {
            Block::Conv { .. } | Block::Depthwise { .. } | Block::Pointwise { .. } => {
                let block = &model.convs[ci];
                let input = x.clone().detach();
                let (mut tc, mut tb, mut tk) = (vec![], vec![], vec![]);
                for _ in 0..reps.max(1) {
                    let a = input.clone().require_grad();
                    sync(&device)?;
                    let t0 = Instant::now();
                    let y = block.conv_forward(a);
                    sync(&device)?;
                    let t1 = Instant::now();
                    let y = block.norm_relu(y);
                    sync(&device)?;
                    let t2 = Instant::now();
                    let g = y.sum().backward();
                    sync(&device)?;
                    std::hint::black_box(g);
                    tc.push((t1 - t0).as_secs_f64());
                    tb.push((t2 - t1).as_secs_f64());
                    tk.push(t2.elapsed().as_secs_f64());
                }
                x = block.forward(input);
                let dims = x.dims();
                let ms = |v: &mut Vec<f64>| median(v) * 1e3;
                let name = match b {
                    Block::Conv { k, stride, .. } => format!("conv{k}x{k}/{stride}"),
                    Block::Depthwise { .. } => "depthwise".into(),
                    _ => "pointwise".into(),
                };
                rows.push(BlockCost {
                    index: ci,
                    name,
                    output: format!("{}x{}x{}", dims[1], dims[2], dims[3]),
                    conv_ms: ms(&mut tc),
                    bn_relu_ms: ms(&mut tb),
                    backward_ms: ms(&mut tk),
                });
                ci += 1;
            }
            Block::MaxPool => x = pool.forward(x),
            _ => {}
        }
    }
    Ok(rows)
}

/// One 48x48 inference, the engine on the blob against tract on the int8 ONNX (one thread
/// each), medians in seconds.
#[derive(Clone, Copy, Debug)]
pub struct InferLatency {
    /// The model's multiply-accumulates per face.
    pub macs: u64,
    /// Images timed.
    pub images: usize,
    /// The engine's median.
    pub engine_s: f64,
    /// tract's median.
    pub tract_s: f64,
}

/// Times both runtimes on each image of `ds`, `reps` times each, after one untimed run.
pub fn infer_latency(dir: &ModelDir, ds: &Dataset, reps: usize) -> Result<InferLatency> {
    let blob = dir.read_blob()?;
    let model = blob.model()?;
    let tract = TractModel::load(
        &dir.onnx(),
        model.body().output_scale,
        model.output_zero_point(),
        model.labels().len(),
    )?;
    let mut arena = vec![0i8; model.arena_len()];
    let (mut te, mut tt) = (Vec::new(), Vec::new());
    for i in 0..ds.len() {
        engine_logits(&model, &mut arena, ds.image(i))?;
        tract.logits(ds.image(i))?;
        for _ in 0..reps {
            let t0 = Instant::now();
            std::hint::black_box(engine_logits(&model, &mut arena, ds.image(i))?);
            te.push(t0.elapsed().as_secs_f64());
            let t0 = Instant::now();
            std::hint::black_box(tract.logits(ds.image(i))?);
            tt.push(t0.elapsed().as_secs_f64());
        }
    }
    Ok(InferLatency {
        macs: model.macs(),
        images: ds.len(),
        engine_s: median(&mut te),
        tract_s: median(&mut tt),
    })
}
