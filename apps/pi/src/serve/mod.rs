//! The live view (`emoedge-pi --serve`): the annotated stream and each frame's report over
//! HTTP, for a headless Pi watched from a browser.
//!
//! - `/`: one page, built into the binary (a Pi may have no internet: no CDN).
//! - `/stream.mjpg`: the annotated frames as MJPEG (`multipart/x-mixed-replace`).
//! - `/events`: Server-Sent Events, one per frame, the same JSON as the stdout line.
//! - `/api/status`: model, source, uptime, frames/s, connected clients.
//!
//! The pipeline is never slowed by viewers: it hands each frame to a [`Hub`] and goes on.
//! The hub keeps only the newest frame ([`tokio::sync::watch`]), so a client that falls
//! behind skips frames instead of queueing them, and a stalled or vanished client holds at
//! most one frame. Each frame is annotated and encoded to JPEG once, by one encoder thread,
//! however many clients watch, and only while at least one watches the stream.
//!
//! The server is axum on a one-thread tokio runtime beside the pipeline: a kept HTTP stack
//! (hyper parses the requests and bounds their size), with tokio's `watch` channel giving
//! exactly the newest-value-wins semantics the stream needs. JPEG encoding is the `image`
//! crate's encoder, already used for decoding.

mod auth;
mod status;

use crate::annotate;
use anyhow::{Context, Result, bail};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use emoedge_vision::frame::Frame;
use emoedge_vision::pipeline::FrameReport;
use futures_util::stream::{self, Stream};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::watch;

pub use status::{ModelInfo, Status};

/// Where the server listens unless told otherwise: this machine only.
pub const DEFAULT_ADDR: &str = "127.0.0.1:8080";

/// The page, with its script and style inline; its label colours are filled in from
/// [`annotate::colour`] by [`page_html`], so the page and the annotated stream agree.
const PAGE: &str = include_str!("page.html");

/// The page with each of the model's classes' colour as a JavaScript object, in the
/// model's order (class names need no quoting: [`emoedge_core::labels`]).
fn page_html(labels: &[String]) -> String {
    let colours: Vec<String> = labels
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let [r, g, b] = annotate::colour(name, i).0;
            format!("\"{name}\": \"#{r:02x}{g:02x}{b:02x}\"")
        })
        .collect();
    PAGE.replace("/*COLOURS*/", &format!("{{ {} }}", colours.join(", ")))
}

/// MJPEG part boundary.
const BOUNDARY: &str = "emoedgeframe";

/// JPEG quality of the stream: small frames for a Pi's Wi-Fi, faces still clear.
const JPEG_QUALITY: u8 = 80;

/// One frame as the pipeline hands it over.
struct Published {
    /// The stdout line, without its newline.
    json: Arc<str>,
    /// The frame and its report, kept only while someone watches the stream; taken by
    /// the encoder.
    picture: std::sync::Mutex<Option<(Frame, FrameReport)>>,
}

/// What the server needs to start.
pub struct Config {
    /// Address to bind.
    pub addr: SocketAddr,
    /// Token every request must carry (`Authorization: Bearer TOKEN` or `?token=TOKEN`).
    pub token: Option<String>,
    /// The model, for `/api/status`.
    pub model: ModelInfo,
    /// The frame source, for `/api/status`.
    pub source: String,
}

/// The pipeline's side of the server: hand each frame over with [`Hub::publish`].
pub struct Hub {
    shared: Arc<Shared>,
    addr: SocketAddr,
}

/// State shared by the pipeline, the encoder and the request handlers.
struct Shared {
    frames: watch::Sender<Option<Arc<Published>>>,
    /// The newest annotated frame as one MJPEG part (headers, JPEG, CRLF), made once and
    /// shared by every stream client.
    jpeg: watch::Sender<Option<Bytes>>,
    started: Instant,
    stream_clients: AtomicUsize,
    event_clients: AtomicUsize,
    /// Frames per second over the last second or so, as `f64` bits.
    fps: std::sync::atomic::AtomicU64,
    token: Option<String>,
    model: ModelInfo,
    source: String,
    /// The page, built once ([`page_html`]).
    page: String,
}

impl Hub {
    /// Binds `config.addr` and serves on a thread of its own until the process ends.
    /// Refuses an address other than loopback without a token: the camera would be open to
    /// anyone on the network.
    pub fn start(config: Config) -> Result<Self> {
        if !config.addr.ip().is_loopback() && config.token.is_none() {
            bail!(
                "refusing to serve on {} without --token: anyone on that network could watch \
                 the camera. Pass --token SECRET (then open http://HOST:PORT/?token=SECRET), \
                 or serve on 127.0.0.1",
                config.addr
            );
        }
        if config.token.as_deref().is_some_and(|t| t.is_empty()) {
            bail!("--token must not be empty");
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the server's runtime")?;
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind(config.addr))
            .with_context(|| format!("binding {}", config.addr))?;
        let addr = listener.local_addr().context("reading the bound address")?;
        let shared = Arc::new(Shared {
            frames: watch::Sender::new(None),
            jpeg: watch::Sender::new(None),
            started: Instant::now(),
            stream_clients: AtomicUsize::new(0),
            event_clients: AtomicUsize::new(0),
            fps: 0f64.to_bits().into(),
            token: config.token,
            page: page_html(&config.model.labels),
            model: config.model,
            source: config.source,
        });
        let app = router(shared.clone());
        let (encoder, handle) = (shared.clone(), runtime.handle().clone());
        std::thread::Builder::new()
            .name("encode".into())
            .spawn(move || encode_frames(encoder, handle))
            .context("starting the encoder thread")?;
        std::thread::Builder::new()
            .name("serve".into())
            .spawn(move || {
                if let Err(e) = runtime.block_on(async { axum::serve(listener, app).await }) {
                    eprintln!("error: the server stopped: {e}");
                }
            })
            .context("starting the server thread")?;
        Ok(Self { shared, addr })
    }

    /// The address it listens on (the port chosen when asked for port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Hands over one frame: its stdout line (`json`, no newline) and, only if someone
    /// watches the stream, the frame to annotate. Never waits for a client.
    pub fn publish(&self, json: &[u8], frame: Frame, report: &FrameReport, fps: f64) {
        let json: Arc<str> = String::from_utf8_lossy(json).into();
        let picture = (self.shared.jpeg.receiver_count() > 0).then(|| (frame, report.clone()));
        let picture = std::sync::Mutex::new(picture);
        self.shared.fps.store(fps.to_bits(), Ordering::Relaxed);
        self.shared
            .frames
            .send_replace(Some(Arc::new(Published { json, picture })));
    }
}

/// Annotates and encodes each frame once, while the stream has clients; frames that arrive
/// during an encoding are skipped. Runs on a thread of its own, so that one thread (and one
/// allocator arena) holds the frame copies and their JPEGs, however long the server runs.
fn encode_frames(shared: Arc<Shared>, runtime: tokio::runtime::Handle) {
    let mut frames = shared.frames.subscribe();
    while runtime.block_on(frames.changed()).is_ok() {
        let Some(p) = frames.borrow_and_update().clone() else {
            continue;
        };
        let picture = p.picture.lock().map(|mut p| p.take()).unwrap_or(None);
        let Some((frame, report)) = picture else {
            continue;
        };
        if shared.jpeg.receiver_count() == 0 {
            continue;
        }
        match encode_jpeg(frame, &report) {
            Ok(jpeg) => {
                let head = format!(
                    "--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n",
                    jpeg.len()
                );
                let mut part = Vec::with_capacity(head.len() + jpeg.len() + 2);
                part.extend_from_slice(head.as_bytes());
                part.extend_from_slice(&jpeg);
                part.extend_from_slice(b"\r\n");
                shared.jpeg.send_replace(Some(part.into()));
            }
            Err(e) => eprintln!("error: encoding a frame as JPEG: {e:#}"),
        }
    }
}

/// The annotated frame as JPEG.
pub fn encode_jpeg(frame: Frame, report: &FrameReport) -> Result<Vec<u8>> {
    let img = annotate::draw(frame, report);
    let mut out = Vec::with_capacity(img.as_raw().len() / 8);
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, JPEG_QUALITY)
        .encode_image(&img)
        .context("encoding JPEG")?;
    Ok(out)
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/stream.mjpg", get(mjpeg))
        .route("/events", get(events))
        .route("/api/status", get(status))
        .layer(axum::middleware::from_fn_with_state(
            shared.clone(),
            auth::require_token,
        ))
        .with_state(shared)
}

async fn page(State(s): State<Arc<Shared>>) -> impl IntoResponse {
    ([(header::CACHE_CONTROL, "no-store")], Html(s.page.clone()))
}

/// Counts a client of one endpoint while it is connected.
struct ClientGuard(Arc<Shared>, fn(&Shared) -> &AtomicUsize);

impl ClientGuard {
    fn new(shared: Arc<Shared>, counter: fn(&Shared) -> &AtomicUsize) -> Self {
        counter(&shared).fetch_add(1, Ordering::Relaxed);
        Self(shared, counter)
    }
}

impl Drop for ClientGuard {
    fn drop(&mut self) {
        (self.1)(&self.0).fetch_sub(1, Ordering::Relaxed);
    }
}

async fn mjpeg(State(shared): State<Arc<Shared>>) -> Response {
    let guard = ClientGuard::new(shared.clone(), |s| &s.stream_clients);
    let rx = shared.jpeg.subscribe();
    let parts = stream::unfold((rx, guard), |(mut rx, guard)| async move {
        rx.changed().await.ok()?;
        let part = rx.borrow_and_update().clone()?;
        Some((Ok::<_, Infallible>(part), (rx, guard)))
    });
    (
        [
            (
                header::CONTENT_TYPE,
                format!("multipart/x-mixed-replace; boundary={BOUNDARY}"),
            ),
            (header::CACHE_CONTROL, "no-store".into()),
        ],
        Body::from_stream(parts),
    )
        .into_response()
}

async fn events(
    State(shared): State<Arc<Shared>>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let guard = ClientGuard::new(shared.clone(), |s| &s.event_clients);
    let mut rx = shared.frames.subscribe();
    rx.mark_changed();
    let events = stream::unfold((rx, guard), |(mut rx, guard)| async move {
        loop {
            rx.changed().await.ok()?;
            let latest = rx.borrow_and_update().clone();
            if let Some(p) = latest {
                return Some((Ok(Event::default().data(&*p.json)), (rx, guard)));
            }
        }
    });
    Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

async fn status(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    axum::Json(Status {
        model: shared.model.clone(),
        source: shared.source.clone(),
        uptime_s: shared.started.elapsed().as_secs_f64(),
        fps: f64::from_bits(shared.fps.load(Ordering::Relaxed)),
        clients: status::Clients {
            stream: shared.stream_clients.load(Ordering::Relaxed),
            events: shared.event_clients.load(Ordering::Relaxed),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_colours_the_models_own_classes() {
        let emotions: Vec<String> = emoedge_core::labels::EMOTIONS.map(String::from).to_vec();
        let page = page_html(&emotions);
        assert!(
            page.contains(r##"const COLOURS = { "angry": "#e62828","##),
            "{page}"
        );
        let own: Vec<String> = ["no_smile", "smile", "a-b+c.d"].map(String::from).to_vec();
        let page = page_html(&own);
        // An emotion's name keeps its colour; the others take the palette's, by index.
        assert!(
            page.contains(
                r##"{ "no_smile": "#fac800", "smile": "#326ee6", "a-b+c.d": "#e62828" }"##
            ),
            "{page}"
        );
    }
}
