//! The networks, described by a list of [`Block`]s that training, export and reports all
//! walk the same way. Input: `[batch, 1, 48, 48]`, pixels `p / 255`. Output: one logit per
//! class (the seven emotions unless the data names its own classes).

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{
    BatchNorm, BatchNormConfig, Dropout, DropoutConfig, Linear, LinearConfig, PaddingConfig2d,
};
use burn::prelude::*;
use emoedge_core::labels::EMOTIONS;
use emoedge_core::preprocess::INPUT_SIDE;
use serde::{Deserialize, Serialize};

/// One step of a network. Convolutions pad `k / 2` on every side.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Block {
    /// Dense convolution, ReLU after; BatchNorm between when `bn` (then no conv bias).
    Conv {
        out: usize,
        k: usize,
        stride: usize,
        bn: bool,
        same: bool,
    },
    /// Depthwise 3x3-style convolution + BatchNorm + ReLU.
    Depthwise { k: usize, stride: usize },
    /// 1x1 convolution + BatchNorm + ReLU.
    Pointwise { out: usize },
    /// 2x2 max pool, stride 2.
    MaxPool,
    /// Dropout (training only).
    Dropout { p: f64 },
    /// Global average pool to `[batch, channels]`.
    GlobalAvgPool,
    /// Flatten `[b, c, h, w]` to `[b, c·h·w]` (NCHW order).
    Flatten,
    /// Fully connected; ReLU after unless it is the last block.
    Dense { out: usize },
}

/// Which network.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Arch {
    /// The edge network: fits a Cortex-M4/M7 part as int8.
    Edge,
    /// The edge network with a second 12x12 block and a third 256-wide 6x6 block: more of
    /// the weight and MAC budget spent where activations are small (cheap to train).
    EdgeWide,
    /// The tutorial's Keras CNN (2.3 M weights), the baseline.
    Tutorial,
    /// A VGG-style network (four stages of two BatchNorm 3x3 convolutions, 64 to 512
    /// channels; 7 M weights, 0.47 G MACs): far over every microcontroller limit. It exists
    /// to teach the edge nets (`emoedge train --teacher`): distillation moves a student
    /// toward its teacher, and the edge nets' own ensemble had stopped at 67.09%.
    /// Train it on a GPU (`--features gpu`): it costs 22 times the edge-wide net's MACs,
    /// about 7 minutes of training steps an epoch on two CPU cores.
    Teacher,
    /// The teacher at half its width (32 to 256 channels, dense 256; 1.76 M weights,
    /// 0.12 G MACs): a teacher a 2-core CPU trains in 2.4-2.6 minutes an epoch, so a long
    /// schedule can be split with `--stop-after` and `--resume`. Its convolutions are
    /// plain 3x3 ones where the edge nets' are mostly depthwise, so its errors differ from
    /// theirs, which is what an ensemble of teachers needs.
    TeacherSmall,
}

impl Arch {
    /// The blocks of this architecture, for a model of `classes` classes.
    pub fn blocks(self, classes: usize) -> Vec<Block> {
        use Block::*;
        match self {
            Arch::Edge => vec![
                Conv {
                    out: 16,
                    k: 3,
                    stride: 1,
                    bn: true,
                    same: true,
                },
                Conv {
                    out: 32,
                    k: 3,
                    stride: 2,
                    bn: true,
                    same: true,
                },
                Conv {
                    out: 32,
                    k: 3,
                    stride: 1,
                    bn: true,
                    same: true,
                },
                MaxPool,
                Conv {
                    out: 64,
                    k: 3,
                    stride: 1,
                    bn: true,
                    same: true,
                },
                Depthwise { k: 3, stride: 1 },
                Pointwise { out: 128 },
                MaxPool,
                Depthwise { k: 3, stride: 1 },
                Pointwise { out: 128 },
                Depthwise { k: 3, stride: 1 },
                Pointwise { out: 256 },
                Depthwise { k: 3, stride: 1 },
                Pointwise { out: 256 },
                GlobalAvgPool,
                Dropout { p: 0.3 },
                Dense { out: classes },
            ],
            Arch::EdgeWide => {
                let mut b = Arch::Edge.blocks(classes);
                // after the 12x12 pointwise 128: one more dw + pw 128 at 12x12
                let at = b
                    .iter()
                    .position(|x| matches!(x, Pointwise { out: 128 }))
                    .unwrap_or(0)
                    + 1;
                b.splice(
                    at..at,
                    [Depthwise { k: 3, stride: 1 }, Pointwise { out: 128 }],
                );
                // before the global pool: one more dw + pw 256 at 6x6
                let gap = b
                    .iter()
                    .position(|x| matches!(x, GlobalAvgPool))
                    .unwrap_or(b.len());
                b.splice(
                    gap..gap,
                    [Depthwise { k: 3, stride: 1 }, Pointwise { out: 256 }],
                );
                b
            }
            Arch::Tutorial => vec![
                Conv {
                    out: 32,
                    k: 3,
                    stride: 1,
                    bn: false,
                    same: false,
                },
                Conv {
                    out: 64,
                    k: 3,
                    stride: 1,
                    bn: false,
                    same: false,
                },
                MaxPool,
                Dropout { p: 0.25 },
                Conv {
                    out: 128,
                    k: 3,
                    stride: 1,
                    bn: false,
                    same: false,
                },
                MaxPool,
                Conv {
                    out: 128,
                    k: 3,
                    stride: 1,
                    bn: false,
                    same: false,
                },
                MaxPool,
                Dropout { p: 0.25 },
                Flatten,
                Dense { out: 1024 },
                Dropout { p: 0.5 },
                Dense { out: classes },
            ],
            Arch::Teacher => vgg([64, 128, 256, 512], 512, classes),
            Arch::TeacherSmall => vgg([32, 64, 128, 256], 256, classes),
        }
    }
}

/// A VGG-style network: four stages of two BatchNorm 3x3 convolutions and a 2x2 pool,
/// then two dense layers behind dropout.
fn vgg(widths: [usize; 4], dense: usize, classes: usize) -> Vec<Block> {
    let conv = |out| Block::Conv {
        out,
        k: 3,
        stride: 1,
        bn: true,
        same: true,
    };
    let mut b = Vec::new();
    for out in widths {
        b.extend([conv(out), conv(out), Block::MaxPool]);
    }
    b.extend([
        Block::Flatten,
        Block::Dropout { p: 0.5 },
        Block::Dense { out: dense },
        Block::Dropout { p: 0.5 },
        Block::Dense { out: classes },
    ]);
    b
}

/// Hyper-parameters of the network, saved as `config.json` beside the weights so that the
/// run folder alone rebuilds the model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    /// Architecture name (for reports).
    pub arch: Arch,
    /// The blocks, in order; the last outputs one logit per class.
    pub blocks: Vec<Block>,
    /// The class names, in output order. Configs written before models named their classes
    /// have none saved: theirs are the seven emotions.
    #[serde(default = "emotion_labels")]
    pub labels: Vec<String>,
}

/// The seven emotions as a config's class names.
pub fn emotion_labels() -> Vec<String> {
    EMOTIONS.map(String::from).to_vec()
}

impl ModelConfig {
    /// The config of a named architecture classifying the seven emotions.
    pub fn for_arch(arch: Arch) -> Self {
        Self::for_classes(arch, emotion_labels())
    }

    /// The config of a named architecture classifying `labels`.
    pub fn for_classes(arch: Arch, labels: Vec<String>) -> Self {
        Self {
            arch,
            blocks: arch.blocks(labels.len()),
            labels,
        }
    }

    /// Checks that the class names are valid and that the last block outputs one logit per
    /// class: what a config read from a file must satisfy before it builds a network.
    pub fn check(&self) -> Result<(), String> {
        emoedge_core::labels::check(&self.labels).map_err(|e| e.to_string())?;
        match self.blocks.last() {
            Some(Block::Dense { out }) if *out == self.labels.len() => Ok(()),
            Some(Block::Dense { out }) => Err(format!(
                "the last layer outputs {out} logits for {} class names",
                self.labels.len()
            )),
            _ => Err("the last block is not a Dense layer".into()),
        }
    }

    /// Builds the network with fresh weights.
    pub fn init(&self, device: &Device) -> Model {
        let (mut convs, mut denses, mut dropouts) = (Vec::new(), Vec::new(), Vec::new());
        let (mut c, mut flat) = (1usize, 0usize);
        let mut hw = INPUT_SIDE;
        for b in &self.blocks {
            match *b {
                Block::Conv {
                    out,
                    k,
                    stride,
                    bn,
                    same,
                } => {
                    let pad = if same { k / 2 } else { 0 };
                    convs.push(conv_bn(device, c, out, k, stride, pad, 1, bn));
                    hw = (hw + 2 * pad - k) / stride + 1;
                    c = out;
                }
                Block::Depthwise { k, stride } => {
                    convs.push(conv_bn(device, c, c, k, stride, k / 2, c, true));
                    hw = (hw + 2 * (k / 2) - k) / stride + 1;
                }
                Block::Pointwise { out } => {
                    convs.push(conv_bn(device, c, out, 1, 1, 0, 1, true));
                    c = out;
                }
                Block::MaxPool => hw /= 2,
                Block::Dropout { p } => dropouts.push(DropoutConfig::new(p).init()),
                Block::GlobalAvgPool => flat = c,
                Block::Flatten => flat = c * hw * hw,
                Block::Dense { out } => {
                    denses.push(LinearConfig::new(flat, out).init(device));
                    flat = out;
                }
            }
        }
        Model {
            convs,
            denses,
            dropouts,
            pool: MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init(),
            blocks: self.blocks.clone(),
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn conv_bn(
    device: &Device,
    cin: usize,
    cout: usize,
    k: usize,
    stride: usize,
    pad: usize,
    groups: usize,
    bn: bool,
) -> ConvBn {
    let conv = Conv2dConfig::new([cin, cout], [k, k])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
        .with_groups(groups)
        .with_bias(!bn)
        .init(device);
    ConvBn {
        conv,
        bn: bn.then(|| BatchNormConfig::new(cout).init(device)),
    }
}

/// A convolution, its optional BatchNorm, and a ReLU.
#[derive(Module, Debug)]
pub struct ConvBn {
    /// The convolution (no bias when followed by BatchNorm).
    pub conv: Conv2d,
    /// BatchNorm, folded into `conv` at quantization.
    pub bn: Option<BatchNorm>,
}

impl ConvBn {
    /// Convolution, BatchNorm (when there is one) and ReLU.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.norm_relu(self.conv_forward(x))
    }

    /// The convolution alone. Through `emoedge_train_ops`, whose gradients are the fast ones
    /// on the CPU (Burn's own operations elsewhere).
    pub fn conv_forward(&self, x: Tensor<4>) -> Tensor<4> {
        emoedge_train_ops::conv2d_layer(&self.conv, x)
    }

    /// BatchNorm and ReLU (ReLU alone without a BatchNorm): one fused operation when training
    /// on the CPU.
    pub fn norm_relu(&self, x: Tensor<4>) -> Tensor<4> {
        match &self.bn {
            Some(bn) => emoedge_train_ops::batch_norm_relu(bn, x),
            None => burn::tensor::activation::relu(x),
        }
    }
}

/// A network built from [`Block`]s: its parameterised layers in block order.
#[derive(Module, Debug)]
pub struct Model {
    /// Conv, Depthwise and Pointwise blocks, in order.
    pub convs: Vec<ConvBn>,
    /// Dense blocks, in order.
    pub denses: Vec<Linear>,
    /// Dropout blocks, in order.
    pub dropouts: Vec<Dropout>,
    pool: MaxPool2d,
    /// The block list (also in the config).
    #[module(skip)]
    pub blocks: Vec<Block>,
}

impl Model {
    /// `[batch, 1, 48, 48]` pixels `p / 255` → `[batch, 7]` logits.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        self.forward_observed(x, None)
    }

    /// [`Model::forward`], handing every tensor that int8 export quantizes (after each conv
    /// block, the global pool and each dense layer), flattened, to `observe` in block order.
    /// The whole tensor, not just its extremes, so calibration can look at the distribution.
    pub fn forward_observed(
        &self,
        x: Tensor<4>,
        mut observe: Option<&mut dyn FnMut(Tensor<1>)>,
    ) -> Tensor<2> {
        fn point<const D: usize>(t: &Tensor<D>, obs: &mut Option<&mut dyn FnMut(Tensor<1>)>) {
            if let Some(f) = obs {
                f(t.clone().flatten::<1>(0, D - 1));
            }
        }
        let (mut ci, mut di, mut pi) = (0, 0, 0);
        let mut x4 = Some(x);
        let mut x2: Option<Tensor<2>> = None;
        let last_dense = self
            .blocks
            .iter()
            .rposition(|b| matches!(b, Block::Dense { .. }));
        for (bi, b) in self.blocks.iter().enumerate() {
            match b {
                Block::Conv { .. } | Block::Depthwise { .. } | Block::Pointwise { .. } => {
                    x4 = x4.map(|x| self.convs[ci].forward(x));
                    if let Some(x) = &x4 {
                        point(x, &mut observe);
                    }
                    ci += 1;
                }
                Block::MaxPool => {
                    x4 = x4.map(|x| emoedge_train_ops::max_pool2d_layer(&self.pool, x))
                }
                Block::Dropout { .. } => {
                    let d = &self.dropouts[pi];
                    x4 = x4.map(|x| emoedge_train_ops::dropout(d, x));
                    x2 = x2.map(|x| emoedge_train_ops::dropout(d, x));
                    pi += 1;
                }
                Block::GlobalAvgPool => {
                    if let Some(x) = x4.take() {
                        let [b, c, _, _] = x.dims();
                        let y = x.mean_dim(3).mean_dim(2).reshape([b, c]);
                        point(&y, &mut observe);
                        x2 = Some(y);
                    }
                }
                Block::Flatten => {
                    if let Some(x) = x4.take() {
                        x2 = Some(x.flatten(1, 3));
                    }
                }
                Block::Dense { .. } => {
                    let relu = Some(bi) != last_dense;
                    x2 = x2.map(|x| {
                        let y = self.denses[di].forward(x);
                        if relu {
                            burn::tensor::activation::relu(y)
                        } else {
                            y
                        }
                    });
                    if let Some(x) = &x2 {
                        point(x, &mut observe);
                    }
                    di += 1;
                }
            }
        }
        x2.expect("a network ends in a dense layer")
    }
}

/// Static costs of a network: what the int8 model will need on a device.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Costs {
    /// Trainable parameters (float model).
    pub params: usize,
    /// int8 weight bytes after BatchNorm folding (biases are separate int32).
    pub weight_bytes: usize,
    /// Multiply-accumulates per 48x48 inference.
    pub macs: u64,
    /// Largest single activation tensor, bytes (int8).
    pub peak_activation: usize,
    /// Arena the `shared/` engine needs: `max(in + out)` over layers.
    pub arena: usize,
}

/// Computes [`Costs`] from a block list.
pub fn costs(blocks: &[Block]) -> Costs {
    let mut k = Costs::default();
    let (mut c, mut hw, mut flat) = (1usize, INPUT_SIDE, 0usize);
    let mut cur = INPUT_SIDE * INPUT_SIDE;
    let step = |k: &mut Costs, input: usize, output: usize| {
        k.peak_activation = k.peak_activation.max(output);
        k.arena = k.arena.max(input + output);
    };
    for b in blocks {
        match *b {
            Block::Conv {
                out,
                k: ks,
                stride,
                bn,
                same,
            } => {
                let pad = if same { ks / 2 } else { 0 };
                hw = (hw + 2 * pad - ks) / stride + 1;
                let w = out * ks * ks * c;
                k.params += w + if bn { 2 * out } else { out };
                k.weight_bytes += w;
                k.macs += (hw * hw * w) as u64;
                c = out;
            }
            Block::Depthwise { k: ks, stride } => {
                hw = (hw + 2 * (ks / 2) - ks) / stride + 1;
                k.params += c * ks * ks + 2 * c;
                k.weight_bytes += c * ks * ks;
                k.macs += (hw * hw * c * ks * ks) as u64;
            }
            Block::Pointwise { out } => {
                k.params += c * out + 2 * out;
                k.weight_bytes += c * out;
                k.macs += (hw * hw * c * out) as u64;
                c = out;
            }
            Block::MaxPool => hw /= 2,
            Block::Dropout { .. } => continue,
            Block::GlobalAvgPool => flat = c,
            Block::Flatten => {
                flat = c * hw * hw;
                continue;
            }
            Block::Dense { out } => {
                k.params += flat * out + out;
                k.weight_bytes += flat * out;
                k.macs += (flat * out) as u64;
                let input = flat;
                flat = out;
                step(&mut k, input, out);
                cur = out;
                continue;
            }
        }
        let output = if matches!(b, Block::GlobalAvgPool) {
            c
        } else {
            c * hw * hw
        };
        step(&mut k, cur, output);
        cur = output;
    }
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_without_class_names_is_the_seven_emotions() {
        let mut json = serde_json::to_value(ModelConfig::for_arch(Arch::Edge)).unwrap();
        json.as_object_mut().unwrap().remove("labels");
        let old: ModelConfig = serde_json::from_value(json).unwrap();
        assert_eq!(old, ModelConfig::for_arch(Arch::Edge));
        assert_eq!(old.check(), Ok(()));
        let own = ModelConfig::for_classes(Arch::Edge, vec!["no".into(), "yes".into()]);
        assert_eq!(own.blocks.last(), Some(&Block::Dense { out: 2 }));
        let mut bad = own.clone();
        bad.labels.push("maybe".into());
        assert!(
            bad.check()
                .unwrap_err()
                .contains("2 logits for 3 class names")
        );
    }

    #[test]
    fn tutorial_costs_match_the_keras_summary() {
        // Keras reports 2,345,607 trainable parameters for the tutorial network.
        assert_eq!(costs(&Arch::Tutorial.blocks(7)).params, 2_345_607);
    }

    #[test]
    fn teacher_costs() {
        let k = costs(&Arch::Teacher.blocks(7));
        // 4,682,304 conv weights + 3,840 BatchNorm + 2,359,808 + 3,591 dense.
        assert_eq!(k.params, 7_049_543, "{k:?}");
        // 48²·(9·64 + 9·64·64) + 24²·9·(64·128 + 128·128) + 12²·9·(128·256 + 256·256)
        // + 6²·9·(256·512 + 512·512) + 4608·512 + 512·7
        assert_eq!(k.macs, 470_830_592, "{k:?}");
        let k = costs(&Arch::TeacherSmall.blocks(7));
        // 1,170,720 conv weights + 1,920 BatchNorm + 590,080 + 1,799 dense.
        assert_eq!(k.params, 1_764_519, "{k:?}");
        // A quarter of the teacher's convolution MACs: 48²·9·(32 + 32·32) + 24²·9·(32·64 +
        // 64·64) + 12²·9·(64·128 + 128·128) + 6²·9·(128·256 + 256·256) + 2304·256 + 256·7
        assert_eq!(k.macs, 118_040_320, "{k:?}");
    }

    #[test]
    fn edge_fits_a_microcontroller() {
        for arch in [Arch::Edge, Arch::EdgeWide] {
            let k = costs(&arch.blocks(7));
            assert!(k.weight_bytes <= 256 * 1024, "{arch:?} {k:?}");
            assert!(k.arena <= 128 * 1024, "{arch:?} {k:?}");
            assert!(k.macs <= 25_000_000, "{arch:?} {k:?}");
        }
    }

    #[test]
    fn forward_shapes() {
        let device = Device::flex();
        for arch in [
            Arch::Edge,
            Arch::EdgeWide,
            Arch::Tutorial,
            Arch::Teacher,
            Arch::TeacherSmall,
        ] {
            let m = ModelConfig::for_arch(arch).init(&device);
            let y = m.forward(Tensor::zeros([2, 1, 48, 48], &device));
            assert_eq!(y.dims(), [2, EMOTIONS.len()]);
        }
    }
}
