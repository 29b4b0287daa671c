//! `emoedge-pi --serve` as a browser, VLC or curl meets it: the real binary serving the
//! reference photos (`$EMOEDGE_DATA/faces`, looped), each endpoint read over loopback.

use emoedge_core::Emotion;
use emoedge_test_support::data_dir;
use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

fn project(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(rel)
}

/// A running server; killed when dropped.
struct Server {
    child: Child,
    base: String,
    /// The stdout lines so far.
    lines: Arc<Mutex<Vec<String>>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether this host can run the binary (not so under qemu-user without binfmt_misc).
fn runnable() -> bool {
    let probe = Command::new(env!("CARGO_BIN_EXE_emoedge-pi"))
        .arg("--version")
        .output()
        .unwrap();
    let ok = !(probe.status.code() == Some(127) && probe.stdout.is_empty());
    if !ok {
        eprintln!("skipped: this host cannot execute emoedge-pi: {probe:?}");
    }
    ok
}

fn command(extra: &[&str]) -> Command {
    command_on(&data_dir().join("faces"), extra)
}

fn command_on(input: &Path, extra: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_emoedge-pi"));
    c.arg(input)
        .arg("--model")
        .arg(project("models/edge"))
        .arg("--cascade")
        .arg(project("models/haarcascade_frontalface_alt2.xml"))
        .args(extra)
        .env_remove("EMOEDGE_TOKEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

fn start(extra: &[&str]) -> Server {
    start_on(&data_dir().join("faces"), extra)
}

fn start_on(input: &Path, extra: &[&str]) -> Server {
    let mut child = command_on(input, extra).spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(rest) = line.strip_prefix("serving on http://") {
                let _ = tx.send(rest.trim_end_matches('/').to_string());
            }
        }
    });
    let lines = Arc::new(Mutex::new(Vec::new()));
    let stdout = child.stdout.take().unwrap();
    let sink = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the server said where it listens");
    let base = format!("http://{addr}");
    Server { child, base, lines }
}

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs(10))
        .timeout_read(Duration::from_secs(30))
        .build()
}

/// The status code of a GET, whatever it is.
fn status_of(req: ureq::Request) -> u16 {
    match req.call() {
        Ok(r) => r.status(),
        Err(ureq::Error::Status(code, _)) => code,
        Err(e) => panic!("{e}"),
    }
}

/// Reads one MJPEG part from `r`: its JPEG bytes.
fn next_part(r: &mut impl BufRead) -> Vec<u8> {
    let mut len = None;
    let mut line = String::new();
    loop {
        line.clear();
        assert!(r.read_line(&mut line).unwrap() > 0, "stream ended");
        let l = line.trim_end();
        if let Some(v) = l.strip_prefix("Content-Length: ") {
            len = Some(v.parse::<usize>().unwrap());
        } else if l.is_empty() && len.is_some() {
            break;
        }
    }
    let mut jpeg = vec![0; len.unwrap()];
    r.read_exact(&mut jpeg).unwrap();
    jpeg
}

#[test]
fn serves_the_page_stream_events_and_status() {
    if !runnable() {
        return;
    }
    let server = start(&["--serve", "127.0.0.1:0"]);
    let agent = agent();
    let url = |p: &str| format!("{}{p}", server.base);

    // The page: all of it in one response, nothing fetched from elsewhere.
    let page = agent.get(&url("/")).call().unwrap().into_string().unwrap();
    assert!(page.contains("<img id=\"video\""), "{page}");
    assert!(page.contains("EventSource(\"events\""));
    assert!(!page.contains("src=\"http") && !page.contains("href=\"http"));

    // MJPEG: parts that decode as JPEG of one of the photos' sizes.
    let sizes: HashSet<(u32, u32)> = std::fs::read_dir(data_dir().join("faces"))
        .unwrap()
        .filter_map(|e| image::image_dimensions(e.unwrap().path()).ok())
        .collect();
    let resp = agent.get(&url("/stream.mjpg")).call().unwrap();
    assert!(
        resp.content_type() == "multipart/x-mixed-replace",
        "{}",
        resp.content_type()
    );
    let mut stream = BufReader::new(resp.into_reader());
    for _ in 0..3 {
        let jpeg = next_part(&mut stream);
        let img = image::load_from_memory_with_format(&jpeg, image::ImageFormat::Jpeg).unwrap();
        assert!(
            sizes.contains(&(img.width(), img.height())),
            "{}x{} is no photo's size",
            img.width(),
            img.height()
        );
    }

    // Status, while the stream client is still connected.
    let status: serde_json::Value = agent
        .get(&url("/api/status"))
        .call()
        .unwrap()
        .into_json()
        .unwrap();
    assert_eq!(status["model"]["name"], "edge");
    assert_eq!(status["model"]["weights_hash"].as_str().unwrap().len(), 64);
    assert_eq!(status["model"]["runtime"], "engine");
    assert!(
        status["model"]["test_accuracy"]
            .as_str()
            .unwrap()
            .ends_with('%')
    );
    assert_eq!(status["clients"]["stream"], 1);
    assert!(status["fps"].as_f64().unwrap() > 0.0);
    drop(stream);

    // Events: each one's JSON is the stdout line of the same frame, byte for byte.
    let resp = agent.get(&url("/events")).call().unwrap();
    assert_eq!(resp.content_type(), "text/event-stream");
    let mut events = BufReader::new(resp.into_reader());
    let mut seen = Vec::new();
    let mut line = String::new();
    while seen.len() < 5 {
        line.clear();
        assert!(events.read_line(&mut line).unwrap() > 0, "events ended");
        if let Some(data) = line.trim_end().strip_prefix("data: ") {
            seen.push(data.to_string());
        }
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    for data in &seen {
        let v: serde_json::Value = serde_json::from_str(data).unwrap();
        assert!(
            v["faces"].is_array() && v["timings_ms"].is_object(),
            "{data}"
        );
        while !server.lines.lock().unwrap().contains(data) {
            assert!(Instant::now() < deadline, "no stdout line {data}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    // Unknown paths and other methods.
    assert_eq!(status_of(agent.get(&url("/nope"))), 404);
    assert_eq!(status_of(agent.post(&url("/"))), 405);
}

#[test]
fn another_address_needs_a_token_and_every_request_carries_it() {
    if !runnable() {
        return;
    }
    let out = command(&["--serve", "0.0.0.0:0"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("without --token"), "{stderr}");

    let server = start(&["--serve", "0.0.0.0:0", "--token", "s3cret"]);
    let port = server.base.rsplit(':').next().unwrap().to_string();
    let url = |p: &str| format!("http://127.0.0.1:{port}{p}");
    let agent = agent();
    for path in ["/", "/api/status", "/stream.mjpg", "/events", "/nope"] {
        assert_eq!(status_of(agent.get(&url(path))), 401, "{path}");
    }
    assert_eq!(status_of(agent.get(&url("/api/status?token=wrong"))), 401);
    assert_eq!(status_of(agent.get(&url("/api/status?token=s3cret"))), 200);
    assert_eq!(
        status_of(
            agent
                .get(&url("/api/status"))
                .set("Authorization", "Bearer s3cret")
        ),
        200
    );
    // A request line far over any sane size is refused, and the server keeps serving.
    let long = format!("/api/status?token=s3cret&x={}", "a".repeat(1 << 20));
    assert!(agent.get(&url(&long)).call().is_err());
    assert_eq!(status_of(agent.get(&url("/?token=s3cret"))), 200);
}

/// Headless Chromium (`chromium`, or `$EMOEDGE_CHROMIUM`), run by `f` with its flags;
/// `None` when there is none, unless `$EMOEDGE_REQUIRE_BROWSER` is set (CI).
fn chromium() -> Option<Command> {
    let bin = std::env::var_os("EMOEDGE_CHROMIUM").unwrap_or_else(|| "chromium".into());
    let found = Command::new(&bin)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var_os("EMOEDGE_REQUIRE_BROWSER").is_none(),
            "no chromium to test the page with"
        );
        eprintln!("skipped: no chromium (install Debian's `chromium`)");
        return None;
    }
    let mut c = Command::new(bin);
    c.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1280,900",
        "--timeout=8000",
    ]);
    Some(c)
}

/// The page as a browser renders it: the stream shows, each face gets a card with its
/// label and bars, and the timeline fills with labelled spans.
#[test]
fn the_page_renders_faces_and_the_timeline_in_chromium() {
    if !runnable() {
        return;
    }
    let Some(mut browser) = chromium() else {
        return;
    };
    // Portraits only, so that whichever frame the page shows has a face.
    let faces = tempfile::tempdir().unwrap();
    for name in ["grace_hopper.jpg", "biden_portrait.jpg"] {
        std::fs::copy(data_dir().join("faces").join(name), faces.path().join(name)).unwrap();
    }
    let server = start_on(faces.path(), &["--serve", "127.0.0.1:0"]);
    let profile = tempfile::tempdir().unwrap();
    let out = browser
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("--dump-dom")
        .arg(format!("{}/", server.base))
        .stderr(Stdio::null())
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{dom}");
    // Bars and labels: at least one face card, labelled with one of the seven emotions.
    assert!(
        Emotion::ALL
            .iter()
            .any(|e| dom.contains(&format!("class=\"face\" data-label=\"{}\"", e.name()))),
        "no face card in {dom}"
    );
    assert!(dom.contains("class=\"bar\""), "no probability bars");
    // The timeline: spans drawn for the faces seen so far.
    assert!(dom.contains("class=\"span\""), "no timeline spans in {dom}");
    // The stream element points at the MJPEG endpoint; status filled the header.
    assert!(dom.contains("src=\"stream.mjpg\""));
    assert!(dom.contains("frames/s"));
    assert!(
        !dom.contains("<b id=\"model\">…</b>"),
        "status never arrived"
    );
}
