//! Distillation targets: the class probabilities of trained "teacher" networks, averaged, as
//! part of each training image's target.
//!
//! Why: FER2013 gives one label per face, and many are disputed; a trained network's
//! probabilities say how ambiguous each face is (a fearful face that looks surprised), which
//! a small student learns from better than from the hard label alone ("born-again" networks,
//! Furlanello et al. 2018; an ensemble teacher is stronger than any of its members). The
//! teachers see each training image and its mirror, un-augmented, once before training; the
//! averaged probabilities are cached in the run folder (`teacher.bin`), so `--resume` neither
//! needs the teacher folders nor can drift if they change.

use crate::data::Dataset;
use crate::eval::predict::predict;
use crate::train::config::{Distill, read_train_config};
use crate::train::run_dir::{RunDir, load_run};
use anyhow::{Context, Result, bail};
use burn::prelude::Device;
use emoedge_core::emotion::softmax;
use indicatif::ProgressBar;
use std::path::{Path, PathBuf};

/// Magic of the cache file, then `u32` image count, then `count · classes` little-endian `f32`,
/// then the CRC-32 of everything before it: a flipped bit in a probability would otherwise
/// pass the range check and quietly change the targets of a resumed run.
const MAGIC: &[u8; 8] = b"EMOTEAC2";

/// Each image's class probabilities, averaged over `teachers` and over the image and its
/// mirror. `tick` is told how many images each forward pass finished. A teacher must
/// classify the data's classes, in the same order.
pub fn probabilities(
    teachers: &[PathBuf],
    data: &Dataset,
    device: &Device,
    tick: &dyn Fn(usize),
) -> Result<Vec<Vec<f32>>> {
    if teachers.is_empty() {
        bail!("no teacher models given");
    }
    let mirrored = data.mirrored();
    let mut sum = vec![vec![0f32; data.classes.len()]; data.len()];
    for dir in teachers {
        let (config, model) =
            load_run(dir, device).with_context(|| format!("loading teacher {}", dir.display()))?;
        if config.labels != data.classes {
            bail!(
                "teacher {} classifies {}; the data's classes are {}",
                dir.display(),
                config.labels.join(", "),
                data.classes.join(", ")
            );
        }
        for set in [data, &mirrored] {
            for (s, z) in sum.iter_mut().zip(predict(&model, set, device, tick)) {
                for (a, p) in s.iter_mut().zip(softmax(&z)) {
                    *a += p;
                }
            }
        }
    }
    let n = (2 * teachers.len()) as f32;
    for s in &mut sum {
        s.iter_mut().for_each(|a| *a /= n);
    }
    Ok(sum)
}

/// Share of images whose most probable class is their label.
pub fn accuracy(probs: &[Vec<f32>], data: &Dataset) -> f64 {
    let right = probs
        .iter()
        .zip(&data.labels)
        .filter(|(p, l)| emoedge_core::emotion::argmax(p) == Some(**l as usize))
        .count();
    right as f64 / data.len().max(1) as f64
}

/// Writes the probabilities atomically.
pub fn save(path: &Path, probs: &[Vec<f32>]) -> Result<()> {
    let classes = probs.first().map_or(0, Vec::len);
    let mut bytes = Vec::with_capacity(12 + probs.len() * classes * 4);
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&(probs.len() as u32).to_le_bytes());
    for p in probs.iter().flatten() {
        bytes.extend_from_slice(&p.to_le_bytes());
    }
    let crc = emoedge_core::model::header::body_crc(&bytes);
    bytes.extend_from_slice(&crc.to_le_bytes());
    crate::sys::atomic::write_ctx(path, &bytes)
}

/// Reads probabilities cached for a training set of `expect` images of `classes` classes.
pub fn load(path: &Path, expect: usize, classes: usize) -> Result<Vec<Vec<f32>>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let Some((head, body)) = bytes.split_at_checked(12) else {
        bail!("{}: truncated ({} bytes)", path.display(), bytes.len());
    };
    if &head[..8] == b"EMOTEACH" {
        bail!(
            "{}: a teacher cache of an older format, without a checksum; delete it and give \
             the teacher folders (--teacher) to rebuild it",
            path.display()
        );
    }
    if &head[..8] != MAGIC {
        bail!("{}: not a teacher-probabilities file", path.display());
    }
    let Some((body, crc)) = body.split_last_chunk::<4>() else {
        bail!("{}: truncated ({} bytes)", path.display(), bytes.len());
    };
    let stored = u32::from_le_bytes(*crc);
    let actual = emoedge_core::model::header::body_crc(&bytes[..bytes.len() - 4]);
    if stored != actual {
        bail!(
            "{}: damaged (CRC-32 {actual:08x}, the file says {stored:08x})",
            path.display()
        );
    }
    let n = u32::from_le_bytes(head[8..12].try_into().expect("4 bytes")) as usize;
    if n != expect {
        bail!(
            "{} holds probabilities for {n} images, the training set has {expect}",
            path.display()
        );
    }
    if body.len() != n * classes * 4 {
        bail!(
            "{}: {} bytes of probabilities, expected {} ({n} images of {classes} classes)",
            path.display(),
            body.len(),
            n * classes * 4
        );
    }
    let vals: Vec<f32> = body
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")))
        .collect();
    let rows: Vec<Vec<f32>> = vals.chunks_exact(classes).map(<[f32]>::to_vec).collect();
    if let Some(i) = rows
        .iter()
        .position(|r| r.iter().any(|p| !(0.0..=1.0).contains(p)))
    {
        bail!(
            "{}: image {i} has a probability outside 0..=1",
            path.display()
        );
    }
    Ok(rows)
}

/// Reads another run's `teacher.bin` for reuse. The file itself does not say whose
/// probabilities it holds, so the run's `train.json` (beside the file) must name the same
/// teachers as `d`: the same weights by SHA-256 where both runs recorded them, else (a run
/// from before the hashes were kept) the same folders, with a warning that the weights
/// could not be checked. `load` then checks that it covers `expect` images of `classes`
/// classes.
pub fn load_reused(
    file: &Path,
    d: &Distill,
    expect: usize,
    classes: usize,
) -> Result<Vec<Vec<f32>>> {
    let dir = file.parent().unwrap_or(Path::new("."));
    let cfg = read_train_config(&dir.join("train.json"))
        .with_context(|| format!("{} is not in a run folder", file.display()))?;
    let Some(theirs) = cfg.distill else {
        bail!("{} was made by a run without teachers", file.display());
    };
    let recorded = |t: &Distill| t.teacher_sha256.len() == t.teachers.len();
    if recorded(&theirs) && recorded(d) {
        if theirs.teacher_sha256 != d.teacher_sha256 {
            bail!(
                "{} was made by teachers {:?} with weights {:?}; this run's teachers {:?} hold {:?}",
                file.display(),
                theirs.teachers,
                short(&theirs.teacher_sha256),
                d.teachers,
                short(&d.teacher_sha256)
            );
        }
    } else {
        let same = |a: &Path, b: &Path| match (a.canonicalize(), b.canonicalize()) {
            (Ok(x), Ok(y)) => x == y,
            _ => a == b,
        };
        if theirs.teachers.len() != d.teachers.len()
            || !theirs
                .teachers
                .iter()
                .zip(&d.teachers)
                .all(|(a, b)| same(a, b))
        {
            bail!(
                "{} was made by teachers {:?}, this run names {:?}",
                file.display(),
                theirs.teachers,
                d.teachers
            );
        }
        eprintln!(
            "warning: {} records no teacher weights; it is reused because it names the same teacher folders, whose weights may have changed since",
            dir.join("train.json").display()
        );
    }
    load(file, expect, classes)
}

/// The first 12 hex digits of each hash, enough to tell weights apart in a message.
fn short(hashes: &[String]) -> Vec<&str> {
    hashes.iter().map(|h| &h[..h.len().min(12)]).collect()
}

/// Where [`teacher_targets`] may take the teachers' probabilities from instead of running
/// the teachers.
#[derive(Clone, Copy, Debug, Default)]
pub struct TeacherSource<'a> {
    /// A resumed run: its own cache.
    pub resume: bool,
    /// Another run's cache of the same teachers, for the training set.
    pub reuse: Option<&'a Path>,
}

/// The teachers' averaged probabilities on the training images: from the run's cache when
/// resuming, else computed (reporting each teacher's and the ensemble's `test`
/// accuracy through `note`, so the table of experiments can say what the student learnt
/// from) and cached; with `reuse`, the training-set part comes from another run's cache of
/// the same teachers. `bar(what, len)` gives the progress bar of each pass.
#[allow(clippy::too_many_arguments)] // the run, its teachers, the data, and the two outlets
pub fn teacher_targets(
    run: &RunDir,
    d: &Distill,
    source: TeacherSource,
    (train_set, test_set): (&Dataset, &Dataset),
    device: &Device,
    bar: &dyn Fn(&str, u64) -> ProgressBar,
    note: &dyn Fn(&str),
) -> Result<Vec<Vec<f32>>> {
    let classes = train_set.classes.len();
    let cache = run.teacher_cache();
    if source.resume && cache.exists() {
        let probs = load(&cache, train_set.len(), classes)?;
        note(&format!("teacher targets from {}", cache.display()));
        return Ok(probs);
    }
    let mut ensemble = vec![vec![0f32; classes]; test_set.len()];
    for dir in &d.teachers {
        let pb = bar("teacher on test", 2 * test_set.len() as u64);
        let p = probabilities(std::slice::from_ref(dir), test_set, device, &|n| {
            pb.inc(n as u64)
        })?;
        pb.finish_and_clear();
        note(&format!(
            "teacher {}: test accuracy {:.2}% (flip-averaged float)",
            dir.display(),
            accuracy(&p, test_set) * 100.0
        ));
        for (e, q) in ensemble.iter_mut().zip(&p) {
            e.iter_mut().zip(q).for_each(|(a, b)| *a += b);
        }
    }
    let probs = match source.reuse {
        Some(file) => {
            let probs = load_reused(file, d, train_set.len(), classes)?;
            note(&format!(
                "teacher targets on train from {} (same teachers)",
                file.display()
            ));
            probs
        }
        None => {
            let pb = bar(
                "teachers on train",
                (2 * d.teachers.len() * train_set.len()) as u64,
            );
            let probs = probabilities(&d.teachers, train_set, device, &|n| pb.inc(n as u64))?;
            pb.finish_and_clear();
            probs
        }
    };
    note(&format!(
        "teachers together: test {:.2}%, train {:.2}% (weight {} of each target)",
        accuracy(&ensemble, test_set) * 100.0,
        accuracy(&probs, train_set) * 100.0,
        d.weight
    ));
    std::fs::create_dir_all(&run.0).with_context(|| format!("creating {}", run.0.display()))?;
    save(&cache, &probs)?;
    Ok(probs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_round_trips_and_rejects_damage() {
        let t = tempfile::tempdir().unwrap();
        let path = t.path().join("teacher.bin");
        let probs = vec![
            vec![0.1, 0.2, 0.3, 0.1, 0.1, 0.1, 0.1],
            vec![1.0, 0., 0., 0., 0., 0., 0.],
        ];
        save(&path, &probs).unwrap();
        assert_eq!(load(&path, 2, 7).unwrap(), probs);
        let e = load(&path, 2, 3).unwrap_err().to_string();
        assert!(e.contains("of 3 classes"), "{e}");
        let e = load(&path, 3, 7).unwrap_err().to_string();
        assert!(e.contains("2 images") && e.contains("has 3"), "{e}");
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 1]).unwrap();
        assert!(load(&path, 2, 7).unwrap_err().to_string().contains("CRC"));
        // A probability changed in range is caught by the CRC, not by the range check.
        let mut bad = bytes.clone();
        bad[12..16].copy_from_slice(&0.5f32.to_le_bytes());
        std::fs::write(&path, &bad).unwrap();
        assert!(
            load(&path, 2, 7)
                .unwrap_err()
                .to_string()
                .contains("damaged")
        );
        // A well-formed file with a probability out of range is refused by the range check.
        let mut out_of_range = probs.clone();
        out_of_range[0][0] = 2.0;
        save(&path, &out_of_range).unwrap();
        assert!(
            load(&path, 2, 7)
                .unwrap_err()
                .to_string()
                .contains("image 0")
        );
        std::fs::write(&path, b"short").unwrap();
        assert!(
            load(&path, 2, 7)
                .unwrap_err()
                .to_string()
                .contains("truncated")
        );
        let mut old = bytes.clone();
        old[..8].copy_from_slice(b"EMOTEACH");
        std::fs::write(&path, &old).unwrap();
        assert!(
            load(&path, 2, 7)
                .unwrap_err()
                .to_string()
                .contains("older format")
        );
    }

    /// A run folder in `dir` whose `train.json` names `d` and whose `teacher.bin` holds
    /// `probs`; returns the cache file.
    fn cached_run(dir: &Path, d: Distill, probs: &[Vec<f32>]) -> PathBuf {
        use crate::model::{Arch, ModelConfig};
        use crate::train::augment::AugmentConfig;
        std::fs::create_dir_all(dir).unwrap();
        let cfg = crate::train::config::TrainConfig::new(
            ModelConfig::for_arch(Arch::Edge),
            AugmentConfig::NONE,
        )
        .with_distill(Some(d));
        std::fs::write(dir.join("train.json"), serde_json::to_vec(&cfg).unwrap()).unwrap();
        let file = dir.join("teacher.bin");
        save(&file, probs).unwrap();
        file
    }

    #[test]
    fn reuse_needs_the_same_teacher_weights() {
        let t = tempfile::tempdir().unwrap();
        let teacher = t.path().join("teacher");
        std::fs::create_dir_all(&teacher).unwrap();
        std::fs::write(RunDir(teacher.clone()).weights(), b"weights one").unwrap();
        let probs = vec![vec![1.0 / 7.0; 7]; 3];
        let now = Distill::of(std::slice::from_ref(&teacher), 0.7).unwrap();
        assert_eq!(now.teacher_sha256.len(), 1);
        let file = cached_run(&t.path().join("a"), now.clone(), &probs);
        assert_eq!(load_reused(&file, &now, 3, 7).unwrap(), probs);

        // The teacher retrained in place: same folder, other weights.
        std::fs::write(RunDir(teacher.clone()).weights(), b"weights two").unwrap();
        let later = Distill::of(std::slice::from_ref(&teacher), 0.7).unwrap();
        let e = load_reused(&file, &later, 3, 7).unwrap_err().to_string();
        assert!(e.contains("with weights"), "{e}");

        // A run from before hashes were kept: the folder names decide.
        let legacy = Distill {
            teacher_sha256: vec![],
            ..now.clone()
        };
        let old = cached_run(&t.path().join("b"), legacy, &probs);
        assert_eq!(load_reused(&old, &later, 3, 7).unwrap(), probs);
        let other = Distill::of(&[t.path().join("a")], 0.7);
        assert!(other.is_err(), "a folder without model.bpk cannot teach");
        let elsewhere = Distill {
            teachers: vec![t.path().join("elsewhere")],
            ..later.clone()
        };
        let e = load_reused(&old, &elsewhere, 3, 7).unwrap_err().to_string();
        assert!(e.contains("this run names"), "{e}");

        // A run without teachers has no targets to lend.
        let none = t.path().join("c");
        std::fs::create_dir_all(&none).unwrap();
        let cfg = crate::train::config::TrainConfig::new(
            crate::model::ModelConfig::for_arch(crate::model::Arch::Edge),
            crate::train::augment::AugmentConfig::NONE,
        );
        std::fs::write(none.join("train.json"), serde_json::to_vec(&cfg).unwrap()).unwrap();
        save(&none.join("teacher.bin"), &probs).unwrap();
        let e = load_reused(&none.join("teacher.bin"), &now, 3, 7)
            .unwrap_err()
            .to_string();
        assert!(e.contains("without teachers"), "{e}");
    }
}
