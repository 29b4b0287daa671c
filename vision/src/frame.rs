//! Frames, and their sources behind one trait: image files and folders, raw gray and
//! YUV4MPEG2 frames on a reader (the Pi app adds its camera).

use anyhow::{Context, Result, bail};
use std::io::Read;
use std::path::{Path, PathBuf};

/// One frame: gray pixels for detection and inference, the colour image when there is one
/// (for annotation), and where it came from.
#[derive(Clone, Debug)]
pub struct Frame {
    /// File path or stream name.
    pub source: String,
    /// Index within the source.
    pub index: u64,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// `width · height` gray pixels.
    pub gray: Vec<u8>,
    /// The decoded colour image, for `--annotate` (files only).
    pub rgb: Option<image::RgbImage>,
    /// Whether frames of this source follow each other in time (video), so faces may be
    /// tracked and smoothed across them.
    pub video: bool,
}

impl Frame {
    /// A gray frame of a stream (stdin, camera): no colour copy, tracked over time.
    pub fn video(source: &str, index: u64, width: u32, height: u32, gray: Vec<u8>) -> Self {
        Frame {
            source: source.into(),
            index,
            width,
            height,
            gray,
            rgb: None,
            video: true,
        }
    }

    /// The gray pixels as the core's frame view, which crops faces; an error names the
    /// source when the buffer does not hold `width x height` pixels.
    pub fn view(&self) -> Result<emoedge_core::preprocess::Frame<'_>> {
        emoedge_core::preprocess::Frame::new(
            &self.gray,
            self.width,
            self.height,
            emoedge_core::preprocess::PixelFormat::Gray8,
        )
        .map_err(|e| anyhow::anyhow!("{}: {e:?}", self.source))
    }
}

/// Something that yields frames until it ends.
pub trait FrameSource {
    /// The next frame; `None` at the end. An error names the input and the problem; the
    /// caller reports it and asks for the next frame (a bad file does not end a folder).
    fn next_frame(&mut self) -> Option<Result<Frame>>;
}

/// Image files, and every image file in the given folders (sorted); once, or round and
/// round (a live view of a folder).
pub struct Files {
    paths: Vec<PathBuf>,
    next: usize,
    /// Passes over the list finished; a looped file's frame index, so that each pass's
    /// reports differ.
    pass: u64,
    looped: bool,
    keep_rgb: bool,
}

const IMAGE_EXT: &[&str] = &[
    "png", "jpg", "jpeg", "bmp", "pgm", "ppm", "gif", "tif", "tiff", "webp",
];

impl Files {
    /// Expands folders (one level) and checks that every path exists. `keep_rgb` keeps a
    /// colour copy of each frame (for `--annotate`); without it only gray is produced.
    pub fn new(inputs: &[PathBuf], keep_rgb: bool) -> Result<Self> {
        let mut paths = Vec::new();
        for p in inputs {
            if p.is_dir() {
                let mut v: Vec<PathBuf> = std::fs::read_dir(p)
                    .with_context(|| format!("reading {}", p.display()))?
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|f| f.is_file() && is_image(f))
                    .collect();
                v.sort();
                if v.is_empty() {
                    bail!("{} holds no image files", p.display());
                }
                paths.extend(v);
            } else if p.is_file() {
                paths.push(p.clone());
            } else {
                bail!("{} does not exist", p.display());
            }
        }
        Ok(Self {
            paths,
            next: 0,
            pass: 0,
            looped: false,
            keep_rgb,
        })
    }

    /// Starts over at the first file after the last, forever.
    pub fn looped(mut self) -> Self {
        self.looped = true;
        self
    }
}

fn is_image(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXT.contains(&e.to_ascii_lowercase().as_str()))
}

impl FrameSource for Files {
    fn next_frame(&mut self) -> Option<Result<Frame>> {
        if self.next == self.paths.len() && self.looped {
            self.next = 0;
            self.pass += 1;
        }
        let path = self.paths.get(self.next)?.clone();
        self.next += 1;
        let index = self.pass;
        Some((|| {
            let img = image::open(&path)
                .with_context(|| format!("{}: not a readable image", path.display()))?;
            let rgb = self.keep_rgb.then(|| img.to_rgb8());
            let gray = img.into_luma8();
            Ok(Frame {
                source: path.display().to_string(),
                index,
                width: gray.width(),
                height: gray.height(),
                gray: gray.into_raw(),
                rgb,
                video: false,
            })
        })())
    }
}

/// Raw 8-bit gray frames of a fixed size, back to back, on a reader (stdin):
/// `ffmpeg -i VIDEO -f rawvideo -pix_fmt gray - | emoedge-pi --stdin 640x480`.
pub struct RawGray<R: Read> {
    reader: R,
    width: u32,
    height: u32,
    index: u64,
}

impl<R: Read> RawGray<R> {
    /// A source of `width x height` frames.
    pub fn new(reader: R, width: u32, height: u32) -> Self {
        Self {
            reader,
            width,
            height,
            index: 0,
        }
    }
}

impl<R: Read> FrameSource for RawGray<R> {
    fn next_frame(&mut self) -> Option<Result<Frame>> {
        let n = (self.width * self.height) as usize;
        let mut buf = vec![0u8; n];
        let mut got = 0;
        while got < n {
            match self.reader.read(&mut buf[got..]) {
                Ok(0) => break,
                Ok(k) => got += k,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Some(Err(e).context("reading stdin")),
            }
        }
        if got == 0 {
            return None;
        }
        if got < n {
            return Some(Err(anyhow::anyhow!(
                "stdin: last frame truncated ({got} of {n} bytes); was the size right?"
            )));
        }
        let index = self.index;
        self.index += 1;
        Some(Ok(Frame::video(
            "stdin",
            index,
            self.width,
            self.height,
            buf,
        )))
    }
}

/// A YUV4MPEG2 stream (`ffmpeg … -f yuv4mpegpipe -pix_fmt gray -`, or any 4:2:0 / 4:2:2 /
/// 4:4:4 stream): the luma plane of each frame is the gray frame; chroma is skipped.
pub struct Y4m<R: Read> {
    reader: std::io::BufReader<R>,
    width: u32,
    height: u32,
    chroma: usize,
    index: u64,
}

impl<R: Read> Y4m<R> {
    /// Reads the stream header.
    pub fn new(reader: R) -> Result<Self> {
        use std::io::BufRead;
        let mut reader = std::io::BufReader::new(reader);
        let mut line = String::new();
        reader
            .read_line(&mut line)
            .context("reading the Y4M header")?;
        let mut parts = line.split_whitespace();
        if parts.next() != Some("YUV4MPEG2") {
            bail!("stdin is not a YUV4MPEG2 stream");
        }
        let (mut width, mut height, mut cs) = (0u32, 0u32, "420jpeg");
        for p in parts {
            match p.split_at(1) {
                ("W", v) => width = v.parse().context("bad Y4M width")?,
                ("H", v) => height = v.parse().context("bad Y4M height")?,
                ("C", v) => {
                    cs = if v.starts_with("mono") {
                        "mono"
                    } else if v.starts_with("444") {
                        "444"
                    } else if v.starts_with("422") {
                        "422"
                    } else {
                        "420"
                    }
                }
                _ => {}
            }
        }
        if width < 24 || height < 24 {
            bail!("Y4M frame size {width}x{height} is too small");
        }
        let luma = width as usize * height as usize;
        let chroma = match cs {
            "mono" => 0,
            "444" => 2 * luma,
            "422" => 2 * (width as usize).div_ceil(2) * height as usize,
            _ => 2 * (width as usize).div_ceil(2) * (height as usize).div_ceil(2),
        };
        Ok(Self {
            reader,
            width,
            height,
            chroma,
            index: 0,
        })
    }
}

impl<R: Read> FrameSource for Y4m<R> {
    fn next_frame(&mut self) -> Option<Result<Frame>> {
        use std::io::BufRead;
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) => return None,
            Ok(_) if line.starts_with("FRAME") => {}
            Ok(_) => {
                return Some(Err(anyhow::anyhow!(
                    "Y4M: expected FRAME, got {:?}",
                    line.trim()
                )));
            }
            Err(e) => return Some(Err(e).context("reading stdin")),
        }
        let mut gray = vec![0u8; self.width as usize * self.height as usize];
        let mut skip = vec![0u8; self.chroma];
        if let Err(e) = self
            .reader
            .read_exact(&mut gray)
            .and_then(|_| self.reader.read_exact(&mut skip))
        {
            return Some(Err(e).context("Y4M: last frame truncated"));
        }
        let index = self.index;
        self.index += 1;
        Some(Ok(Frame::video(
            "stdin",
            index,
            self.width,
            self.height,
            gray,
        )))
    }
}

/// Parses `WIDTHxHEIGHT`.
pub fn parse_size(s: &str) -> Result<(u32, u32)> {
    let (w, h) = s
        .split_once('x')
        .with_context(|| format!("{s:?}: expected WIDTHxHEIGHT, e.g. 640x480"))?;
    let (w, h): (u32, u32) = (w.parse()?, h.parse()?);
    if w < 24 || h < 24 || w > 8192 || h > 8192 {
        bail!("{s}: frame size out of range");
    }
    Ok((w, h))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_frames_split_and_report_truncation() {
        let data = vec![7u8; 30 * 24 * 2 + 5];
        let mut src = RawGray::new(&data[..], 30, 24);
        assert_eq!(src.next_frame().unwrap().unwrap().index, 0);
        assert_eq!(src.next_frame().unwrap().unwrap().index, 1);
        assert!(
            src.next_frame()
                .unwrap()
                .unwrap_err()
                .to_string()
                .contains("truncated")
        );
        assert_eq!(parse_size("640x480").unwrap(), (640, 480));
        let mut y4m = b"YUV4MPEG2 W32 H24 F30:1 Ip A1:1 C420jpeg\n".to_vec();
        for k in 0..2u8 {
            y4m.extend_from_slice(b"FRAME\n");
            y4m.extend(std::iter::repeat_n(k, 32 * 24));
            y4m.extend(std::iter::repeat_n(128u8, 2 * 16 * 12));
        }
        let mut src = Y4m::new(&y4m[..]).unwrap();
        let f = src.next_frame().unwrap().unwrap();
        assert_eq!((f.width, f.height, f.gray[0]), (32, 24, 0));
        assert_eq!(src.next_frame().unwrap().unwrap().gray[5], 1);
        assert!(src.next_frame().is_none());
        assert!(Y4m::new(&b"P5 32 24"[..]).is_err());
        assert!(parse_size("640").is_err());
    }
}
