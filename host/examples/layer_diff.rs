//! Where tract and the engine part: every layer's int8 output, compared element by element.
//!
//! `cargo run --release -p emoedge --example layer_diff -- MODEL_DIR SPLIT_DIR [IMAGES]`
//!
//! With `LAYER_DIFF_DUMP=1` it also prints tract's optimized first layers and, for the first
//! layer that differs (when it is a dense convolution), each differing output's exact
//! accumulator and product; with `LAYER_DIFF_SCALES=FILE` it writes the per-channel
//! requantization scales tract runs (`f32` bits, one line per layer it names `convN`).
//!
//! Why: `verify` compares logits only; when they differ by 2-3 LSB it cannot say which layer
//! started it, or whether the slips are rounding at near-ties (one step, rare) or a different
//! formula (many elements). This runs the engine step by step (`run_step`) and tract with
//! every layer's output (`x1`..`xN` in the exported ONNX) made a model output.

use anyhow::{Context, Result, bail};
use emoedge_core::engine::run_step;
use emoedge_core::preprocess::INPUT_LEN;
use emoedge_runtime::model_dir;
use std::path::PathBuf;
use tract_onnx::prelude::*;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(model_dir), Some(split)) = (args.get(1), args.get(2)) else {
        bail!("usage: layer_diff MODEL_DIR SPLIT_DIR [IMAGES]");
    };
    let images: usize = args.get(3).map_or(Ok(200), |s| s.parse())?;
    let model_dir = PathBuf::from(model_dir);
    let blob = emoedge_runtime::ModelDir::new(&model_dir).read_blob()?;
    let model = blob.model()?;
    let steps = model.steps();
    let names: Vec<String> = (0..=steps.len()).map(|i| format!("x{i}")).collect();
    let mut graph = tract_onnx::onnx().model_for_path(model_dir.join(model_dir::ONNX))?;
    graph.select_outputs_by_name(&names)?;
    let plan = graph.into_optimized()?.into_runnable()?;
    if let Some(path) = std::env::var_os("LAYER_DIFF_SCALES") {
        // tract's per-channel requantization scales, as it will run them.
        let mut out = String::new();
        for node in plan.model().nodes() {
            if let Some(layer) = node.name.strip_suffix(".scale.fix-rank")
                && let Some(k) = node.outputs[0].fact.konst.as_ref()
            {
                let v = k.cast_to::<f32>().map_err(|e| anyhow::anyhow!("{e:?}"))?;
                let v = v
                    .to_plain_array_view::<f32>()
                    .map_err(|e| anyhow::anyhow!("{e:?}"))?;
                let bits: Vec<String> = v.iter().map(|f| f.to_bits().to_string()).collect();
                out += &format!("{layer} {}\n", bits.join(" "));
            }
        }
        std::fs::write(path, out)?;
    }
    if std::env::var_os("LAYER_DIFF_DUMP").is_some() {
        for node in plan.model().nodes() {
            if node.name.starts_with("conv0") {
                println!("{} = {:?} {:?}", node.name, node.op, node.outputs[0].fact);
            }
        }
    }
    let (data, _) = emoedge::data::load_split(
        std::path::Path::new(split),
        &indicatif::ProgressBar::hidden(),
    )?;
    let n = images.min(data.len());
    if n == 0 {
        bail!("no images to compare in {split}");
    }
    // Per layer: elements compared, elements differing, largest difference.
    let mut stats = vec![(0usize, 0usize, 0i32); steps.len()];
    let mut scratch = vec![0i8; model.scratch_len()];
    for i in (0..data.len()).step_by((data.len() / n).max(1)).take(n) {
        let gray: &[u8; INPUT_LEN] = data.pixels[i * INPUT_LEN..(i + 1) * INPUT_LEN].try_into()?;
        let mut x = vec![0i8; INPUT_LEN];
        emoedge_core::preprocess::quantize_input(gray, (&mut x[..]).try_into()?);
        // The engine, one step at a time, every output kept.
        let mut outs: Vec<Vec<i8>> = Vec::new();
        for info in steps {
            let mut y = vec![0i8; info.output.len()];
            run_step(&info.step, outs.last().unwrap_or(&x), &mut y, &mut scratch)
                .map_err(|e| anyhow::anyhow!("{e:?}"))?;
            outs.push(y);
        }
        let input: Vec<f32> = gray.iter().map(|&p| p as f32 / 255.0).collect();
        let input = tract_ndarray::Array4::from_shape_vec((1, 1, 48, 48), input)?.into_tensor();
        let t = plan
            .run(tvec!(input.into()))
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        let t0 = t[0].cast_to::<i8>().map_err(|e| anyhow::anyhow!("{e:?}"))?;
        let t0 = t0
            .to_plain_array_view::<i8>()
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        let input_differs = t0.iter().zip(&x).filter(|(a, b)| a != b).count();
        if input_differs > 0 {
            println!("image {i}: {input_differs} input values differ");
        }
        let mut first_differing = usize::MAX;
        for (k, (info, ours)) in steps.iter().zip(&outs).enumerate() {
            let theirs = t[k + 1]
                .cast_to::<i8>()
                .map_err(|e| anyhow::anyhow!("{e:?}"))?;
            let theirs = theirs
                .to_plain_array_view::<i8>()
                .map_err(|e| anyhow::anyhow!("{e:?}"))?;
            let theirs = theirs.as_slice().context("not contiguous")?;
            let (h, w, c) = (
                info.output.h as usize,
                info.output.w as usize,
                info.output.c as usize,
            );
            // The engine is HWC, the ONNX NCHW.
            for ch in 0..c {
                for yy in 0..h {
                    for xx in 0..w {
                        let a = ours[(yy * w + xx) * c + ch] as i32;
                        let b = theirs[(ch * h + yy) * w + xx] as i32;
                        let s = &mut stats[k];
                        s.0 += 1;
                        if a != b {
                            if first_differing == usize::MAX {
                                first_differing = k;
                            }
                            if k == first_differing && std::env::var_os("LAYER_DIFF_DUMP").is_some()
                            {
                                let input = if k == 0 { &x } else { &outs[k - 1] };
                                explain(&steps[k].step, input, yy, xx, ch, a, b);
                            }
                            s.1 += 1;
                            s.2 = s.2.max((a - b).abs());
                        }
                    }
                }
            }
        }
    }
    println!("{n} images; per layer: elements differing / compared, largest difference");
    for (k, (info, s)) in steps.iter().zip(&stats).enumerate() {
        println!(
            "layer {k:>2} {:>10} {:>9} / {:>9}  max {}",
            format!("{:?}", info.output),
            s.1,
            s.0,
            s.2
        );
    }
    Ok(())
}

/// For a differing output of a dense convolution whose input both runtimes agree on: the
/// exact accumulator and product, and what each runtime made of it.
fn explain(
    step: &emoedge_core::model::Step,
    x: &[i8],
    y: usize,
    xx: usize,
    ch: usize,
    ours: i32,
    theirs: i32,
) {
    let emoedge_core::model::Step::Conv2d(p) = step else {
        return;
    };
    let (bias, rq) = p.channels.get(ch);
    let zp = p.input_zp as i32;
    let (ih, iw, ic) = (p.input.h as i32, p.input.w as i32, p.input.c as usize);
    let win = p.window;
    let mut acc = bias;
    for ky in 0..win.kh as i32 {
        for kx in 0..win.kw as i32 {
            let iy = y as i32 * win.sh as i32 + ky - win.pad[0] as i32;
            let ix = xx as i32 * win.sw as i32 + kx - win.pad[1] as i32;
            if !(0..ih).contains(&iy) || !(0..iw).contains(&ix) {
                continue;
            }
            for c in 0..ic {
                let wi =
                    ((ch * win.kh as usize + ky as usize) * win.kw as usize + kx as usize) * ic + c;
                let w = p.weights[wi] as i8 as i32;
                acc += w * (x[(iy * iw + ix) as usize * ic + c] as i32 - zp);
            }
        }
    }
    let r = rq.to_scale();
    println!(
        "ch {ch} ({y},{xx}): acc {acc} · {r} = {} (f32 {}); engine {ours}, tract {theirs}",
        acc as f64 * r,
        (acc as f32) * (r as f32)
    );
}
