//! A V4L2 camera as a frame source (USB webcams; the Pi camera through libcamera's V4L2
//! compatibility layer), which survives the camera going away: opening and reading retry
//! with exponential backoff instead of ending the run, so a loose USB cable costs frames,
//! not the process. `linuxvideo` talks to V4L2 with plain ioctls (no C bindings to generate),
//! so the same code cross-builds for the Pi.

use anyhow::{Context, Result, bail};
use emoedge_vision::frame::{Frame, FrameSource};
use std::path::PathBuf;
use std::time::Duration;

/// A camera that is open and streaming: hands out gray frames.
pub trait Grab {
    /// The next frame as `(width, height, gray pixels)`.
    fn grab(&mut self) -> Result<(u32, u32, Vec<u8>)>;
}

/// How long to wait between attempts to (re)open the camera.
#[derive(Clone, Copy, Debug)]
pub struct Backoff {
    /// First wait.
    pub first: Duration,
    /// Longest wait (the wait doubles up to this).
    pub max: Duration,
    /// Attempts in a row before giving up; `None` = never give up.
    pub attempts: Option<u32>,
}

/// A camera that reopens itself.
pub struct Camera<O, S> {
    name: String,
    open: O,
    sleep: S,
    backoff: Backoff,
    live: Option<Box<dyn Grab>>,
    index: u64,
    done: bool,
}

impl<O, S> Camera<O, S>
where
    O: FnMut() -> Result<Box<dyn Grab>>,
    S: FnMut(Duration),
{
    /// A camera named `name` (its device path), opened by `open`; `sleep` waits (it is a
    /// parameter so tests run without waiting).
    pub fn with(name: String, open: O, sleep: S, backoff: Backoff) -> Self {
        Camera {
            name,
            open,
            sleep,
            backoff,
            live: None,
            index: 0,
            done: false,
        }
    }
}

impl<O, S> FrameSource for Camera<O, S>
where
    O: FnMut() -> Result<Box<dyn Grab>>,
    S: FnMut(Duration),
{
    fn next_frame(&mut self) -> Option<Result<Frame>> {
        if self.done {
            return None;
        }
        let mut failures = 0u32;
        let mut wait = self.backoff.first;
        loop {
            let attempt = match self.live.as_mut() {
                Some(cam) => cam.grab().context("camera stopped delivering frames"),
                None => (self.open)().and_then(|mut cam| {
                    let first = cam.grab();
                    self.live = Some(cam);
                    first.context("camera opened but delivered no frame")
                }),
            };
            match attempt {
                Ok((width, height, gray)) => {
                    let index = self.index;
                    self.index += 1;
                    return Some(Ok(Frame::video(&self.name, index, width, height, gray)));
                }
                Err(e) => {
                    self.live = None;
                    failures += 1;
                    if self.backoff.attempts.is_some_and(|n| failures >= n) {
                        self.done = true;
                        return Some(Err(e.context(format!(
                            "{}: giving up after {failures} attempts",
                            self.name
                        ))));
                    }
                    eprintln!(
                        "warning: {}: {e:#}; retrying in {:.1} s",
                        self.name,
                        wait.as_secs_f64()
                    );
                    (self.sleep)(wait);
                    wait = (wait * 2).min(self.backoff.max);
                }
            }
        }
    }
}

/// Gray pixels out of one captured buffer of a V4L2 pixel format (luma only; colour is not
/// needed for detection or the model).
pub fn to_gray(
    fourcc: [u8; 4],
    width: u32,
    height: u32,
    bytes_per_line: u32,
    data: &[u8],
) -> Result<Vec<u8>> {
    let (w, h) = (width as usize, height as usize);
    let name = String::from_utf8_lossy(&fourcc).into_owned();
    let rows = |bpp: usize, offset: usize| -> Result<Vec<u8>> {
        let stride = (bytes_per_line as usize).max(w * bpp);
        if data.len() < stride * (h - 1) + w * bpp {
            bail!(
                "{name} frame of {} bytes is short for {w}x{h} (stride {stride})",
                data.len()
            );
        }
        let mut out = Vec::with_capacity(w * h);
        for y in 0..h {
            let row = &data[y * stride..];
            out.extend((0..w).map(|x| row[x * bpp + offset]));
        }
        Ok(out)
    };
    match &fourcc {
        b"GREY" | b"YU12" | b"YV12" | b"NV12" | b"NV21" => rows(1, 0),
        b"YUYV" | b"YVYU" => rows(2, 0),
        b"UYVY" | b"VYUY" => rows(2, 1),
        b"MJPG" | b"JPEG" => {
            let img = image::load_from_memory_with_format(data, image::ImageFormat::Jpeg)
                .context("undecodable MJPEG frame")?
                .into_luma8();
            Ok(img.into_raw())
        }
        _ => bail!("camera pixel format {name} is not supported"),
    }
}

/// Formats asked for, best first: luma comes free with the YUV ones.
const PREFERRED: [&[u8; 4]; 6] = [b"YUYV", b"GREY", b"YU12", b"NV12", b"UYVY", b"MJPG"];

/// A V4L2 device streaming through `linuxvideo`.
struct V4l2 {
    stream: linuxvideo::stream::ReadStream,
    fourcc: [u8; 4],
    width: u32,
    height: u32,
    stride: u32,
}

impl Grab for V4l2 {
    fn grab(&mut self) -> Result<(u32, u32, Vec<u8>)> {
        let (fourcc, w, h, stride) = (self.fourcc, self.width, self.height, self.stride);
        let gray = self.stream.dequeue(|buf| {
            to_gray(fourcc, w, h, stride, &buf).map_err(|e| std::io::Error::other(format!("{e:#}")))
        })?;
        Ok((w, h, gray))
    }
}

/// Opens `device` and starts streaming at about `width x height` in the first format it
/// offers from [`PREFERRED`].
pub fn open_v4l2(device: &PathBuf, width: u32, height: u32) -> Result<Box<dyn Grab>> {
    use linuxvideo::format::{PixFormat, PixelFormat};
    let dev = linuxvideo::Device::open(device)
        .with_context(|| format!("cannot open camera {}", device.display()))?;
    let offered: Vec<[u8; 4]> = dev
        .formats(linuxvideo::BufType::VIDEO_CAPTURE)
        .filter_map(|f| f.ok().map(|f| f.pixel_format().as_fourcc()))
        .collect();
    let Some(&fourcc) = PREFERRED.iter().find(|f| offered.contains(f)) else {
        bail!(
            "{}: offers none of the formats we read ({:?})",
            device.display(),
            offered
                .iter()
                .map(|f| String::from_utf8_lossy(f).into_owned())
                .collect::<Vec<_>>()
        );
    };
    let capture = dev
        .video_capture(PixFormat::new(
            width,
            height,
            PixelFormat::from_fourcc(*fourcc),
        ))
        .with_context(|| format!("{}: setting the capture format", device.display()))?;
    let got = capture.format();
    let (fourcc, width, height, stride) = (
        got.pixel_format().as_fourcc(),
        got.width(),
        got.height(),
        got.bytes_per_line(),
    );
    let stream = capture
        .into_stream()
        .with_context(|| format!("{}: starting the stream", device.display()))?;
    Ok(Box::new(V4l2 {
        stream,
        fourcc,
        width,
        height,
        stride,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::rc::Rc;

    /// A camera that delivers `frames` frames, then fails (as if unplugged).
    struct Fake {
        frames: u32,
    }

    impl Grab for Fake {
        fn grab(&mut self) -> Result<(u32, u32, Vec<u8>)> {
            if self.frames == 0 {
                bail!("No such device (os error 19)");
            }
            self.frames -= 1;
            Ok((32, 24, vec![self.frames as u8; 32 * 24]))
        }
    }

    #[test]
    fn reopens_with_backoff_and_keeps_counting_frames() {
        // open fails twice, then a camera with 2 frames, then it vanishes; open fails once,
        // then a camera with 1 frame; then every open fails.
        let script = Rc::new(RefCell::new(vec![None, None, Some(2), None, Some(1)]));
        let s2 = script.clone();
        let open = move || -> Result<Box<dyn Grab>> {
            let mut s = s2.borrow_mut();
            match if s.is_empty() { None } else { s.remove(0) } {
                Some(frames) => Ok(Box::new(Fake { frames }) as Box<dyn Grab>),
                None => bail!("cannot open camera /dev/video9"),
            }
        };
        let slept = Rc::new(RefCell::new(Vec::new()));
        let sl = slept.clone();
        let backoff = Backoff {
            first: Duration::from_millis(100),
            max: Duration::from_millis(300),
            attempts: Some(4),
        };
        let mut cam = Camera::with(
            "/dev/video9".into(),
            open,
            move |d| sl.borrow_mut().push(d.as_millis()),
            backoff,
        );
        let mut indices = Vec::new();
        let mut error = None;
        while let Some(f) = cam.next_frame() {
            match f {
                Ok(f) => indices.push((f.index, f.source.clone(), f.gray[0])),
                Err(e) => error = Some(format!("{e:#}")),
            }
        }
        let name = "/dev/video9".to_string();
        assert_eq!(
            indices,
            [(0, name.clone(), 1), (1, name.clone(), 0), (2, name, 0)]
        );
        // two failed opens (100, 200), the vanish + one failed open (100, 200), then 4
        // failures in a row end it (100, 200, 300 waited between them).
        assert_eq!(*slept.borrow(), [100, 200, 100, 200, 100, 200, 300]);
        let error = error.expect("gave up with an error");
        assert!(error.contains("giving up after 4 attempts"), "{error}");
        assert!(cam.next_frame().is_none());
    }

    #[test]
    fn luma_from_each_format() {
        let yuyv = [10u8, 128, 20, 129, 30, 128, 40, 129];
        assert_eq!(to_gray(*b"YUYV", 4, 1, 8, &yuyv).unwrap(), [10, 20, 30, 40]);
        let uyvy = [128u8, 10, 129, 20];
        assert_eq!(to_gray(*b"UYVY", 2, 1, 0, &uyvy).unwrap(), [10, 20]);
        // stride padding is skipped
        let grey = [1u8, 2, 0, 0, 3, 4, 0, 0];
        assert_eq!(to_gray(*b"GREY", 2, 2, 4, &grey).unwrap(), [1, 2, 3, 4]);
        let e = to_gray(*b"YUYV", 4, 2, 8, &yuyv).unwrap_err().to_string();
        assert!(e.contains("short"), "{e}");
        assert!(to_gray(*b"H264", 2, 2, 0, &grey).is_err());
    }

    #[test]
    fn a_missing_device_is_named() {
        let e = open_v4l2(&PathBuf::from("/dev/video-missing"), 640, 480)
            .err()
            .unwrap();
        assert!(format!("{e:#}").contains("/dev/video-missing"), "{e:#}");
    }
}
