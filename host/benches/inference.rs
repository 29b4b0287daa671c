//! One 48x48 inference: the `shared/` engine on the blob vs tract on the int8 ONNX, same
//! model, same images, same run. The model folder comes from `$EMOEDGE_BENCH_MODEL`
//! (default `models/edge` at the repository root); without one, the bench says so and
//! measures nothing.

use criterion::{Criterion, criterion_group, criterion_main};
use emoedge_runtime::{TractModel, engine_logits};
use std::path::PathBuf;

fn bench(c: &mut Criterion) {
    let dir = std::env::var_os("EMOEDGE_BENCH_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../models/edge")));
    let Ok(bytes) = std::fs::read(dir.join(emoedge_runtime::model_dir::BLOB)) else {
        eprintln!(
            "no model at {}: set EMOEDGE_BENCH_MODEL to a model folder",
            dir.display()
        );
        return;
    };
    let model = emoedge_core::Model::parse(&bytes).expect("blob parses");
    let tract = TractModel::load(
        &dir.join(emoedge_runtime::model_dir::ONNX),
        model.body().output_scale,
        model.output_zero_point(),
        model.labels().len(),
    )
    .expect("onnx loads");
    // A real face-like input: a smooth gradient is enough for timing (no data dependence).
    let face: [u8; 2304] = std::array::from_fn(|i| ((i % 48) * 3 + (i / 48) * 2) as u8);
    let mut arena = vec![0i8; model.arena_len()];
    let mut g = c.benchmark_group("infer_48x48");
    g.bench_function("engine", |b| {
        b.iter(|| engine_logits(&model, &mut arena, std::hint::black_box(&face)).unwrap())
    });
    g.bench_function("tract_int8", |b| {
        b.iter(|| tract.logits(std::hint::black_box(&face)).unwrap())
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
