//! FER2013 in the forms people download it, each built here from a few real images: the
//! other folder edition (`Angry`, `Disgust`, `Fear`, ..., colour JPEGs at 96x96) and the
//! original `fer2013.csv`. Each trains, a model evaluates the same on every form, and one
//! trained on the CSV quantizes and verifies from it.

use emoedge_test_support::data_dir;
use std::path::{Path, PathBuf};

/// The folder edition's class folders, in FER2013's label-code order (0 angry ... 6 neutral).
const FOLDERS: [&str; 7] = [
    "angry",
    "disgusted",
    "fearful",
    "happy",
    "sad",
    "surprised",
    "neutral",
];

/// One real image: its FER2013 label code, its row in `fer2013.csv` and its PNG.
type Sample = (usize, usize, PathBuf);

fn emoedge(args: &[&str]) -> (bool, String) {
    emoedge_test_support::run_tool(env!("CARGO_BIN_EXE_emoedge"), args)
}

/// The real images used: `first + code` of each class of a FER2013 split (a different count
/// for each class, so that a class read as another shows in the counts), as (code, row,
/// path), in FER2013's own label order (0 angry ... 6 neutral).
fn sample(split: &str, first: usize) -> Vec<Sample> {
    let fer = data_dir().join("fer2013").join(split);
    assert!(fer.is_dir(), "{} missing: set EMOEDGE_DATA", fer.display());
    let mut out = Vec::new();
    for (code, class) in FOLDERS.iter().enumerate() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(fer.join(class))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        for f in files.into_iter().take(first + code) {
            let row: usize = f.file_stem().unwrap().to_str().unwrap().parse().unwrap();
            out.push((code, row, f));
        }
    }
    out
}

/// The other folder edition's names, capitalised, with each image as a 96x96 colour JPEG
/// (gray in all three channels, so the model's input is the area-averaged original give or
/// take the JPEG's rounding).
fn folder_edition(root: &Path, split: &str, images: &[Sample]) {
    let names = [
        "Angry", "Disgust", "Fear", "Happy", "Sad", "Surprise", "Neutral",
    ];
    for (code, row, path) in images {
        let dir = root.join(split).join(names[*code]);
        std::fs::create_dir_all(&dir).unwrap();
        let gray = image::open(path).unwrap().into_luma8();
        let big = image::imageops::resize(&gray, 96, 96, image::imageops::FilterType::Nearest);
        let rgb = image::DynamicImage::ImageLuma8(big).into_rgb8();
        rgb.save(dir.join(format!("{row:06}.jpg"))).unwrap();
    }
}

/// `fer2013.csv` with the given rows (pixels as in the PNGs) and their `Usage`.
fn csv(path: &Path, rows: &[(&str, &[Sample])]) {
    let mut text = String::from("emotion,pixels,Usage\n");
    for (usage, images) in rows {
        for (code, _, path) in images.iter() {
            let px = image::open(path).unwrap().into_luma8().into_raw();
            let px: Vec<String> = px.iter().map(|v| v.to_string()).collect();
            text += &format!("{code},{},{usage}\n", px.join(" "));
        }
    }
    std::fs::write(path, text).unwrap();
}

/// A path as a command-line argument.
fn arg(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 temporary path")
}

/// Runs `emoedge ARGS --json JSON`, which must succeed, and returns the report it wrote.
fn report(args: &[&str], json: &Path) -> serde_json::Value {
    let args = [args, &["--json", arg(json)]].concat();
    let (ok, log) = emoedge(&args);
    assert!(ok, "{} failed:\n{log}", args[0]);
    serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap()
}

fn eval_json(model: &Path, data: &Path, extra: &[&str], json: &Path) -> serde_json::Value {
    let args = [&["eval", "--model", arg(model), "--data", arg(data)], extra].concat();
    report(&args, json)
}

#[test]
fn every_form_trains_and_evaluates_alike() {
    let t = tempfile::tempdir().unwrap();
    let (train, test) = (sample("train", 6), sample("test", 2));
    let folders = t.path().join("fer-folders");
    folder_edition(&folders, "train", &train);
    folder_edition(&folders, "test", &test);
    let table = t.path().join("fer2013.csv");
    csv(
        &table,
        &[
            ("Training", &train),
            ("PublicTest", &test),
            ("PrivateTest", &test[..7]),
        ],
    );

    for (data, run) in [(&folders, "run-folders"), (&table, "run-csv")] {
        let run = t.path().join(run);
        let (ok, log) = emoedge(&[
            "train",
            "--data",
            arg(data),
            "--out",
            arg(&run),
            "--epochs",
            "1",
            "--batch",
            "16",
        ]);
        assert!(ok, "train on {} failed:\n{log}", data.display());
        // Per class in the model's order: angry 6, disgusted 7, fearful 8, happy 9,
        // neutral 12, sad 10, surprised 11.
        assert!(
            log.contains("train: 63 images [6, 7, 8, 9, 12, 10, 11]; test: 35 images"),
            "{log}"
        );
    }

    // One model on the PNG test split, its CSV rows and the resized colour copies.
    let model = t.path().join("run-csv");
    let png_test = t.path().join("png-test");
    for (code, row, path) in &test {
        let class = FOLDERS[*code];
        std::fs::create_dir_all(png_test.join(class)).unwrap();
        std::fs::copy(path, png_test.join(class).join(format!("{row:06}.png"))).unwrap();
    }
    let png = eval_json(&model, &png_test, &[], &t.path().join("png.json"));
    let from_csv = eval_json(
        &model,
        &table,
        &["--split", "test"],
        &t.path().join("c.json"),
    );
    let private = eval_json(
        &model,
        &table,
        &["--split", "private"],
        &t.path().join("p.json"),
    );
    let colour = eval_json(&model, &folders.join("test"), &[], &t.path().join("f.json"));
    assert_eq!(png["images"], 35);
    assert_eq!(private["images"], 7);
    // The CSV holds the PNGs' pixels: the same predictions, so the same report.
    assert_eq!(png["accuracy"], from_csv["accuracy"]);
    assert_eq!(png["confusion"], from_csv["confusion"]);
    // Upscaled to 96x96 and back by area averaging, through JPEG: the same faces, near
    // enough that an untrained-for-long model gives almost all the same labels.
    assert_eq!(colour["images"], 35);
    let (a, b) = (
        png["accuracy"].as_f64().unwrap(),
        colour["accuracy"].as_f64().unwrap(),
    );
    assert!((a - b).abs() <= 3.0 / 35.0 + 1e-9, "{a} vs {b}");

    // Quantized with calibration from the CSV's Training rows, verified on its PublicTest
    // rows (bounds loosened for a one-epoch model: the check here is that every deployed
    // form ran on every row).
    let int8 = t.path().join("int8");
    let (ok, log) = emoedge(&[
        "quantize",
        "--model",
        arg(&model),
        "--out",
        arg(&int8),
        "--data",
        arg(&table),
        "--calib",
        "40",
    ]);
    assert!(ok, "quantize failed:\n{log}");
    let r = report(
        &[
            "verify",
            "--model",
            arg(&int8),
            "--data",
            arg(&table),
            "--split",
            "test",
            "--max-drop",
            "100",
            "--min-agree",
            "0",
            "--max-lsb",
            "255",
        ],
        &t.path().join("verify.json"),
    );
    assert_eq!(r["images"], 35, "{r}");
}

#[test]
fn a_broken_csv_is_named() {
    let t = tempfile::tempdir().unwrap();
    let bad = t.path().join("fer2013.csv");
    std::fs::write(&bad, "label,image\n0,1 2 3 4\n").unwrap();
    let (ok, log) = emoedge(&[
        "train",
        "--data",
        arg(&bad),
        "--out",
        arg(&t.path().join("r")),
        "--epochs",
        "1",
    ]);
    assert!(!ok);
    assert!(
        log.contains("fer2013.csv") && log.contains("label,image"),
        "{log}"
    );
}

/// Folders of one's own classes (FER2013's happy faces as `Smile`, neutral ones as
/// `no_smile`) train a two-class model whose names every host report and the model's
/// artifacts carry; a CSV of the same rows with `--classes` trains the same classes.
#[test]
fn own_classes_travel_with_the_model() {
    let t = tempfile::tempdir().unwrap();
    let (train, test) = (sample("train", 6), sample("test", 2));
    let pick = |images: &[Sample], code: usize| -> Vec<Sample> {
        images.iter().filter(|s| s.0 == code).cloned().collect()
    };
    let (happy, neutral) = (3, 6);
    let data = t.path().join("smiles");
    for (split, images) in [("train", &train), ("test", &test)] {
        for (folder, code) in [("Smile", happy), ("no_smile", neutral)] {
            let dir = data.join(split).join(folder);
            std::fs::create_dir_all(&dir).unwrap();
            for (_, row, path) in pick(images, code) {
                std::fs::copy(path, dir.join(format!("{row:06}.png"))).unwrap();
            }
        }
    }
    let run = t.path().join("run");
    let (ok, log) = emoedge(&[
        "train",
        "--data",
        arg(&data),
        "--out",
        arg(&run),
        "--epochs",
        "1",
        "--batch",
        "8",
    ]);
    assert!(ok, "train failed:\n{log}");
    // no_smile (neutral: 6 + 6) before smile (happy: 6 + 3), alphabetically.
    assert!(
        log.contains("network of 2 classes (no_smile, smile)"),
        "{log}"
    );
    assert!(
        log.contains("train: 21 images [12, 9]; test: 13 images"),
        "{log}"
    );

    let int8 = t.path().join("int8");
    let (ok, log) = emoedge(&[
        "quantize",
        "--model",
        arg(&run),
        "--out",
        arg(&int8),
        "--data",
        arg(&data),
        "--calib",
        "10",
    ]);
    assert!(ok, "quantize failed:\n{log}");
    let blob = std::fs::read(int8.join("model.blob")).unwrap();
    let model = emoedge_core::Model::parse(&blob).unwrap();
    assert_eq!(model.labels(), ["no_smile", "smile"]);
    let onnx = std::fs::read(int8.join("model.int8.onnx")).unwrap();
    let entry = b"emoedge.labels\x12\x0eno_smile,smile";
    assert!(
        onnx.windows(entry.len()).any(|w| w == entry),
        "the ONNX metadata names the classes"
    );

    let classes = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|m| m["class"].as_str().or(m[0].as_str()).unwrap().to_string())
            .collect()
    };
    for (model, form) in [(&run, "float"), (&int8, "engine"), (&int8, "tract")] {
        let json = t.path().join(format!("{form}.json"));
        let r = eval_json(model, &data.join("test"), &["--form", form], &json);
        assert_eq!(classes(&r["per_class"]), ["no_smile", "smile"], "{form}");
        assert_eq!(
            r["confusion"]["classes"],
            serde_json::json!(["no_smile", "smile"])
        );
    }
    let r = report(
        &[
            "verify",
            "--model",
            arg(&int8),
            "--data",
            arg(&data.join("test")),
            "--max-drop",
            "100",
            "--min-agree",
            "0",
            "--max-lsb",
            "255",
        ],
        &t.path().join("verify.json"),
    );
    for form in r["forms"].as_array().unwrap() {
        assert_eq!(classes(&form["recall"]), ["no_smile", "smile"], "{r}");
    }
    // The seven-emotion test split holds classes the model does not have: named, refused.
    let (ok, log) = emoedge(&[
        "eval",
        "--model",
        arg(&int8),
        "--data",
        arg(&data_dir().join("fer2013/test")),
    ]);
    assert!(
        !ok && log.contains("does not have (its classes: no_smile, smile)"),
        "{log}"
    );

    // The same faces as a CSV whose codes --classes names: 0 smile, 1 no_smile.
    let table = t.path().join("smiles.csv");
    let recode = |images: &[Sample]| -> Vec<Sample> {
        let mut v = pick(images, happy);
        v.iter_mut().for_each(|s| s.0 = 0);
        let mut n = pick(images, neutral);
        n.iter_mut().for_each(|s| s.0 = 1);
        v.extend(n);
        v
    };
    csv(
        &table,
        &[
            ("Training", &recode(&train)),
            ("PublicTest", &recode(&test)),
        ],
    );
    let run_csv = t.path().join("run-csv");
    let (ok, log) = emoedge(&[
        "train",
        "--data",
        arg(&table),
        "--classes",
        "smile,no_smile",
        "--out",
        arg(&run_csv),
        "--epochs",
        "1",
        "--batch",
        "8",
    ]);
    assert!(ok, "train on the CSV failed:\n{log}");
    assert!(
        log.contains("network of 2 classes (smile, no_smile)"),
        "{log}"
    );
    assert!(
        log.contains("train: 21 images [9, 12]; test: 13 images"),
        "{log}"
    );
    // eval reads the CSV's codes as the model's classes.
    let r = eval_json(
        &run_csv,
        &table,
        &["--split", "test"],
        &t.path().join("csv.json"),
    );
    assert_eq!(r["images"], 13);
    assert_eq!(classes(&r["per_class"]), ["smile", "no_smile"]);
    assert_eq!(r["per_class"][0]["support"], 5);
    // A folder dataset has no label codes to name.
    let (ok, log) = emoedge(&[
        "train",
        "--data",
        arg(&data),
        "--classes",
        "a,b",
        "--out",
        arg(&t.path().join("x")),
    ]);
    assert!(
        !ok && log.contains("--classes names a CSV's label codes"),
        "{log}"
    );
}
