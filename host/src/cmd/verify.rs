//! `emoedge verify`: proves on the host that every deployed form of a model is as accurate
//! as the trained one, and that the artifacts are the ones that were made together.

use super::eval::Form;
use super::{Outcome, progress};
use crate::data::load_split;
use crate::inference::{TractModel, engine_logits, parse_blob};
use crate::metrics::Confusion;
use crate::training::{load_run, predict};
use crate::verify::{artifact_hashes, compare_blobs};
use anyhow::{Context, Result, bail};
use emoedge_core::model_files;
use emoedge_core::{Emotion, NUM_CLASSES};
use rayon::prelude::*;
use serde::Serialize;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Model folder written by `quantize` [default: models/edge]
    #[arg(long, default_value = "models/edge")]
    model: PathBuf,
    /// Folder of <class>/*.png [default: $EMOEDGE_DATA/fer2013/test]
    #[arg(long)]
    data: Option<PathBuf>,
    /// A blob read back from a device: must equal the shipped one byte for byte.
    #[arg(long)]
    blob: Option<PathBuf>,
    /// Largest allowed accuracy drop of an int8 form below float, in percentage points.
    #[arg(long, default_value_t = 1.0)]
    max_drop: f64,
    /// Smallest allowed label agreement between tract and the engine.
    #[arg(long, default_value_t = 0.999)]
    min_agree: f64,
    /// Largest allowed logit difference between tract and the engine, in LSB: 1, the
    /// design's bar. Models quantized with `--scales exact` (the default)
    /// measure 0; the older plain scales reached 2-3 LSB, because tract rounds the
    /// requantization product in f32 (BENCHMARKS.md).
    #[arg(long, default_value_t = 1)]
    max_lsb: u32,
    /// Write the full report as JSON here (atomically).
    #[arg(long)]
    json: Option<PathBuf>,
    /// Also run the blob on the MCU firmware in QEMU on this many images (spread over the
    /// data) and require its logits to equal the engine's.
    #[arg(long, value_name = "N", num_args = 0..=1, default_missing_value = "50")]
    mcu: Option<usize>,
    /// Firmware ELF for --mcu.
    #[arg(long, default_value = super::flash::DEFAULT_FIRMWARE)]
    firmware: PathBuf,
}

#[derive(Serialize)]
struct FormReport {
    form: Form,
    accuracy: f64,
    recall: Vec<(&'static str, f64)>,
}

#[derive(Serialize)]
struct Disagreement {
    path: PathBuf,
    truth: &'static str,
    float: Option<&'static str>,
    tract: &'static str,
    engine: &'static str,
    max_lsb: u32,
}

#[derive(Serialize)]
struct Report {
    model: PathBuf,
    data: PathBuf,
    images: usize,
    skipped: usize,
    weights_sha256: String,
    forms: Vec<FormReport>,
    agreement_tract_engine: f64,
    agreement_float_tract: Option<f64>,
    max_lsb_tract_engine: u32,
    logits_off_by_more_than_tolerance: usize,
    /// Images on which the QEMU firmware equalled the engine, of those run (with --mcu).
    mcu_equal: Option<(usize, usize)>,
    disagreements: Vec<Disagreement>,
    failures: Vec<String>,
}

fn name(i: u8) -> &'static str {
    Emotion::from_index(i as usize).map_or("?", |e| e.name())
}

pub fn run(a: Args) -> Result<Outcome> {
    let data = match a.data {
        Some(d) => d,
        None => emoedge_core::paths::data_subdir("fer2013")?.join("test"),
    };
    let mut failures = Vec::new();

    // 1. The artifacts themselves.
    let blob_path = a.model.join(model_files::BLOB);
    let blob =
        std::fs::read(&blob_path).with_context(|| format!("reading {}", blob_path.display()))?;
    let hashes = artifact_hashes(&a.model)?;
    eprintln!("weights sha256: {}", hashes.summary());
    failures.extend(hashes.failures());
    if let Some(dev) = &a.blob {
        let read_back = std::fs::read(dev).with_context(|| format!("reading {}", dev.display()))?;
        if let Some(diff) = compare_blobs(&blob, &read_back) {
            failures.push(format!(
                "device blob {} differs from {}: {diff}",
                dev.display(),
                blob_path.display()
            ));
        } else {
            eprintln!(
                "device blob {} is byte-identical to the shipped one",
                dev.display()
            );
        }
    }

    // 2. Every form over the data.
    let model = parse_blob(&blob, &blob_path)?;
    let (ds, skipped) = load_split(&data, &progress::bar("decode", 0))?;
    if ds.is_empty() {
        bail!("{} holds no readable images", data.display());
    }
    let has_float =
        a.model.join(model_files::WEIGHTS).exists() && a.model.join(model_files::CONFIG).exists();
    let float_pred: Option<Vec<u8>> = if has_float {
        let device = crate::backend::device();
        let (_, fm) = load_run(&a.model, &device)?;
        let pb = progress::bar("float", ds.len() as u64);
        let z = predict(&fm, &ds, &device, &|n| pb.inc(n as u64));
        pb.finish_and_clear();
        Some(
            z.iter()
                .map(|z| emoedge_core::emotion::argmax(z).unwrap_or(0) as u8)
                .collect(),
        )
    } else {
        eprintln!(
            "no float weights in {}: comparing the int8 forms only",
            a.model.display()
        );
        None
    };
    let tract = TractModel::load(
        &a.model.join(model_files::ONNX),
        model.body().output_scale,
        model.output_zero_point(),
    )?;
    let pb = progress::bar("int8", ds.len() as u64);
    let logits: Vec<([i8; NUM_CLASSES], [i8; NUM_CLASSES])> = (0..ds.len())
        .into_par_iter()
        .map_init(
            || vec![0i8; model.arena_len()],
            |arena, i| {
                let t = tract.logits(ds.image(i))?;
                let e = engine_logits(&model, arena, ds.image(i))?;
                pb.inc(1);
                Ok((t, e))
            },
        )
        .collect::<Result<_>>()?;
    pb.finish_and_clear();
    let argmax = |z: &[i8]| emoedge_core::emotion::argmax(z).unwrap_or(0) as u8;
    let tract_pred: Vec<u8> = logits.iter().map(|(t, _)| argmax(t)).collect();
    let engine_pred: Vec<u8> = logits.iter().map(|(_, e)| argmax(e)).collect();
    let lsb: Vec<u32> = logits
        .iter()
        .map(|(t, e)| {
            t.iter()
                .zip(e)
                .map(|(a, b)| (*a as i32 - *b as i32).unsigned_abs())
                .max()
                .unwrap_or(0)
        })
        .collect();

    // 3. The figures.
    let mut forms = Vec::new();
    let mut acc = |form, pred: &[u8]| {
        let c = Confusion::from_pairs(&ds.labels, pred);
        let r = FormReport {
            form,
            accuracy: c.accuracy(),
            recall: c.per_class().iter().map(|m| (m.class, m.recall)).collect(),
        };
        forms.push(r);
    };
    if let Some(p) = &float_pred {
        acc(Form::Float, p);
    }
    acc(Form::Tract, &tract_pred);
    acc(Form::Engine, &engine_pred);
    let agree = |a: &[u8], b: &[u8]| {
        a.iter().zip(b).filter(|(x, y)| x == y).count() as f64 / a.len() as f64
    };
    let agreement_tract_engine = agree(&tract_pred, &engine_pred);
    let agreement_float_tract = float_pred.as_ref().map(|f| agree(f, &tract_pred));
    let max_lsb = lsb.iter().copied().max().unwrap_or(0);
    let over = lsb.iter().filter(|&&d| d > a.max_lsb).count();
    let disagreements: Vec<Disagreement> = (0..ds.len())
        .filter(|&i| {
            tract_pred[i] != engine_pred[i]
                || lsb[i] > a.max_lsb
                || float_pred.as_ref().is_some_and(|f| f[i] != tract_pred[i])
        })
        .map(|i| Disagreement {
            path: ds.paths[i].clone(),
            truth: name(ds.labels[i]),
            float: float_pred.as_ref().map(|f| name(f[i])),
            tract: name(tract_pred[i]),
            engine: name(engine_pred[i]),
            max_lsb: lsb[i],
        })
        .collect();

    // 4. The table.
    println!(
        "{} images from {} ({} skipped)",
        ds.len(),
        data.display(),
        skipped.len()
    );
    print!("{:>8} {:>9} |", "form", "accuracy");
    for e in Emotion::ALL {
        print!(" {:>6}", &e.name()[..6.min(e.name().len())]);
    }
    println!("   (recall per class)");
    for f in &forms {
        print!(
            "{:>8} {:>8.2}% |",
            format!("{:?}", f.form).to_lowercase(),
            f.accuracy * 100.0
        );
        for (_, r) in &f.recall {
            print!(" {:>5.1}%", r * 100.0);
        }
        println!();
    }
    println!(
        "label agreement tract/engine: {:.4}% ({} differ)",
        agreement_tract_engine * 100.0,
        tract_pred
            .iter()
            .zip(&engine_pred)
            .filter(|(a, b)| a != b)
            .count()
    );
    if let Some(ft) = agreement_float_tract {
        println!("label agreement float/tract:  {:.4}%", ft * 100.0);
    }
    println!(
        "largest logit difference tract/engine: {max_lsb} LSB ({over} images over {} LSB)",
        a.max_lsb
    );

    // MCU: the blob on the firmware in QEMU, on a sample.
    let mut mcu_equal = None;
    if let Some(n) = a.mcu {
        let sample = ds.subsample(n);
        let (_, got) = super::flash::run_frames(&a.firmware, &blob, &sample)?;
        let mut arena = vec![0i8; model.arena_len()];
        let mut equal = 0;
        for (i, g) in got.iter().enumerate() {
            equal += (*g == engine_logits(&model, &mut arena, sample.image(i))?) as usize;
        }
        println!(
            "MCU firmware in QEMU: {equal}/{} images with logits equal to the engine's",
            got.len()
        );
        if equal != got.len() {
            failures.push(format!(
                "the MCU firmware's logits differ from the engine's on {} images",
                got.len() - equal
            ));
        }
        mcu_equal = Some((equal, got.len()));
    }

    // 5. Tolerances.
    let find = |f: Form| forms.iter().find(|r| r.form == f).map(|r| r.accuracy);
    if let Some(fa) = find(Form::Float) {
        for f in [Form::Tract, Form::Engine] {
            let drop = (fa - find(f).unwrap_or(0.0)) * 100.0;
            if drop > a.max_drop {
                failures.push(format!(
                    "{f:?} accuracy is {drop:.2} pp below float (max {} pp)",
                    a.max_drop
                ));
            }
        }
    }
    if agreement_tract_engine < a.min_agree {
        failures.push(format!(
            "tract/engine label agreement {:.4}% is below {:.4}%",
            agreement_tract_engine * 100.0,
            a.min_agree * 100.0
        ));
    }
    if max_lsb > a.max_lsb {
        failures.push(format!(
            "a logit differs by {max_lsb} LSB between tract and the engine (max {})",
            a.max_lsb
        ));
    }
    if let Some(path) = &a.json {
        let report = Report {
            model: a.model.clone(),
            data,
            images: ds.len(),
            skipped: skipped.len(),
            weights_sha256: hashes.recorded(),
            forms,
            agreement_tract_engine,
            agreement_float_tract,
            max_lsb_tract_engine: max_lsb,
            logits_off_by_more_than_tolerance: over,
            mcu_equal,
            disagreements,
            failures: failures.clone(),
        };
        crate::atomic::write_ctx(path, serde_json::to_string_pretty(&report)?.as_bytes())?;
    }
    if !failures.is_empty() {
        bail!("verify failed: {}", failures.join("; "));
    }
    println!("verify passed");
    Ok(super::report_skipped(&skipped))
}
