//! The blob format: golden bytes pin it; every kind of damage is a typed error, never a
//! panic; the engine runs what parses.

use emoedge_core::kernels::{ChannelParams, KernelError};
use emoedge_core::labels::{EMOTIONS, LabelError};
use emoedge_core::model::{HEADER_LEN, Header, Layer, ModelBody, ModelError, write_blob};
use emoedge_core::quant::{OutputQuant, Requant};
use emoedge_core::shape::{Shape, Window};
use emoedge_core::{Engine, EngineError, Model};

/// A tiny but complete model: 4x4x1 → conv 3x3 (2 ch) → maxpool → dense, the seven
/// emotions as its classes.
fn blob_with(dense_out: u16, dense_w: usize) -> Vec<u8> {
    blob_labelled(dense_out, dense_w, &EMOTIONS)
}

/// [`blob_with`] with the class names `labels`.
fn blob_labelled(dense_out: u16, dense_w: usize, labels: &[&str]) -> Vec<u8> {
    let one = Requant::new(1 << 30, 2).unwrap(); // 1/8
    let conv_ch = ChannelParams::encode(&[(3, one), (-3, one)]);
    let dense_ch = ChannelParams::encode(&vec![(1, one); dense_out as usize]);
    let conv_w: Vec<u8> = (0..18).map(|i| (i as i8 - 9) as u8).collect();
    let dense_wv: Vec<u8> = (0..dense_w).map(|i| ((i % 5) as i8 - 2) as u8).collect();
    let mut layers = heapless::Vec::new();
    layers
        .push(Layer::Conv2d {
            window: Window::square(3, 1, 1),
            out_c: 2,
            weights: &conv_w,
            channels: &conv_ch,
            output: OutputQuant::relu(-128),
        })
        .unwrap();
    layers
        .push(Layer::MaxPool {
            window: Window::square(2, 2, 0),
        })
        .unwrap();
    layers
        .push(Layer::Dense {
            out_len: dense_out,
            weights: &dense_wv,
            channels: &dense_ch,
            output: OutputQuant::linear(5),
        })
        .unwrap();
    let body = ModelBody {
        input: Shape::new(4, 4, 1),
        input_zp: -128,
        weights_hash: [0xab; 32],
        output_scale: 0.25,
        layers,
        labels: labels.iter().copied().collect(),
    };
    write_blob(&body).unwrap()
}

fn good() -> Vec<u8> {
    blob_with(7, 7 * 2 * 2 * 2)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn golden_bytes() {
    let b = good();
    // Header: magic, version 2, flags 0, body length, CRC-32 of the body.
    assert_eq!(
        hex(&b[..HEADER_LEN]),
        GOLDEN_HEADER,
        "header layout changed"
    );
    assert_eq!(
        hex(&b),
        GOLDEN_BLOB,
        "body encoding changed: bump FORMAT_VERSION and re-pin"
    );
}

const GOLDEN_HEADER: &str = "454d4f42020000001801000000529a9b";
const GOLDEN_BLOB: &str = concat!(
    "454d4f42020000001801000000529a9b04040180abababababababababababababababababababababababababababab",
    "abababab0000803e030003030101010101010212f7f8f9fafbfcfdfeff00010203040506070812030000000000004002fdffffff000000400280807f030202020200000000050738feff000102feff000102feff000102feff000102feff00",
    "0102feff000102feff000102feff000102feff000102feff000102feff000102fe3f01000000000000400201000000000000400201000000000000400201000000000000400201000000000000400201000000000000400201000000000000",
    "400205807f0705616e67727909646973677573746564076665617266756c056861707079076e65757472616c0373616409737572707269736564",
);

/// [`good`] as version 1 wrote it: no class names.
const GOLDEN_V1_BLOB: &str = concat!(
    "454d4f4201000000e3000000a5bc9c7c04040180abababababababababababababababababababababababababababab",
    "abababab0000803e030003030101010101010212f7f8f9fafbfcfdfeff00010203040506070812030000000000004002fdffffff000000400280807f030202020200000000050738feff000102feff000102feff000102feff000102feff000102feff00",
    "0102feff000102feff000102feff000102feff000102feff000102fe3f01000000000000400201000000000000400201000000000000400201000000000000400201000000000000400201000000000000400201000000000000400205807f",
    ""
);

#[test]
fn parses_and_runs() {
    let b = good();
    let m = Model::parse(&b).unwrap();
    assert_eq!(m.steps().len(), 3);
    assert_eq!(m.activations_len(), 4 * 4 * 2 + 2 * 2 * 2);
    // The 3x3 convolution over one channel: four 9-byte im2col columns and their widened
    // int32 copies (the Armv6-M block, the largest), and 4 bytes to align them.
    assert_eq!(m.scratch_len(), 4 * 9 + 16 * 9 + 4);
    assert_eq!(m.arena_len(), m.activations_len() + m.scratch_len());
    assert_eq!(m.macs(), 16 * 2 * 9 + 7 * 8);
    let mut arena = vec![0i8; m.arena_len()];
    let x: Vec<i8> = (0..16).map(|i| (i * 16 - 128) as i8).collect();
    assert_eq!(m.labels(), EMOTIONS);
    let y = Engine::new(&m).run(&x, &mut arena).unwrap().to_vec();
    assert_eq!(y.len(), 7);
    // Same input, same answer; and the answer uses every layer (not all equal).
    let y2 = Engine::new(&m).run(&x, &mut arena).unwrap().to_vec();
    assert_eq!(y, y2);
    assert!(y.iter().any(|&v| v != y[0]), "{y:?}");
    assert_eq!(
        Engine::new(&m).run(&x, &mut arena[..10]).unwrap_err(),
        EngineError::ArenaTooSmall {
            needed: 224,
            got: 10
        }
    );
    assert_eq!(
        Engine::new(&m).run(&x[..15], &mut arena).unwrap_err(),
        EngineError::InputLen {
            expected: 16,
            got: 15
        }
    );
}

#[test]
fn damage_is_a_typed_error() {
    let b = good();
    assert_eq!(
        Model::parse(&b[..10]).unwrap_err(),
        ModelError::Truncated {
            needed: 16,
            got: 10
        }
    );
    assert!(matches!(
        Model::parse(&b[..b.len() - 1]).unwrap_err(),
        ModelError::Truncated { .. }
    ));
    let mut m = b.clone();
    m[0] = b'X';
    assert_eq!(Model::parse(&m).unwrap_err(), ModelError::BadMagic);
    let mut m = b.clone();
    m[4] = 3;
    assert_eq!(
        Model::parse(&m).unwrap_err(),
        ModelError::UnsupportedVersion {
            found: 3,
            supported: 2
        }
    );
    m[4] = 0;
    assert!(matches!(
        Model::parse(&m).unwrap_err(),
        ModelError::UnsupportedVersion { found: 0, .. }
    ));
    let mut m = b.clone();
    m[6] = 1;
    assert_eq!(Model::parse(&m).unwrap_err(), ModelError::UnknownFlags(1));
    let mut m = b.clone();
    m[HEADER_LEN + 20] ^= 0x40;
    assert!(matches!(
        Model::parse(&m).unwrap_err(),
        ModelError::Crc { .. }
    ));
    // Erased flash after the blob is fine.
    let mut m = b.clone();
    m.extend_from_slice(&[0xff; 64]);
    assert!(Model::parse(&m).is_ok());
}

#[test]
fn wrong_shapes_are_caught_at_parse() {
    // Dense weights one byte short.
    let b = blob_with(7, 7 * 8 - 1);
    assert_eq!(
        Model::parse(&b).unwrap_err(),
        ModelError::Layer {
            index: 2,
            error: KernelError::WeightsLen {
                expected: 56,
                got: 55
            }
        }
    );
    // Six outputs for seven class names.
    let b = blob_with(6, 6 * 8);
    assert_eq!(
        Model::parse(&b).unwrap_err(),
        ModelError::OutputShape { got: 6, labels: 7 }
    );
}

#[test]
fn a_model_names_its_own_classes() {
    let labels = ["no_smile", "smile", "unsure"];
    let b = blob_labelled(3, 3 * 8, &labels);
    let m = Model::parse(&b).unwrap();
    assert_eq!(m.labels(), labels);
    let mut arena = vec![0i8; m.arena_len()];
    assert_eq!(Engine::new(&m).run(&[0; 16], &mut arena).unwrap().len(), 3);
    // Names that could not be printed everywhere, one class, or a name twice: refused.
    for (bad, error) in [
        (&["Smile", "no"][..], LabelError::BadName { index: 0 }),
        (&["smile"][..], LabelError::Count(1)),
        (
            &["a", "b", "a"][..],
            LabelError::Duplicate {
                first: 0,
                second: 2,
            },
        ),
    ] {
        let b = blob_labelled(bad.len() as u16, bad.len() * 8, bad);
        assert_eq!(Model::parse(&b).unwrap_err(), ModelError::Labels(error));
    }
}

/// A version 1 blob (written before models named their classes) still parses, as the seven
/// emotions, and computes what the same model in version 2 computes.
#[test]
fn version_1_blobs_read_as_the_seven_emotions() {
    let v1: Vec<u8> = (0..GOLDEN_V1_BLOB.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&GOLDEN_V1_BLOB[i..i + 2], 16).unwrap())
        .collect();
    assert_eq!(Header::parse(&v1).unwrap().version, 1);
    let (old, new) = (v1, good());
    let (old, new) = (Model::parse(&old).unwrap(), Model::parse(&new).unwrap());
    assert_eq!(old.labels(), EMOTIONS);
    let x: Vec<i8> = (0..16).map(|i| (i * 16 - 128) as i8).collect();
    let mut arena = vec![0i8; new.arena_len()];
    let a = Engine::new(&old).run(&x, &mut arena).unwrap().to_vec();
    let b = Engine::new(&new).run(&x, &mut arena).unwrap().to_vec();
    assert_eq!(a, b);
}

#[test]
fn trailing_and_garbage_bodies() {
    let b = good();
    // The body plus one byte, with a header that covers it and a valid CRC.
    let mut body = b[HEADER_LEN..].to_vec();
    body.push(0);
    let mut m = Header::for_body(&body).unwrap().to_bytes().to_vec();
    m.extend_from_slice(&body);
    assert_eq!(Model::parse(&m).unwrap_err(), ModelError::TrailingBytes);
    let garbage = [0xffu8; 40];
    let mut m = Header::for_body(&garbage).unwrap().to_bytes().to_vec();
    m.extend_from_slice(&garbage);
    assert_eq!(Model::parse(&m).unwrap_err(), ModelError::Decode);
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]
    /// Any body mutation that keeps a valid CRC either fails to parse with an error or
    /// parses into a model the engine runs without panicking.
    #[test]
    fn mutated_bodies_never_panic(pos in 0usize..200, val in proptest::num::u8::ANY, cut in 0usize..300) {
        let b = good();
        let mut body = b[HEADER_LEN..].to_vec();
        let p = pos % body.len();
        body[p] = val;
        body.truncate(cut.max(1).min(body.len()));
        let mut m = Header::for_body(&body).unwrap().to_bytes().to_vec();
        m.extend_from_slice(&body);
        if let Ok(model) = Model::parse(&m) {
            let mut arena = vec![0i8; model.arena_len()];
            let x = vec![0i8; model.body().input.len()];
            let _ = Engine::new(&model).run(&x, &mut arena);
        }
    }
}

/// A version 1 header for `body` (the fuzzers found these cases in version 1 blobs).
fn v1_header(body: &[u8]) -> Vec<u8> {
    let header = Header {
        version: 1,
        ..Header::for_body(body).unwrap()
    };
    header.to_bytes().to_vec()
}

/// Found by `cargo fuzz` (parse_run, first run): a global-pool layer whose requant shift
/// overflowed, because `Requant` was deserialized without validation. Now a parse error.
#[test]
fn fuzz_regression_invalid_requant_shift() {
    let crash: [u8; 47] = [
        69, 110, 7, 77, 45, 0, 66, 0, 227, 0, 0, 0, 165, 188, 156, 124, 1, 0, 0, 0, 0, 0, 165, 189,
        156, 124, 1, 0, 0, 0, 255, 80, 0, 171, 171, 171, 171, 171, 128, 156, 1, 4, 124, 47, 0, 171,
        50,
    ];
    let mut blob = v1_header(&crash);
    blob.extend_from_slice(&crash);
    if let Ok(model) = Model::parse(&blob) {
        let mut arena = vec![0i8; model.arena_len()];
        let x = vec![0i8; model.body().input.len()];
        let _ = Engine::new(&model).run(&x, &mut arena);
    }
}

/// Found by `cargo fuzz` (second run): a dense layer with a bias near `i32::MAX` overflowed
/// the accumulator. Such models are now refused at parse time.
#[test]
fn fuzz_regression_accumulator_overflow() {
    let crash: &[u8] = &[
        69, 77, 1, 66, 0, 0, 0, 227, 79, 0, 0, 0, 165, 188, 156, 124, 4, 4, 1, 128, 171, 46, 0, 0,
        0, 171, 171, 171, 171, 171, 171, 171, 171, 171, 171, 171, 0, 0, 128, 62, 3, 0, 3, 3, 1, 9,
        1, 1, 1, 1, 2, 18, 247, 248, 249, 250, 251, 252, 253, 254, 255, 0, 1, 2, 3, 4, 5, 6, 7, 8,
        18, 3, 0, 0, 0, 0, 0, 0, 64, 2, 253, 255, 255, 255, 0, 0, 0, 64, 2, 128, 128, 127, 3, 2, 2,
        253, 2, 0, 0, 0, 0, 5, 7, 56, 254, 255, 0, 1, 2, 254, 255, 0, 1, 2, 254, 255, 0, 1, 2, 254,
        255, 0, 1, 2, 254, 255, 0, 254, 2, 1, 255, 0, 1, 2, 254, 255, 0, 1, 2, 254, 255, 0, 1, 2,
        254, 255, 0, 1, 2, 254, 255, 0, 1, 2, 254, 255, 0, 1, 2, 254, 63, 1, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 1, 0, 0, 0, 0, 0, 0, 64, 2, 1, 0, 0, 0, 0, 0, 0, 64, 2, 1, 0,
        0, 0, 0, 0, 0, 64, 2, 1, 0, 0, 128, 0, 0, 0, 64, 2, 1, 0, 0, 0, 0, 0, 0, 64, 2, 5, 128,
        127,
    ];
    let mut blob = v1_header(crash);
    blob.extend_from_slice(crash);
    if let Ok(model) = Model::parse(&blob) {
        let mut arena = vec![0i8; model.arena_len()];
        let x = vec![0i8; model.body().input.len()];
        let _ = Engine::new(&model).run(&x, &mut arena);
    }
}
