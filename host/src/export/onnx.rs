//! The int8 ONNX model, in the QOperator form that tract runs with integer kernels:
//! `QuantizeLinear → (QLinearConv | MaxPool)* → DequantizeLinear → Reshape`, opset 19 (the first whose QuantizeLinear/DequantizeLinear the ONNX reference evaluator implements).
//! Global pooling and dense layers are `QLinearConv`s (a depthwise one with equal weights,
//! and one whose kernel covers its whole input), so the graph needs no `QLinearAdd`,
//! `QLinearGlobalAveragePool`, `QGemm` or `QLinearMatMul` bias workaround.

use crate::quantize::{QOp, QuantModel};
use crate::sys::hash::hex_string;
use prost::Message;
use tract_onnx::pb;

/// Name of the float input, `[1, 1, 48, 48]`, pixels `p / 255`.
pub const INPUT: &str = "input";
/// Name of the float output, `[1, classes]`, logits.
pub const OUTPUT: &str = "logits";
/// Metadata key holding the weights hash (hex SHA-256).
pub const HASH_KEY: &str = "emoedge.weights_sha256";
/// Metadata key of the class names, in output order, joined by commas (a class name holds
/// no comma: [`emoedge_core::labels`]).
pub const LABELS_KEY: &str = "emoedge.labels";

const FLOAT: i32 = 1;
const INT8: i32 = 3;
const INT32: i32 = 6;
const INT64: i32 = 7;

fn tensor(name: &str, dims: &[usize], data_type: i32, raw: Vec<u8>) -> pb::TensorProto {
    pb::TensorProto {
        name: name.into(),
        dims: dims.iter().map(|&d| d as i64).collect(),
        data_type,
        raw_data: raw,
        ..Default::default()
    }
}

fn f32s(name: &str, v: &[f32]) -> pb::TensorProto {
    let dims: &[usize] = if v.len() == 1 { &[] } else { &[v.len()] };
    tensor(
        name,
        dims,
        FLOAT,
        v.iter().flat_map(|x| x.to_le_bytes()).collect(),
    )
}

fn i8s(name: &str, dims: &[usize], v: &[i8]) -> pb::TensorProto {
    tensor(name, dims, INT8, v.iter().map(|&x| x as u8).collect())
}

fn ints(name: &str, v: &[i64]) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: 7,
        ints: v.to_vec(),
        ..Default::default()
    }
}

fn int(name: &str, v: i64) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: 2,
        i: v,
        ..Default::default()
    }
}

fn node(
    op: &str,
    name: &str,
    inputs: &[&str],
    outputs: &[&str],
    attribute: Vec<pb::AttributeProto>,
) -> pb::NodeProto {
    pb::NodeProto {
        op_type: op.into(),
        name: name.into(),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        attribute,
        ..Default::default()
    }
}

fn value_info(name: &str, dims: &[i64]) -> pb::ValueInfoProto {
    use pb::tensor_shape_proto::{Dimension, dimension::Value};
    pb::ValueInfoProto {
        name: name.into(),
        r#type: Some(pb::TypeProto {
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: FLOAT,
                shape: Some(pb::TensorShapeProto {
                    dim: dims
                        .iter()
                        .map(|&d| Dimension {
                            value: Some(Value::DimValue(d)),
                            ..Default::default()
                        })
                        .collect(),
                }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Serializes the model as ONNX protobuf bytes.
pub fn to_onnx(q: &QuantModel) -> Vec<u8> {
    let mut nodes = Vec::new();
    let mut inits = Vec::new();
    inits.push(f32s("in_scale", &[q.input.scale]));
    inits.push(i8s("in_zp", &[], &[q.input.zero_point]));
    nodes.push(node(
        "QuantizeLinear",
        "quantize",
        &[INPUT, "in_scale", "in_zp"],
        &["x0"],
        vec![],
    ));
    let mut x = String::from("x0");
    let (mut xs, mut xz) = (String::from("in_scale"), String::from("in_zp"));
    for (i, op) in q.ops.iter().enumerate() {
        let y = format!("x{}", i + 1);
        match op {
            QOp::MaxPool { .. } => {
                nodes.push(node(
                    "MaxPool",
                    &format!("pool{i}"),
                    &[&x],
                    &[&y],
                    vec![ints("kernel_shape", &[2, 2]), ints("strides", &[2, 2])],
                ));
            }
            QOp::Conv(c) => {
                let p = format!("l{i}");
                let cin_g = c.input[2] / c.group();
                let [kh, kw] = c.kernel;
                inits.push(i8s(
                    &format!("{p}_w"),
                    &[c.out_c, cin_g, kh, kw],
                    &c.weights,
                ));
                inits.push(f32s(&format!("{p}_ws"), &c.w_scale));
                inits.push(i8s(&format!("{p}_wz"), &[c.out_c], &vec![0; c.out_c]));
                inits.push(f32s(&format!("{p}_ys"), &[c.out_q.scale]));
                inits.push(i8s(&format!("{p}_yz"), &[], &[c.out_q.zero_point]));
                inits.push(tensor(
                    &format!("{p}_b"),
                    &[c.out_c],
                    INT32,
                    c.bias.iter().flat_map(|b| b.to_le_bytes()).collect(),
                ));
                let (w, ws, wz, ys, yz, b) = (
                    format!("{p}_w"),
                    format!("{p}_ws"),
                    format!("{p}_wz"),
                    format!("{p}_ys"),
                    format!("{p}_yz"),
                    format!("{p}_b"),
                );
                let pad = c.pad as i64;
                nodes.push(node(
                    "QLinearConv",
                    &format!("conv{i}"),
                    &[&x, &xs, &xz, &w, &ws, &wz, &ys, &yz, &b],
                    &[&y],
                    vec![
                        ints("kernel_shape", &[kh as i64, kw as i64]),
                        ints("strides", &[c.stride as i64; 2]),
                        ints("pads", &[pad; 4]),
                        int("group", c.group() as i64),
                    ],
                ));
                (xs, xz) = (ys, yz);
            }
        }
        x = y;
    }
    nodes.push(node(
        "DequantizeLinear",
        "dequantize",
        &[&x, &xs, &xz],
        &["logits4"],
        vec![],
    ));
    inits.push(tensor(
        "out_shape",
        &[2],
        INT64,
        [1i64, q.labels.len() as i64]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect(),
    ));
    nodes.push(node(
        "Reshape",
        "flatten",
        &["logits4", "out_shape"],
        &[OUTPUT],
        vec![],
    ));
    let graph = pb::GraphProto {
        name: "emoedge".into(),
        node: nodes,
        initializer: inits,
        input: vec![value_info(INPUT, &[1, 1, 48, 48])],
        output: vec![value_info(OUTPUT, &[1, q.labels.len() as i64])],
        ..Default::default()
    };
    let model = pb::ModelProto {
        ir_version: 9,
        opset_import: vec![pb::OperatorSetIdProto {
            domain: String::new(),
            version: 19,
        }],
        producer_name: "emoedge".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        doc_string: format!(
            "int8 face classifier; input: 48x48 gray pixels p/255; output: {} logits ({})",
            q.labels.len(),
            q.labels.join(", ")
        ),
        graph: Some(graph),
        metadata_props: vec![
            pb::StringStringEntryProto {
                key: HASH_KEY.into(),
                value: hex_string(&q.weights_hash),
            },
            pb::StringStringEntryProto {
                key: LABELS_KEY.into(),
                value: q.labels.join(","),
            },
        ],
        ..Default::default()
    };
    model.encode_to_vec()
}
