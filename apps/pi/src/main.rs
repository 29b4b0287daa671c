//! `emoedge-pi`: frames in (camera, image files, raw video on stdin), faces found, emotions
//! out as JSON lines, one per frame, flushed as each frame is done.

use anyhow::{Context, Result, bail};
use clap::Parser;
use emoedge_pi::camera::{Backoff, Camera, open_v4l2};
use emoedge_pi::serve::{self, Hub, ModelInfo};
use emoedge_runtime::{Classifier, ModelDir, Runtime};
use emoedge_vision::args::DetectArgs;
use emoedge_vision::detect::Detector;
use emoedge_vision::frame::{Files, FrameSource, RawGray, Y4m, parse_size};
use emoedge_vision::pipeline::{Options, Pipeline};
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The model folder used when `--model` is not given.
const DEFAULT_MODEL: &str = "models/edge";

/// Find faces in images or video frames and label their emotions (JSON lines on stdout).
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Image files or folders [default: $EMOEDGE_DATA/faces]
    inputs: Vec<PathBuf>,
    /// Read raw 8-bit gray frames of this size from stdin, e.g. 640x480
    /// (`ffmpeg -i VIDEO -f rawvideo -pix_fmt gray - | emoedge-pi --stdin 640x480`).
    #[arg(long, value_name = "WxH", conflicts_with = "y4m")]
    stdin: Option<String>,
    /// Read a YUV4MPEG2 stream from stdin (`ffmpeg -i VIDEO -f yuv4mpegpipe -pix_fmt gray -`).
    #[arg(long)]
    y4m: bool,
    /// Read frames from a V4L2 camera (USB webcam; Pi camera via libcamera's V4L2 layer),
    /// reopening it with backoff if it goes away.
    #[arg(long, value_name = "DEVICE", num_args = 0..=1, default_missing_value = "/dev/video0",
          conflicts_with_all = ["stdin", "y4m"])]
    camera: Option<PathBuf>,
    /// Capture size asked of the camera (it may pick the nearest it has).
    #[arg(long, value_name = "WxH", default_value = "640x480")]
    camera_size: String,
    /// Failed camera opens/reads in a row before giving up (0: never give up).
    #[arg(long, default_value_t = 0)]
    camera_retries: u32,
    /// Model folder holding model.int8.onnx and model.blob.
    #[arg(long, default_value = DEFAULT_MODEL)]
    model: PathBuf,
    /// Runtime for the emotion model: the `emoedge-core` engine on the blob (default; the
    /// faster of the two in BENCHMARKS.md's x86 measurements, same labels) or tract on the
    /// int8 ONNX.
    #[arg(long, alias = "engine", value_enum, default_value_t = Runtime::Engine)]
    runtime: Runtime,
    #[command(flatten)]
    detect: DetectArgs,
    /// On video (camera, stdin), detect faces on one frame in N and track them between.
    #[arg(long, default_value_t = 1, value_name = "N")]
    detect_every: u32,
    /// With --detect-every > 1: detect at once when the frame differs from the last detected
    /// one by more than this mean grey-level difference (a cut, a camera swing); 0: never.
    #[arg(long, default_value_t = 10, value_name = "LEVELS")]
    redetect_change: u8,
    /// Test-time flip averaging: classify each face and its mirror image and sum their
    /// logits (twice the inference per face; models/MODEL.md has what it gains).
    #[arg(long)]
    flip: bool,
    /// Write each frame with boxes and labels drawn, as PNG, into this folder.
    #[arg(long)]
    annotate: Option<PathBuf>,
    /// Serve a live view while running: the page at /, the annotated stream at
    /// /stream.mjpg, each frame's JSON as Server-Sent Events at /events, and /api/status.
    /// Image files and folders are shown round and round. Binds to this machine only
    /// unless given another address, which needs --token.
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = serve::DEFAULT_ADDR)]
    serve: Option<std::net::SocketAddr>,
    /// With --serve: every request must carry this token (`Authorization: Bearer TOKEN`
    /// or `?token=TOKEN`); required to serve on an address other than loopback.
    #[arg(
        long,
        requires = "serve",
        env = "EMOEDGE_TOKEN",
        hide_env_values = true
    )]
    token: Option<String>,
}

fn run(args: Args) -> Result<bool> {
    let dir = ModelDir::new(&args.model);
    let onnx = dir.onnx();
    if !onnx.is_file() {
        bail!(
            "no model at {}: run from the repository root for the shipped one, or make one with\n  \
             cargo run --release -p emoedge -- train --out runs/edge\n  \
             cargo run --release -p emoedge -- quantize --model runs/edge --out {}\n\
             or pass --model DIR",
            onnx.display(),
            args.model.display()
        );
    }
    let detect = args.detect.params()?;
    let cascade = args.detect.cascade()?;
    let classifier = Classifier::open(&dir, args.runtime)?.with_flip(args.flip);
    let weights_hash = classifier.model().body().weights_hash;
    let labels: Vec<String> = classifier.labels().iter().map(|l| l.to_string()).collect();
    let opts = Options {
        detect,
        detect_width: args.detect.detect_width,
        crop: args.detect.crop(),
        detect_every: args.detect_every,
        redetect_change: args.redetect_change,
    };
    let mut pipeline = Pipeline::new(Detector::new(cascade), classifier, opts);
    let mut source: Box<dyn FrameSource> = match &args.stdin {
        _ if args.camera.is_some() => {
            let device = args.camera.clone().unwrap_or_default();
            let (w, h) = parse_size(&args.camera_size)?;
            let backoff = Backoff {
                first: Duration::from_millis(250),
                max: Duration::from_secs(8),
                attempts: (args.camera_retries > 0).then_some(args.camera_retries),
            };
            Box::new(Camera::with(
                device.display().to_string(),
                move || open_v4l2(&device, w, h),
                std::thread::sleep,
                backoff,
            ))
        }
        _ if args.y4m => Box::new(Y4m::new(std::io::stdin().lock())?),
        Some(size) => {
            let (w, h) = parse_size(size)?;
            Box::new(RawGray::new(std::io::stdin().lock(), w, h))
        }
        None => {
            let inputs = if args.inputs.is_empty() {
                vec![emoedge_runtime::paths::data_subdir("faces")?]
            } else {
                args.inputs.clone()
            };
            let files = Files::new(&inputs, args.annotate.is_some() || args.serve.is_some())?;
            if args.serve.is_some() {
                Box::new(files.looped())
            } else {
                Box::new(files)
            }
        }
    };
    let source_name = match (&args.camera, &args.stdin, args.y4m) {
        (Some(d), _, _) => d.display().to_string(),
        (None, Some(size), _) => format!("stdin ({size} gray)"),
        (None, None, true) => "stdin (y4m)".into(),
        (None, None, false) if args.inputs.is_empty() => "faces (looped)".into(),
        (None, None, false) => format!("{} (looped)", args.inputs[0].display()),
    };
    let hub = match args.serve {
        Some(addr) => {
            let model = ModelInfo::new(&dir, &weights_hash, &labels, args.runtime.name());
            let hub = Hub::start(serve::Config {
                addr,
                token: args.token.clone(),
                model,
                source: source_name,
            })?;
            eprintln!("serving on http://{}/", hub.addr());
            Some(hub)
        }
        None => None,
    };
    let mut fps = 0.0f64;
    let mut last_frame: Option<Instant> = None;
    let mut out = std::io::stdout().lock();
    let mut line = Vec::new(); // one JSON line, its buffer reused from frame to frame
    let (mut frames, mut faces, mut errors) = (0u64, 0u64, 0u64);
    let started = Instant::now();
    let mut stage = [0f64; 4];
    loop {
        let t0 = Instant::now();
        let Some(frame) = source.next_frame() else {
            break;
        };
        let decode_ms = t0.elapsed().as_secs_f64() * 1e3;
        let frame = match frame {
            Ok(f) => f,
            Err(e) => {
                eprintln!("error: {e:#}");
                errors += 1;
                continue;
            }
        };
        let report = pipeline.process(&frame, decode_ms)?;
        frames += 1;
        faces += report.faces.len() as u64;
        let t = report.timings_ms;
        for (s, v) in stage.iter_mut().zip([t.decode, t.detect, t.crop, t.infer]) {
            *s += v;
        }
        // One write per line, so a closed stdout surfaces as the io::Error `main` looks for.
        line.clear();
        serde_json::to_writer(&mut line, &report)?;
        line.push(b'\n');
        out.write_all(&line)
            .and_then(|()| out.flush())
            .context("writing to stdout")?;
        if let Some(dir) = &args.annotate {
            emoedge_pi::annotate::save(dir, &frame, &report)?;
        }
        if let Some(hub) = &hub {
            // Frames/s over about the last second: an exponential average of frame gaps.
            let now = Instant::now();
            if let Some(last) = last_frame.replace(now) {
                let inst = 1.0 / (now - last).as_secs_f64().max(1e-6);
                fps = if fps == 0.0 {
                    inst
                } else {
                    fps + 0.1 * (inst - fps)
                };
            }
            hub.publish(&line[..line.len() - 1], frame, &report, fps);
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let n = frames.max(1) as f64;
    eprintln!(
        "{frames} frames, {faces} faces, {errors} unreadable; {:.1} frames/s; mean ms per frame: decode {:.1}, detect {:.1}, crop {:.2}, infer {:.2}",
        frames as f64 / secs,
        stage[0] / n,
        stage[1] / n,
        stage[2] / n,
        stage[3] / n
    );
    Ok(errors == 0)
}

/// Whether `e` comes from writing to a pipe whose reader has closed it.
fn reader_gone(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

fn main() -> std::process::ExitCode {
    match run(Args::parse()) {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::from(3),
        // `emoedge-pi | head`: the reader has all it wanted, so this is an end, not a fault.
        Err(e) if reader_gone(&e) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
