//! Load on `emoedge-pi --serve`: does watching slow the pipeline, does memory grow?
//!
//! Starts the binary serving image folders (looped), then measures the pipeline's frames/s
//! (stdout lines per second) and its resident memory in three phases of equal length: no
//! clients, `--clients` clients on `/stream.mjpg` and `/events` (half each) of which
//! `--stalled` connect and never read, and no clients again. Prints a Markdown table.
//!
//! ```text
//! cargo build --release -p emoedge-pi --examples
//! target/release/examples/serve_load --bin target/release/emoedge-pi -- $EMOEDGE_DATA/faces
//! ```

use anyhow::{Context, Result, bail, ensure};
use clap::Parser;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[derive(Parser)]
struct Args {
    /// The emoedge-pi binary.
    #[arg(long)]
    bin: PathBuf,
    /// Seconds per phase.
    #[arg(long, default_value_t = 30)]
    seconds: u64,
    /// Clients in the loaded phase.
    #[arg(long, default_value_t = 20)]
    clients: usize,
    /// Of those, clients that connect and never read.
    #[arg(long, default_value_t = 2)]
    stalled: usize,
    /// Arguments for emoedge-pi (inputs, --model, …).
    #[arg(last = true)]
    pi_args: Vec<String>,
}

fn rss_kib(pid: u32) -> Result<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS")
}

struct Phase {
    name: String,
    fps: f64,
    rss_start: u64,
    rss_end: u64,
    rss_max: u64,
}

fn measure(name: &str, pid: u32, lines: &AtomicU64, seconds: u64) -> Result<Phase> {
    let rss_start = rss_kib(pid)?;
    let mut rss_max = rss_start;
    let n0 = lines.load(Ordering::Relaxed);
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(seconds) {
        std::thread::sleep(Duration::from_millis(500));
        rss_max = rss_max.max(rss_kib(pid)?);
    }
    let fps = (lines.load(Ordering::Relaxed) - n0) as f64 / t0.elapsed().as_secs_f64();
    let rss_end = rss_kib(pid)?;
    Ok(Phase {
        name: name.into(),
        fps,
        rss_start,
        rss_end,
        rss_max: rss_max.max(rss_end),
    })
}

/// A client: sends the request, then reads (and drops) everything, or nothing at all.
fn client(addr: String, path: &'static str, read: bool, stop: Arc<AtomicBool>) -> Result<u64> {
    let mut s = TcpStream::connect(&addr)?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n")?;
    let mut got = 0u64;
    let mut buf = vec![0u8; 64 * 1024];
    while !stop.load(Ordering::Relaxed) {
        if read {
            let n = s.read(&mut buf)?;
            ensure!(n > 0, "{path}: the server closed the connection");
            got += n as u64;
        } else {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    Ok(got)
}

fn main() -> Result<()> {
    let args = Args::parse();
    ensure!(
        args.stalled <= args.clients,
        "--stalled is more than --clients"
    );
    let mut child = Command::new(&args.bin)
        .args(&args.pi_args)
        .args(["--serve", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {}", args.bin.display()))?;
    let pid = child.id();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let mut addr = None;
    for line in stderr.lines() {
        let line = line?;
        if let Some(a) = line.strip_prefix("serving on http://") {
            addr = Some(a.trim_end_matches('/').to_string());
            break;
        }
        eprintln!("{line}");
    }
    let Some(addr) = addr else {
        bail!("{} ended without serving", args.bin.display())
    };
    let lines = Arc::new(AtomicU64::new(0));
    let counter = lines.clone();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    std::thread::spawn(move || {
        for _ in stdout.split(b'\n') {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    });
    std::thread::sleep(Duration::from_secs(3)); // warm-up
    let mut phases = vec![measure("no clients", pid, &lines, args.seconds)?];

    let stop = Arc::new(AtomicBool::new(false));
    let mut handles = Vec::new();
    for i in 0..args.clients {
        let path = if i % 2 == 0 {
            "/stream.mjpg"
        } else {
            "/events"
        };
        let read = i >= args.stalled;
        let (addr, stop) = (addr.clone(), stop.clone());
        handles.push(std::thread::spawn(move || client(addr, path, read, stop)));
    }
    let name = format!("{} clients, {} stalled", args.clients, args.stalled);
    phases.push(measure(&name, pid, &lines, args.seconds)?);
    stop.store(true, Ordering::Relaxed);
    let mut received = 0;
    for h in handles {
        received += h.join().expect("client thread")?;
    }
    phases.push(measure("no clients, after", pid, &lines, args.seconds)?);
    child.kill().ok();
    child.wait().ok();

    println!("| phase | frames/s | RSS start MiB | RSS end MiB | RSS max MiB |");
    println!("|---|---|---|---|---|");
    for p in &phases {
        println!(
            "| {} | {:.2} | {:.1} | {:.1} | {:.1} |",
            p.name,
            p.fps,
            p.rss_start as f64 / 1024.0,
            p.rss_end as f64 / 1024.0,
            p.rss_max as f64 / 1024.0
        );
    }
    let base = (phases[0].fps + phases[2].fps) / 2.0;
    println!(
        "\nloaded / unloaded frames/s: {:.3} ({:+.1} %); clients read {:.1} MiB",
        phases[1].fps / base,
        (phases[1].fps / base - 1.0) * 100.0,
        received as f64 / (1 << 20) as f64
    );
    Ok(())
}
