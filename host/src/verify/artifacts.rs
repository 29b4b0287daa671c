//! Artifact checks for `verify`: do the ONNX model and the blob carry the weights they say
//! they carry, and the same ones? Each artifact records a SHA-256 of its weights at export;
//! here both are recomputed from the weights actually inside each file.

use crate::export::onnx::{HASH_KEY, LABELS_KEY};
use crate::quantize::weights_hash;
use crate::sys::hash::hex_string;
use anyhow::{Context, Result};
use emoedge_core::model::{HEADER_LEN, Step};
use emoedge_runtime::model_dir;
use prost::Message;
use std::collections::HashMap;
use std::path::Path;
use tract_onnx::pb;

/// Recorded and recomputed weight hashes of a model folder's two artifacts.
#[derive(Debug, Clone)]
pub struct Hashes {
    /// Hash in the ONNX metadata.
    pub onnx_recorded: Option<String>,
    /// Hash of the ONNX initializers.
    pub onnx_actual: String,
    /// Hash in the blob body.
    pub blob_recorded: String,
    /// Hash of the blob's weights, in canonical (ONNX) order.
    pub blob_actual: String,
}

impl Hashes {
    /// Everything that does not match, as sentences naming the artifact.
    pub fn failures(&self) -> Vec<String> {
        let mut f = Vec::new();
        if self.onnx_recorded.as_deref() != Some(self.onnx_actual.as_str()) {
            f.push(format!(
                "{}: its weights do not match the hash recorded at export",
                model_dir::ONNX
            ));
        }
        if self.blob_recorded != self.blob_actual {
            f.push(format!(
                "{}: its weights do not match the hash recorded at export",
                model_dir::BLOB
            ));
        }
        if self.onnx_actual != self.blob_actual {
            f.push(format!(
                "{} and {} were not made from the same weights",
                model_dir::ONNX,
                model_dir::BLOB
            ));
        }
        f
    }

    /// The hash recorded in the blob.
    pub fn recorded(&self) -> String {
        self.blob_recorded.clone()
    }

    /// One line for the log.
    pub fn summary(&self) -> String {
        format!(
            "{} (onnx {}, blob {})",
            &self.blob_recorded[..16],
            &self.onnx_actual[..16],
            &self.blob_actual[..16]
        )
    }
}

/// Where the class names of a model folder's artifacts differ from its blob's `labels`:
/// the int8 ONNX's metadata and, when the folder has one, the float network's config.
/// An ONNX without class names (exported before they were recorded) passes only as the
/// seven emotions.
pub fn label_failures(dir: &Path, labels: &[&str]) -> Result<Vec<String>> {
    let mut f = Vec::new();
    let onnx = dir.join(model_dir::ONNX);
    let bytes = std::fs::read(&onnx).with_context(|| format!("reading {}", onnx.display()))?;
    let m = pb::ModelProto::decode(&bytes[..])
        .with_context(|| format!("{}: not an ONNX protobuf", onnx.display()))?;
    let onnx_labels = m
        .metadata_props
        .iter()
        .find(|p| p.key == LABELS_KEY)
        .map_or_else(
            || emoedge_core::labels::EMOTIONS.join(","),
            |p| p.value.clone(),
        );
    if onnx_labels != labels.join(",") {
        f.push(format!(
            "{} names the classes {onnx_labels}, {} names {}",
            model_dir::ONNX,
            model_dir::BLOB,
            labels.join(",")
        ));
    }
    let config = dir.join(model_dir::CONFIG);
    if config.is_file() {
        let c: crate::model::ModelConfig = crate::sys::json::read_json(&config)?;
        if c.labels != labels {
            f.push(format!(
                "{} names the classes {}, {} names {}",
                model_dir::CONFIG,
                c.labels.join(","),
                model_dir::BLOB,
                labels.join(",")
            ));
        }
    }
    Ok(f)
}

/// One layer's int8 weights (ONNX order) and int32 biases.
pub type LayerWeights = (Vec<i8>, Vec<i32>);

/// Canonical weights and biases of an ONNX model: each `QLinearConv`'s `w` and `B`, in order,
/// with the hash recorded in its metadata.
pub fn onnx_weights(bytes: &[u8]) -> Result<(Option<String>, Vec<LayerWeights>)> {
    let m = pb::ModelProto::decode(bytes).context("not an ONNX protobuf")?;
    let g = m.graph.context("ONNX model has no graph")?;
    let inits: HashMap<&str, &pb::TensorProto> =
        g.initializer.iter().map(|t| (t.name.as_str(), t)).collect();
    let mut layers = Vec::new();
    for n in g.node.iter().filter(|n| n.op_type == "QLinearConv") {
        let get = |i: usize| {
            n.input
                .get(i)
                .and_then(|name| inits.get(name.as_str()))
                .with_context(|| format!("{}: input {i} is not an initializer", n.name))
        };
        let w = get(3)?.raw_data.iter().map(|&b| b as i8).collect();
        let b = get(8)?
            .raw_data
            .chunks_exact(4)
            .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        layers.push((w, b));
    }
    let recorded = m
        .metadata_props
        .iter()
        .find(|p| p.key == HASH_KEY)
        .map(|p| p.value.clone());
    Ok((recorded, layers))
}

/// Canonical weights and biases of a parsed blob (engine layouts turned back to ONNX order).
pub fn blob_weights(model: &emoedge_core::Model) -> Vec<LayerWeights> {
    let mut out = Vec::new();
    for s in model.steps() {
        let (w, ch, n): (Vec<i8>, _, usize) = match s.step {
            Step::Conv2d(p) => {
                let (kh, kw, cin) = (
                    p.window.kh as usize,
                    p.window.kw as usize,
                    p.input.c as usize,
                );
                let mut w = vec![0i8; p.weights.len()];
                for o in 0..p.out_c as usize {
                    for y in 0..kh {
                        for x in 0..kw {
                            for i in 0..cin {
                                w[((o * cin + i) * kh + y) * kw + x] =
                                    p.weights[((o * kh + y) * kw + x) * cin + i] as i8;
                            }
                        }
                    }
                }
                (w, p.channels, p.out_c as usize)
            }
            Step::Depthwise(p) => {
                let (kh, kw, c) = (
                    p.window.kh as usize,
                    p.window.kw as usize,
                    p.input.c as usize,
                );
                let mut w = vec![0i8; p.weights.len()];
                for y in 0..kh {
                    for x in 0..kw {
                        for ch in 0..c {
                            w[(ch * kh + y) * kw + x] = p.weights[(y * kw + x) * c + ch] as i8;
                        }
                    }
                }
                (w, p.channels, c)
            }
            Step::Pointwise(p) => (
                p.weights.iter().map(|&b| b as i8).collect(),
                p.channels,
                p.out_c as usize,
            ),
            Step::Dense(p) => {
                let (h, wd, c) = (s.input.h as usize, s.input.w as usize, s.input.c as usize);
                let n_in = p.input_len as usize;
                let mut w = vec![0i8; p.weights.len()];
                for o in 0..p.out_len as usize {
                    for ch in 0..c {
                        for y in 0..h {
                            for x in 0..wd {
                                w[o * n_in + (ch * h + y) * wd + x] =
                                    p.weights[o * n_in + (y * wd + x) * c + ch] as i8;
                            }
                        }
                    }
                }
                (w, p.channels, p.out_len as usize)
            }
            Step::MaxPool(_) | Step::AvgPool(_) => continue,
        };
        out.push((w, (0..n).map(|c| ch.get(c).0).collect()));
    }
    out
}

fn hash_of(layers: &[LayerWeights]) -> String {
    hex_string(&weights_hash(
        layers.iter().map(|(w, b)| (w.as_slice(), b.as_slice())),
    ))
}

/// Recorded and recomputed hashes of the ONNX model and the blob in `dir`.
pub fn artifact_hashes(dir: &Path) -> Result<Hashes> {
    let onnx_path = dir.join(model_dir::ONNX);
    let onnx =
        std::fs::read(&onnx_path).with_context(|| format!("reading {}", onnx_path.display()))?;
    let (onnx_recorded, ol) = onnx_weights(&onnx)
        .with_context(|| format!("reading weights of {}", onnx_path.display()))?;
    let blob = emoedge_runtime::ModelDir::new(dir).read_blob()?;
    let model = blob.model()?;
    Ok(Hashes {
        onnx_recorded,
        onnx_actual: hash_of(&ol),
        blob_recorded: hex_string(&model.body().weights_hash),
        blob_actual: hash_of(&blob_weights(&model)),
    })
}

/// `None` when equal; else where and how two blobs differ.
pub fn compare_blobs(shipped: &[u8], other: &[u8]) -> Option<String> {
    if shipped == other {
        return None;
    }
    let first = shipped
        .iter()
        .zip(other)
        .position(|(a, b)| a != b)
        .unwrap_or(shipped.len().min(other.len()));
    let part = if first < HEADER_LEN { "header" } else { "body" };
    Some(format!(
        "{} bytes vs {} shipped; first difference at byte {first} ({part})",
        other.len(),
        shipped.len()
    ))
}
