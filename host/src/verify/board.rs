//! The model checked on a board's own chip ("validate on target"): `test` faces sent over
//! the board link ([`crate::mcu::link`]) to the firmware, which classifies each with the
//! flashed blob and answers its int8 logits and their cost; every logit is compared with
//! the host engine's on the same face.
//!
//! The board must hold the very blob of the model folder: its hello names the blob's
//! length, CRC and weights hash, and any difference stops the check before a face is sent.
//! A board that stops answering ends the run with what was measured so far in the report.

use crate::data::{Split, load_for_model};
use crate::mcu::Board;
use crate::mcu::link::BoardLink;
use anyhow::{Context, Result, bail};
use emoedge_core::labels::name_of;
use emoedge_core::link::{BlobId, CostUnit, ModelState, Request, Response};
use emoedge_core::model::{HEADER_LEN, Header};
use emoedge_core::preprocess::INPUT_LEN;
use emoedge_runtime::{ModelDir, engine_logits};
use indicatif::ProgressBar;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A check of a model on a board.
#[derive(Clone, Debug)]
pub struct BoardCheck {
    /// The board the user names; its hello must name the same.
    pub board: &'static Board,
    /// Faces to send, spread over the data; all of them when `None`.
    pub images: Option<usize>,
    /// How long to wait for the board's hello.
    pub hello_wait: Duration,
}

/// One face's answer.
#[derive(Clone, Debug, Serialize)]
pub struct FaceResult {
    /// The image file.
    pub path: PathBuf,
    /// Its class index.
    pub truth: u8,
    /// The class the board chose.
    pub board: u8,
    /// The class the host engine chose.
    pub host: u8,
    /// The board's logits equal the host engine's, every one.
    pub equal: bool,
    /// The board's logits.
    pub logits: Vec<i8>,
    /// The host engine's logits, when they differ from the board's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_logits: Option<Vec<i8>>,
    /// The inference's cost on the board, in its unit.
    pub cost: u64,
}

/// One layer's cost on the board.
#[derive(Clone, Debug, Serialize)]
pub struct LayerRow {
    /// The operation.
    pub op: String,
    /// Its multiply-accumulates.
    pub macs: u64,
    /// Its cost in the board's unit.
    pub cost: u64,
}

/// What the board said and answered.
#[derive(Clone, Debug, Serialize)]
pub struct BoardReport {
    /// What the link reached ("/dev/ttyACM0", "pico in rp2040js").
    pub link: String,
    /// The board's name, from its hello.
    pub board: String,
    /// Its core.
    pub core: String,
    /// Its clock, Hz.
    pub clock_hz: u32,
    /// Its firmware's version.
    pub firmware: String,
    /// The bytes of working memory its firmware has for a model.
    pub arena_len: u32,
    /// What its costs count.
    pub unit: CostUnit,
    /// The model folder.
    pub model: PathBuf,
    /// The data the faces came from.
    pub data: PathBuf,
    /// The class names.
    pub classes: Vec<String>,
    /// Faces meant to be sent.
    pub planned: usize,
    /// Each face answered, in order.
    pub faces: Vec<FaceResult>,
    /// The cost of each layer on the first face.
    pub profile: Vec<LayerRow>,
    /// Why the run ended before every planned face was answered.
    pub stopped: Option<String>,
}

impl BoardReport {
    /// Share of the answered faces the board classified right.
    pub fn accuracy(&self) -> f64 {
        self.share(|f| f.board == f.truth)
    }

    /// Share of the answered faces the host engine classified right.
    pub fn host_accuracy(&self) -> f64 {
        self.share(|f| f.host == f.truth)
    }

    /// Share of the answered faces whose label the board and the host agree on.
    pub fn agreement(&self) -> f64 {
        self.share(|f| f.board == f.host)
    }

    /// The faces whose logits differ from the host engine's.
    pub fn mismatches(&self) -> impl Iterator<Item = &FaceResult> {
        self.faces.iter().filter(|f| !f.equal)
    }

    /// The median cost of an inference.
    pub fn median_cost(&self) -> Option<u64> {
        let mut c: Vec<u64> = self.faces.iter().map(|f| f.cost).collect();
        c.sort_unstable();
        c.get(c.len() / 2).copied()
    }

    /// Every way the check failed: a face whose logits differ, a run cut short.
    pub fn failures(&self) -> Vec<String> {
        let mut out = Vec::new();
        let differ: Vec<_> = self.mismatches().collect();
        if let Some(first) = differ.first() {
            out.push(format!(
                "{} of {} faces have logits other than the host engine's, first {}",
                differ.len(),
                self.faces.len(),
                first.path.display()
            ));
        }
        if let Some(why) = &self.stopped {
            out.push(format!(
                "stopped after {} of {} faces: {why}",
                self.faces.len(),
                self.planned
            ));
        }
        out
    }

    fn share(&self, right: impl Fn(&FaceResult) -> bool) -> f64 {
        let n = self.faces.iter().filter(|f| right(f)).count();
        n as f64 / self.faces.len().max(1) as f64
    }
}

fn short_hash(h: &[u8; 32]) -> String {
    h[..6].iter().map(|b| format!("{b:02x}")).collect()
}

/// Runs the check over `link`: compares the board's blob with the model folder's, sends
/// the faces and compares every answer with the host engine. `progress` counts the faces.
/// Fails before any face is sent when the board is not the one named or holds another
/// blob; a board that stops answering later ends the run with [`BoardReport::stopped`].
pub fn check_board(
    link: &mut BoardLink,
    model_dir: &Path,
    data: &Path,
    split: Split,
    c: &BoardCheck,
    progress: &dyn Fn(u64) -> ProgressBar,
) -> Result<BoardReport> {
    let blob_file = ModelDir::new(model_dir).read_blob()?;
    let blob = blob_file.bytes();
    let model = blob_file.model()?;
    let header = Header::parse(&blob[..HEADER_LEN.min(blob.len())])
        .map_err(|e| anyhow::anyhow!("{}: {e}", blob_file.path().display()))?;
    let ours = BlobId::new(&header, &model);

    // The board and its blob, before any face is sent.
    let name = link.name().to_string();
    let hello = link.hello(c.hello_wait)?;
    if hello.board != c.board.name {
        bail!(
            "{name} says it is a {} board, not {}: name it with --board {}",
            hello.board,
            c.board.name,
            hello.board
        );
    }
    let flash_hint = format!(
        "flash it with `emoedge flash --board {} --model {}`",
        c.board.name,
        model_dir.display()
    );
    match hello.model {
        ModelState::Refused(why) => {
            bail!("{name} has no usable model ({why}); {flash_hint}")
        }
        ModelState::Ready(theirs) if theirs != ours => bail!(
            "{name} holds another model than {} (its blob: {} bytes, CRC {:#010x}, weights {}; \
             this one: {} bytes, CRC {:#010x}, weights {}); {flash_hint}",
            blob_file.path().display(),
            theirs.len,
            theirs.crc,
            short_hash(&theirs.weights_hash),
            ours.len,
            ours.crc,
            short_hash(&ours.weights_hash)
        ),
        ModelState::Ready(_) => {}
    }
    let mut report = BoardReport {
        link: name,
        board: hello.board.to_string(),
        core: hello.core.to_string(),
        clock_hz: hello.clock_hz,
        firmware: hello.firmware.to_string(),
        arena_len: hello.arena_len,
        unit: hello.unit,
        model: model_dir.to_path_buf(),
        data: data.to_path_buf(),
        classes: model.labels().iter().map(|s| s.to_string()).collect(),
        planned: 0,
        faces: Vec::new(),
        profile: Vec::new(),
        stopped: None,
    };

    let (ds, _) = load_for_model(data, split, model.labels(), &ProgressBar::hidden())?;
    if ds.is_empty() {
        bail!("{} holds no readable images", data.display());
    }
    let ds = match c.images {
        Some(n) => ds.subsample(n),
        None => ds,
    };
    report.planned = ds.len();
    let pb = progress(ds.len() as u64);
    let mut arena = vec![0i8; model.arena_len()];
    for i in 0..ds.len() {
        let face: &[u8; INPUT_LEN] = ds.image(i);
        let host = engine_logits(&model, &mut arena, face)
            .with_context(|| format!("the host engine on {}", ds.paths[i].display()))?;
        let answer = link.request(&Request::Classify { id: i as u32, face });
        let (logits, cost) = match answer {
            Ok(Response::Logits { id, logits, cost }) if id == i as u32 => (logits, cost),
            Ok(Response::Error(e)) => {
                report.stopped = Some(format!("the board refused {}: {e}", ds.paths[i].display()));
                break;
            }
            Ok(other) => {
                report.stopped = Some(format!(
                    "the board answered {} with {other:?}",
                    ds.paths[i].display()
                ));
                break;
            }
            Err(e) => {
                report.stopped = Some(format!("{e:#}"));
                break;
            }
        };
        let equal = logits[..] == host[..];
        if !equal {
            pb.suspend(|| {
                eprintln!(
                    "{}: board logits {:?}, host engine {:?}",
                    ds.paths[i].display(),
                    &logits[..],
                    host
                )
            });
        }
        report.faces.push(FaceResult {
            path: ds.paths[i].clone(),
            truth: ds.labels[i],
            board: super::argmax(&logits),
            host: super::argmax(&host),
            equal,
            logits: logits.to_vec(),
            host_logits: (!equal).then_some(host),
            cost,
        });
        pb.inc(1);
    }
    pb.finish_and_clear();

    if report.stopped.is_none() {
        match link.request(&Request::Profile { face: ds.image(0) }) {
            Ok(Response::Profile { layers, .. }) => {
                report.profile = layers
                    .iter()
                    .map(|l| LayerRow {
                        op: l.op.to_string(),
                        macs: l.macs,
                        cost: l.cost,
                    })
                    .collect();
            }
            Ok(other) => report.stopped = Some(format!("the profile was answered with {other:?}")),
            Err(e) => report.stopped = Some(format!("{e:#}")),
        }
    }
    Ok(report)
}

/// The report as text: the board, accuracy and agreement, cost, per-layer profile.
pub fn summary(r: &BoardReport) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "board: {} ({}, {} MHz, firmware {}, arena {} bytes) via {}",
        r.board,
        r.core,
        r.clock_hz / 1_000_000,
        r.firmware,
        r.arena_len,
        r.link
    );
    let n = r.faces.len();
    let equal = n - r.mismatches().count();
    let _ = writeln!(
        s,
        "{n} of {} faces from {}: board {:.2}% right, host engine {:.2}%; labels agree on \
         {:.2}%; logits equal on {equal}/{n}",
        r.planned,
        r.data.display(),
        r.accuracy() * 100.0,
        r.host_accuracy() * 100.0,
        r.agreement() * 100.0,
    );
    if let Some(c) = r.median_cost() {
        let _ = write!(s, "median {c} {} per inference", r.unit.plural());
        if r.unit == CostUnit::Cycles {
            let _ = write!(
                s,
                " ({:.1} ms at {} MHz)",
                c as f64 / r.clock_hz as f64 * 1e3,
                r.clock_hz / 1_000_000
            );
        } else {
            let _ = write!(s, " (the emulator counts instructions, not cycles)");
        }
        let _ = writeln!(s);
    }
    for (i, l) in r.profile.iter().enumerate() {
        let _ = writeln!(
            s,
            "layer {i:>2} {:<10} {:>9} MACs {:>11} {} ({:.2} MAC/{})",
            l.op,
            l.macs,
            l.cost,
            r.unit.plural(),
            l.macs as f64 / l.cost.max(1) as f64,
            r.unit.short()
        );
    }
    for f in r.mismatches().take(5) {
        let _ = writeln!(
            s,
            "differs: {} (board {}, host {})",
            f.path.display(),
            name_of(&r.classes, f.board as usize),
            name_of(&r.classes, f.host as usize)
        );
    }
    s
}
