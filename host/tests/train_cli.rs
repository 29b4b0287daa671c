//! `emoedge train` as a user runs it: killed with SIGKILL mid-run, then `--resume`d, it ends
//! exactly where an uninterrupted run ends (same per-epoch losses and accuracies); distilling
//! from a teacher, it resumes from its cached targets even when the teacher is gone.

use emoedge_test_support::{tool, write_split};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// A temporary folder holding `data/train` (`per_class` images a class) and `data/test`.
fn dataset(per_class: usize) -> (tempfile::TempDir, std::path::PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    write_split(&data.join("train"), per_class, 0);
    write_split(&data.join("test"), 5, 3);
    (t, data)
}

fn train(data: &Path, out: &Path, resume: bool) -> Command {
    let mut c = tool(
        env!("CARGO_BIN_EXE_emoedge"),
        &[
            "train", "--epochs", "4", "--batch", "16", "--seed", "9", "--data",
        ],
    );
    c.arg(data).arg("--out").arg(out);
    if resume {
        c.arg("--resume");
    }
    c
}

fn learned(run: &Path) -> Vec<String> {
    // metrics.csv without the wall-clock columns (train_seconds, images_per_s).
    std::fs::read_to_string(run.join("metrics.csv"))
        .unwrap()
        .lines()
        .map(|l| l.split(',').take(6).collect::<Vec<_>>().join(","))
        .collect()
}

#[test]
fn sigkill_then_resume_matches_an_uninterrupted_run() {
    let (t, data) = dataset(40);
    let (a, b) = (t.path().join("a"), t.path().join("b"));
    assert!(train(&data, &a, false).output().unwrap().status.success());

    let mut child = train(&data, &b, false)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let state = b.join("ckpt/state.json");
    let t0 = Instant::now();
    // Kill as soon as epoch 1 is checkpointed, i.e. somewhere inside epoch 2.
    loop {
        let done = std::fs::read_to_string(&state)
            .ok()
            .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok());
        if done.is_some_and(|v| v["epochs_done"].as_u64() == Some(1)) {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(300),
            "epoch 1 never finished"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    assert!(
        !child.wait().unwrap().success(),
        "the run finished before it could be killed"
    );
    let out = train(&data, &b, true).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(learned(&a), learned(&b));
    assert_eq!(learned(&b).len(), 5);
}

fn emoedge(args: &[&str], paths: &[(&str, &Path)]) -> std::process::Output {
    let mut c = tool(env!("CARGO_BIN_EXE_emoedge"), args);
    for (flag, p) in paths {
        c.arg(flag).arg(p);
    }
    c.output().unwrap()
}

fn ok(out: &std::process::Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{err}");
    err
}

fn failure(out: &std::process::Output) -> String {
    assert!(!out.status.success(), "expected a failure");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn distilled_run_resumes_from_its_cached_targets() {
    let (t, data) = dataset(20);
    let base = ["train", "--batch", "16", "--seed", "5", "--epochs"];
    let teacher = t.path().join("teacher");
    ok(&emoedge(
        &[&base[..], &["1"]].concat(),
        &[("--data", &data), ("--out", &teacher)],
    ));
    let student = |out: &Path, extra: &[&str]| {
        emoedge(
            &[&base[..], &["2", "--teacher-weight", "0.4"], extra].concat(),
            &[("--data", &data), ("--out", out), ("--teacher", &teacher)],
        )
    };
    let e = failure(&emoedge(
        &[&base[..], &["1", "--teacher-weight", "1.5"]].concat(),
        &[
            ("--data", &data),
            ("--out", &t.path().join("c")),
            ("--teacher", &teacher),
        ],
    ));
    assert!(e.contains("--teacher-weight 1.5"), "{e}");
    // Uninterrupted reference, then the same run stopped after epoch 1.
    let (a, b) = (t.path().join("a"), t.path().join("b"));
    let log = ok(&student(&a, &[]));
    assert!(log.contains("teachers together: test"), "{log}");
    ok(&student(&b, &["--stop-after", "1"]));
    let cache = b.join("teacher.bin");
    assert_eq!(
        std::fs::metadata(&cache).unwrap().len(),
        12 + 140 * 7 * 4 + 4,
        "one row of 7 probabilities per training image, and a CRC"
    );
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(b.join("train.json")).unwrap()).unwrap();
    assert!((cfg["distill"]["weight"].as_f64().unwrap() - 0.4).abs() < 1e-6);
    assert!(
        failure(&student(&b, &[])).contains("already holds a run"),
        "a fresh run must not overwrite a run folder"
    );

    // The teacher is gone: the resumed run uses the cache and ends where `a` ended.
    std::fs::rename(&teacher, t.path().join("moved")).unwrap();
    let resume = |extra: &[&str]| {
        emoedge(
            &[&["train", "--resume"], extra].concat(),
            &[("--data", &data), ("--out", &b)],
        )
    };
    let log = ok(&resume(&[]));
    assert!(log.contains("teacher targets from"), "{log}");
    assert_eq!(learned(&a), learned(&b));
    assert_eq!(learned(&b).len(), 3);

    // Teachers are fixed for a run; a damaged cache is named, not used.
    let e = failure(&emoedge(
        &["train", "--resume"],
        &[("--data", &data), ("--out", &b), ("--teacher", &a)],
    ));
    assert!(e.contains("keeps the teachers"), "{e}");
    let bytes = std::fs::read(&cache).unwrap();
    std::fs::write(&cache, &bytes[..bytes.len() - 3]).unwrap();
    let e = failure(&resume(&["--epochs", "3"]));
    assert!(e.contains("teacher.bin") && e.contains("damaged"), "{e}");
}

#[test]
fn warm_start_and_reused_teacher_targets() {
    let (t, data) = dataset(20);
    let base = ["train", "--batch", "16", "--seed", "5", "--epochs"];
    let dir = |n: &str| t.path().join(n);
    ok(&emoedge(
        &[&base[..], &["1"]].concat(),
        &[("--data", &data), ("--out", &dir("teacher"))],
    ));
    ok(&emoedge(
        &[&base[..], &["1"]].concat(),
        &[
            ("--data", &data),
            ("--out", &dir("a")),
            ("--teacher", &dir("teacher")),
        ],
    ));
    // b starts from a's weights and a's cached targets; --stop-after 0 leaves its start.
    let log = ok(&emoedge(
        &[&base[..], &["2", "--stop-after", "0"]].concat(),
        &[
            ("--data", &data),
            ("--out", &dir("b")),
            ("--teacher", &dir("teacher")),
            ("--teacher-cache", &dir("a").join("teacher.bin")),
            ("--init", &dir("a")),
        ],
    ));
    assert!(log.contains("teacher targets on train from"), "{log}");
    let read = |p: std::path::PathBuf| std::fs::read(p).unwrap();
    assert_eq!(
        read(dir("b").join("teacher.bin")),
        read(dir("a").join("teacher.bin"))
    );
    // The run starts from a's weights: its epoch-0 checkpoint scores exactly as a does.
    let device = burn::prelude::Device::flex();
    let hidden = indicatif::ProgressBar::hidden();
    let (test, _) = emoedge::data::load_split(&data.join("test"), &hidden).unwrap();
    let (cfg, a_model) = emoedge::train::run_dir::load_run(&dir("a"), &device).unwrap();
    let start = emoedge::train::run_dir::load_module(
        cfg.init(&device),
        &dir("b").join("ckpt/epoch-0000.model.bpk"),
    )
    .unwrap();
    let fresh = cfg.init(&device);
    let score = |m| emoedge::eval::predict::evaluate_loss(m, &test, &device);
    assert_eq!(score(&start), score(&a_model));
    assert_ne!(
        score(&fresh),
        score(&a_model),
        "the check can tell weights apart"
    );
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir("b").join("train.json")).unwrap())
            .unwrap();
    let sha = cfg["init"]["sha256"].as_str().unwrap().to_owned();
    assert_eq!(sha.len(), 64);
    // The teachers' weights are recorded too, so a later --teacher-cache can check them.
    let teacher_sha = cfg["distill"]["teacher_sha256"].as_array().unwrap();
    assert_eq!(teacher_sha.len(), 1);
    assert_eq!(teacher_sha[0].as_str().unwrap().len(), 64);

    // The cache must come from the same teachers; the warm start from the same network.
    let e = failure(&emoedge(
        &[&base[..], &["1"]].concat(),
        &[
            ("--data", &data),
            ("--out", &dir("c")),
            ("--teacher", &dir("a")),
            ("--teacher-cache", &dir("a").join("teacher.bin")),
        ],
    ));
    assert!(e.contains("was made by teachers"), "{e}");
    let e = failure(&emoedge(
        &[&base[..], &["1", "--arch", "edge-wide"]].concat(),
        &[
            ("--data", &data),
            ("--out", &dir("d")),
            ("--init", &dir("a")),
        ],
    ));
    assert!(e.contains("holds a Edge network"), "{e}");

    let e = failure(&emoedge(
        &[&base[..], &["1"]].concat(),
        &[
            ("--data", &data),
            ("--out", &dir("e")),
            ("--init", &dir("b")),
        ],
    ));
    assert!(
        e.contains("reading weights") && e.contains("model.bpk"),
        "{e}"
    );
}

#[test]
fn average_writes_a_model_folder_that_eval_takes() {
    let (t, data) = dataset(20);
    let run = t.path().join("run");
    ok(&emoedge(
        &["train", "--batch", "16", "--seed", "3", "--epochs", "3"],
        &[("--data", &data), ("--out", &run)],
    ));
    let avg = t.path().join("avg");
    let average = |epochs: &str, out: &Path| {
        emoedge(
            &["average", run.to_str().unwrap(), "--epochs", epochs],
            &[("--data", &data), ("--out", out)],
        )
    };
    let out = emoedge(
        &[
            "average",
            run.to_str().unwrap(),
            "--epochs",
            "2-3",
            "--bn-plain",
        ],
        &[("--data", &data), ("--out", &avg)],
    );
    let log = ok(&out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("average of epochs 2-3: test"), "{stdout}");
    assert!(stdout.contains("before: "), "{stdout}");
    assert!(
        log.contains("from 9 training batches"),
        "140 images / 16: {log}"
    );
    let rec: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(avg.join("average.json")).unwrap()).unwrap();
    assert_eq!(rec["checkpoints_sha256"].as_array().unwrap().len(), 2);
    assert_eq!(rec["bn_batches"], 9);
    assert_eq!(rec["bn_plain"], true);
    for f in ["config.json", "train.json", "model.bpk", "metrics.csv"] {
        assert!(avg.join(f).exists(), "{f}");
    }
    let out = emoedge(
        &["eval"],
        &[("--model", &avg), ("--data", &data.join("test"))],
    );
    ok(&out);
    // The folder's weights, re-read by eval, score what average measured on them.
    let report = String::from_utf8_lossy(&out.stdout);
    let want = format!(
        "accuracy {:.4} (35 images)",
        rec["test_accuracy"].as_f64().unwrap()
    );
    assert!(report.contains(&want), "{want} not in {report}");

    // Without --epochs: the folder's own weights, statistics redone (works on a model
    // folder without ckpt/, such as the one just written).
    let again = t.path().join("again");
    let out = emoedge(
        &["average", avg.to_str().unwrap()],
        &[("--data", &data), ("--out", &again)],
    );
    ok(&out);
    let rec2: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(again.join("average.json")).unwrap())
            .unwrap();
    assert!(rec2["first_epoch"].is_null(), "{rec2}");
    assert_eq!(
        rec2["before_test_accuracy"], rec["test_accuracy"],
        "the folder's weights scored before what average measured when writing them"
    );

    // quantize writes over a model folder it wrote before, never over a training run.
    let quantize = |out: &Path| {
        emoedge(
            &["quantize", "--calib", "20"],
            &[("--model", &avg), ("--data", &data), ("--out", out)],
        )
    };
    let int8 = t.path().join("int8");
    ok(&quantize(&int8));
    ok(&quantize(&int8));
    assert!(int8.join("model.blob").is_file());
    let e = failure(&quantize(&run));
    assert!(e.contains("holds the folder `ckpt`"), "{e}");
    assert!(run.join("ckpt").is_dir() && run.join("metrics.csv").is_file());

    // Refusals name what is wrong.
    assert!(failure(&average("2-3", &avg)).contains("already holds a model"));
    assert!(failure(&average("2-5", &t.path().join("x"))).contains("finished 3 epochs"));
    assert!(failure(&average("3-2", &t.path().join("x"))).contains("FIRST must not exceed LAST"));
    std::fs::remove_file(run.join("ckpt/epoch-0002.model.bpk")).unwrap();
    let e = failure(&average("2-3", &t.path().join("x")));
    assert!(e.contains("epoch-0002.model.bpk"), "{e}");
    assert!(!t.path().join("x").join("model.bpk").exists());
}
