//! The host's end of the board link ([`emoedge_core::link`]): a board's serial port, or its
//! firmware in an emulator whose UART is piped to us, spoken to one request at a time.
//!
//! Bytes are read on a thread of their own and handed over through a channel, so that every
//! wait has a deadline: a board that stops answering is named with its port and the request
//! it was asked, never waited on forever.

use super::emulate;
use anyhow::{Context, Result, anyhow, bail};
use emoedge_boards::{Board, Emulator};
use emoedge_core::link::{
    self, FrameReader, Hello, LinkError, MAX_CONTENT, MAX_FRAME, Request, Response,
};
use std::collections::VecDeque;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

/// The serial settings every board's firmware uses: 115200 baud, 8N1.
pub const BAUD: u32 = 115_200;

/// How long a board may take to answer one request before it counts as gone: a face is
/// ~2.3 KB (0.2 s at 115200 baud) and an inference on the slowest board (the Pico, 1.2 s)
/// or in the slowest emulator (rp2040js, ~3.5 s on one host core).
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);

/// A link to one board.
pub struct BoardLink {
    /// What the link reaches, for messages ("/dev/ttyACM0", "pico in rp2040js").
    name: String,
    writer: Box<dyn Write + Send>,
    chunks: Receiver<std::io::Result<Vec<u8>>>,
    pending: VecDeque<u8>,
    reader: Box<FrameReader<MAX_FRAME>>,
    /// The last message received, which the last [`Response`] borrows.
    message: Vec<u8>,
    /// A request's unframed content and its frame, kept from request to request.
    scratch: Vec<u8>,
    frame: Vec<u8>,
    /// The emulator behind the link, stopped when the link is dropped.
    child: Option<Child>,
    /// The last request sent, for messages.
    last: &'static str,
    closed: Option<String>,
    /// How long [`BoardLink::request`] waits for an answer.
    pub timeout: Duration,
}

impl Drop for BoardLink {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Which of an emulated board's serial ports carries the link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wire {
    /// The UART every board has.
    Uart,
    /// The Pico's own USB, a CDC-ACM serial port (what a user plugging in the cable gets).
    Usb,
}

/// The command that runs `firmware` in `board`'s emulator with `blob` in its blob region and
/// the serial port `wire` on the command's standard input and output, and the link's name
/// ("pico in rp2040js").
pub fn emulator_command(
    board: &Board,
    firmware: &Path,
    blob: &Path,
    wire: Wire,
) -> Result<(Command, String)> {
    if !firmware.is_file() {
        bail!(
            "no firmware at {}: build it with `cargo build --release` in {}",
            firmware.display(),
            board.firmware_dir
        );
    }
    let len = std::fs::metadata(blob).with_context(|| format!("the blob {}", blob.display()))?;
    super::check_fits(board, len.len() as usize)?;
    let (cmd, emulator) = match board.emulator {
        Emulator::Rp2040js => {
            let mut cmd = emulate::rp2040js_command(
                board,
                firmware,
                &emulate::Flashed {
                    blob: Some(blob),
                    ..Default::default()
                },
            )?;
            cmd.arg("--link").arg(match wire {
                Wire::Uart => "uart",
                Wire::Usb => "usb",
            });
            let name = match wire {
                Wire::Uart => "rp2040js",
                Wire::Usb => "rp2040js over USB",
            };
            (cmd, name)
        }
        Emulator::QemuSerial { .. } if wire == Wire::Usb => bail!(
            "the {} firmware speaks the link on its UART only; USB is the Pico's",
            board.name
        ),
        Emulator::QemuSerial { machine } => (
            emulate::qemu_serial_command(
                board,
                machine,
                firmware,
                &emulate::Flashed {
                    blob: Some(blob),
                    ..Default::default()
                },
            ),
            "QEMU",
        ),
        Emulator::QemuSemihosting { .. } => bail!(
            "the {} build reports over semihosting and has no serial link; the boards with \
             one are pico and stm32f405",
            board.name
        ),
    };
    Ok((cmd, format!("{} in {emulator}", board.name)))
}

/// Writes `bytes` to the link named `name`, flushed.
fn write_all(writer: &mut dyn Write, name: &str, bytes: &[u8]) -> Result<()> {
    writer
        .write_all(bytes)
        .and_then(|()| writer.flush())
        .with_context(|| format!("writing to {name}"))
}

/// The serial ports the system lists, for a message.
fn port_list() -> String {
    match serialport::available_ports() {
        Ok(ports) if !ports.is_empty() => ports
            .iter()
            .map(|p| p.port_name.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        Ok(_) => "none (is the board plugged in?)".into(),
        Err(e) => format!("unknown ({e})"),
    }
}

impl BoardLink {
    /// A link over any byte transport: `input` is what the board sends, `output` what it
    /// receives; `child`, when given, is stopped with the link.
    pub fn over(
        name: impl Into<String>,
        mut input: impl Read + Send + 'static,
        output: impl Write + Send + 'static,
        child: Option<Child>,
    ) -> Self {
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            loop {
                match input.read(&mut buf) {
                    Ok(0) => {
                        let _ = tx.send(Err(std::io::ErrorKind::UnexpectedEof.into()));
                        break;
                    }
                    Ok(n) => {
                        if tx.send(Ok(buf[..n].to_vec())).is_err() {
                            break;
                        }
                    }
                    // A serial port's read timeout: nothing arrived yet. An empty chunk tells
                    // whether the link is still there to take what comes.
                    Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                        if tx.send(Ok(Vec::new())).is_err() {
                            break;
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        break;
                    }
                }
            }
        });
        Self {
            name: name.into(),
            writer: Box::new(output),
            chunks: rx,
            pending: VecDeque::new(),
            reader: Box::new(FrameReader::new()),
            message: Vec::new(),
            scratch: vec![0u8; MAX_CONTENT],
            frame: vec![0u8; MAX_FRAME],
            child,
            last: "nothing yet",
            closed: None,
            timeout: ANSWER_TIMEOUT,
        }
    }

    /// Opens the serial port at `path` (115200 8N1); a missing or wrong port is named with
    /// the ports there are.
    pub fn open_port(path: &str) -> Result<Self> {
        let port = serialport::new(path, BAUD)
            .timeout(Duration::from_millis(100))
            .open()
            .map_err(|e| {
                anyhow!(
                    "cannot open serial port {path}: {e}; the ports are: {}",
                    port_list()
                )
            })?;
        let input = port
            .try_clone()
            .with_context(|| format!("serial port {path}"))?;
        Ok(Self::over(path, input, port, None))
    }

    /// Starts `firmware` in `board`'s emulator with `blob` in its blob region and its serial
    /// port `wire` piped to the link.
    pub fn emulate(board: &Board, firmware: &Path, blob: &Path, wire: Wire) -> Result<Self> {
        let (mut cmd, name) = emulator_command(board, firmware, blob, wire)?;
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {name} ({:?})", cmd.get_program()))?;
        let input = child.stdout.take().context("the emulator's output")?;
        let output = child.stdin.take().context("the emulator's input")?;
        Ok(Self::over(name, input, output, Some(child)))
    }

    /// What the link reaches.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Sends raw bytes (for tests of damaged frames).
    pub fn send_raw(&mut self, bytes: &[u8]) -> Result<()> {
        write_all(&mut self.writer, &self.name, bytes)
    }

    /// Sends `request` and returns the board's answer, within [`BoardLink::timeout`].
    pub fn request(&mut self, request: &Request) -> Result<Response<'_>> {
        self.send(request)?;
        self.receive()
    }

    /// The board's next frame, within [`BoardLink::timeout`] (after [`BoardLink::send_raw`]).
    pub fn receive(&mut self) -> Result<Response<'_>> {
        match self.next_frame(self.timeout)? {
            Ok(()) => link::decode(&self.message).map_err(|e| {
                anyhow!(
                    "{} answered the {} request with a frame that {e}",
                    self.name,
                    self.last
                )
            }),
            Err(e) => Err(anyhow!(
                "{} answered the {} request with a frame refused here: {e}",
                self.name,
                self.last
            )),
        }
    }

    /// Says hello until the board answers with its [`Hello`], within `wait`: the firmware may
    /// be finishing a stand-alone frame, or (in an emulator) not have its UART on yet, and
    /// its report's text lines come before. A hello the board refuses (cut by its start) is
    /// sent again; a board of another protocol version is named as such.
    pub fn hello(&mut self, wait: Duration) -> Result<Hello<'_>> {
        let deadline = Instant::now() + wait;
        let mismatch = |name: &str, board: u8, host: u8| {
            anyhow!(
                "{name} speaks link protocol version {board}, this emoedge speaks version \
                 {host}: flash the firmware of this release"
            )
        };
        'ask: loop {
            self.send(&Request::Hello)?;
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                let attempt = left.min(Duration::from_secs(2));
                let frame = match self.next_frame(attempt) {
                    Ok(frame) => frame,
                    Err(_) if !left.is_zero() && self.closed.is_none() => continue 'ask,
                    Err(e) if self.closed.is_some() => return Err(e),
                    Err(_) => bail!(
                        "no hello from {} within {} s: is the firmware of this release \
                         flashed, and the port the board's?",
                        self.name,
                        wait.as_secs()
                    ),
                };
                match frame {
                    Ok(()) => match link::decode::<Response>(&self.message) {
                        Ok(Response::Hello(_)) => break 'ask,
                        Ok(Response::Error(LinkError::Version { found, supported })) => {
                            return Err(mismatch(&self.name, supported, found));
                        }
                        _ => continue 'ask,
                    },
                    Err(LinkError::Version { found, supported }) => {
                        return Err(mismatch(&self.name, found, supported));
                    }
                    // The report's text, or a frame cut by the board's start: skip it.
                    Err(_) => {}
                }
            }
        }
        match link::decode(&self.message) {
            Ok(Response::Hello(h)) => Ok(h),
            _ => unreachable!("the loop above ends on a hello"),
        }
    }

    fn send(&mut self, request: &Request) -> Result<()> {
        self.last = match request {
            Request::Hello => "hello",
            Request::Classify { .. } => "classify",
            Request::Profile { .. } => "profile",
        };
        let frame = link::encode(request, &mut self.scratch, &mut self.frame)
            .map_err(|e| anyhow!("encoding a {} request: {e}", self.last))?;
        write_all(&mut self.writer, &self.name, frame)
    }

    /// Reads bytes until a frame ends: `Ok(Ok(()))` with its message in `self.message`,
    /// `Ok(Err(_))` for a frame refused, `Err` after `wait` or when the link closes.
    fn next_frame(&mut self, wait: Duration) -> Result<Result<(), LinkError>> {
        let deadline = Instant::now() + wait;
        loop {
            while let Some(b) = self.pending.pop_front() {
                if let Some(got) = self.reader.push(b) {
                    return Ok(got.map(|m| {
                        self.message.clear();
                        self.message.extend_from_slice(m);
                    }));
                }
            }
            if let Some(why) = &self.closed {
                bail!(
                    "{} closed ({why}) after the {} request",
                    self.name,
                    self.last
                );
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.chunks.recv_timeout(left) {
                Ok(Ok(bytes)) => self.pending.extend(bytes),
                Ok(Err(e)) => self.closed = Some(e.to_string()),
                Err(RecvTimeoutError::Disconnected) => self.closed = Some("no reader".into()),
                Err(RecvTimeoutError::Timeout) => bail!(
                    "{} did not answer the {} request within {:.0} s",
                    self.name,
                    self.last,
                    wait.as_secs_f64()
                ),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use emoedge_core::link::{CostUnit, ModelState, VERSION};
    use std::io::Cursor;

    /// A board that sends `bytes` whatever it is asked, then falls silent.
    fn board_sending(bytes: Vec<u8>) -> BoardLink {
        let mut link = BoardLink::over("a test board", Cursor::new(bytes), std::io::sink(), None);
        link.timeout = Duration::from_millis(200);
        link
    }

    fn frame(response: &Response) -> Vec<u8> {
        let (mut scratch, mut out) = (vec![0u8; MAX_CONTENT], vec![0u8; MAX_FRAME]);
        link::encode(response, &mut scratch, &mut out)
            .unwrap()
            .to_vec()
    }

    #[test]
    fn the_hello_comes_after_the_boards_text_report() {
        let hello = Response::Hello(Hello {
            board: "pico",
            core: "Cortex-M0+",
            clock_hz: 125_000_000,
            firmware: "0.1.0",
            unit: CostUnit::Cycles,
            arena_len: 98_304,
            model: ModelState::Refused("no valid model blob in its flash region"),
        });
        let mut bytes = b"emoedge-mcu: error: test frames: none\n".to_vec();
        bytes.extend(frame(&hello));
        let mut link = board_sending(bytes);
        let got = link.hello(Duration::from_secs(2)).unwrap();
        assert_eq!((got.board, got.clock_hz), ("pico", 125_000_000));
    }

    #[test]
    fn a_board_of_another_protocol_version_is_named() {
        // An answer as a board of the next protocol version would send it.
        let bytes = link::encode_as_version(VERSION + 1, &Response::Error(LinkError::Decode));
        let err = board_sending(bytes)
            .hello(Duration::from_secs(2))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&format!(
                "speaks link protocol version {}, this emoedge speaks version {VERSION}",
                VERSION + 1
            )),
            "{err}"
        );
    }

    #[test]
    fn a_board_that_goes_away_is_named_with_the_request() {
        let mut link = board_sending(Vec::new());
        let face = [0u8; emoedge_core::preprocess::INPUT_LEN];
        let err = format!(
            "{:#}",
            link.request(&Request::Classify { id: 0, face: &face })
                .unwrap_err()
        );
        assert!(
            err.contains("a test board closed") && err.contains("classify request"),
            "{err}"
        );
    }
}
