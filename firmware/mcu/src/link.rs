//! The board's end of the host link ([`emoedge_core::link`]): after its stand-alone report
//! the firmware answers the host's requests on the same serial port, one at a time, for as
//! long as it runs. A frame that arrives damaged, too long, or in another protocol version
//! is answered with an error frame naming what was wrong; nothing a host sends can fault the
//! board.

use crate::app::Console;
use crate::app::timed_run;
use core::fmt::Write;
use embedded_hal_nb::serial;
use emoedge_core::link::{
    self, CostUnit, FrameReader, Hello, LayerCost, LinkError, MAX_FRAME, Request, Response,
};
use emoedge_core::model::MAX_LAYERS;
use emoedge_core::preprocess::INPUT_LEN;
use emoedge_core::{Engine, Model};

/// A board's serial port, carrying the stand-alone report as text and then the link's
/// frames. It keeps the first byte a host sends while the report runs, so that the frame it
/// starts is read whole.
pub struct Port<S> {
    serial: S,
    pending: Option<u8>,
}

impl<S: serial::Read<u8> + serial::Write<u8>> Port<S> {
    /// The port over a HAL's serial peripheral, configured and enabled.
    pub fn new(serial: S) -> Self {
        Self {
            serial,
            pending: None,
        }
    }

    /// The next byte from the host, waiting for it. Receive errors (overrun, framing,
    /// noise) are dropped: the frame they hit fails its CRC and is answered as damaged.
    fn next_byte(&mut self) -> u8 {
        if let Some(b) = self.pending.take() {
            return b;
        }
        loop {
            match self.serial.read() {
                Ok(b) => return b,
                Err(nb::Error::WouldBlock | nb::Error::Other(_)) => {}
            }
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        for &b in bytes {
            let _ = nb::block!(self.serial.write(b));
        }
        let _ = nb::block!(self.serial.flush());
    }
}

impl<S: serial::Read<u8> + serial::Write<u8>> Write for Port<S> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        self.send(s.as_bytes());
        Ok(())
    }
}

impl<S: serial::Read<u8> + serial::Write<u8>> Console for Port<S> {
    fn host_spoke(&mut self) -> bool {
        if self.pending.is_none() {
            self.pending = self.serial.read().ok();
        }
        self.pending.is_some()
    }
}

/// Answers the host's requests forever: `hello` to [`Request::Hello`], and each face
/// classified with `model` (when the board has one) in `arena`, timed by `clock`.
pub fn serve<S: serial::Read<u8> + serial::Write<u8>>(
    port: &mut Port<S>,
    clock: &mut impl FnMut() -> u64,
    hello: &Hello<'_>,
    model: Option<&Model>,
    arena: &mut [i8],
) -> ! {
    let mut reader = FrameReader::<MAX_FRAME>::new();
    let mut scratch = [0u8; RESPONSE_CONTENT];
    let mut out = [0u8; RESPONSE_FRAME];
    let mut layers = [0u64; MAX_LAYERS];
    loop {
        let byte = port.next_byte();
        let response = match reader.push(byte) {
            None => continue,
            Some(Err(e)) => Response::Error(e),
            Some(Ok(message)) => match link::decode::<Request>(message) {
                Err(e) => Response::Error(e),
                Ok(Request::Hello) => Response::Hello(hello.clone()),
                Ok(Request::Classify { id, face }) => {
                    match classify(model, face, arena, clock, &mut layers) {
                        Ok((_, logits, cost)) => Response::Logits { id, logits, cost },
                        Err(e) => Response::Error(e),
                    }
                }
                Ok(Request::Profile { face }) => {
                    match classify(model, face, arena, clock, &mut layers) {
                        Ok((m, _, cost)) => profile(m, &layers, cost),
                        Err(e) => Response::Error(e),
                    }
                }
            },
        };
        match link::encode(&response, &mut scratch, &mut out) {
            Ok(frame) => port.send(frame),
            // Every response fits its buffers (a profile of MAX_LAYERS layers is the
            // largest); should one not, the host hears that much instead of nothing.
            Err(e) => {
                if let Ok(frame) = link::encode(&Response::Error(e), &mut scratch, &mut out) {
                    port.send(frame);
                }
            }
        }
    }
}

/// Room for the largest response: a profile of every layer.
const RESPONSE_CONTENT: usize = 1024;
const RESPONSE_FRAME: usize = RESPONSE_CONTENT + RESPONSE_CONTENT / 254 + 3;

/// Runs `model` (when the board has one) on `face`; returns the model, the logits and the
/// inference's cost, and each layer's cost in `layers`.
fn classify<'m, 'b>(
    model: Option<&'m Model<'b>>,
    face: &[u8],
    arena: &mut [i8],
    clock: &mut impl FnMut() -> u64,
    layers: &mut [u64],
) -> Result<(&'m Model<'b>, Logits, u64), LinkError> {
    let model = model.ok_or(LinkError::NoModel)?;
    let face: &[u8; INPUT_LEN] = face.try_into().map_err(|_| LinkError::FaceSize {
        got: face.len() as u32,
        want: INPUT_LEN as u32,
    })?;
    layers.fill(0);
    let (logits, cost) = timed_run(&Engine::new(model), face, arena, clock, layers)
        .map_err(|_| LinkError::Engine)?;
    let logits = Logits::from_slice(logits).map_err(|_| LinkError::Engine)?;
    Ok((model, logits, cost))
}

/// One int8 logit per class, as a response carries them.
type Logits = heapless::Vec<i8, { emoedge_core::MAX_CLASSES }>;

/// The [`Response::Profile`] of `model` from each layer's cost.
fn profile(model: &Model, layers: &[u64], cost: u64) -> Response<'static> {
    let layers = model
        .steps()
        .iter()
        .zip(layers)
        .map(|(step, &units)| LayerCost {
            op: step.step.op_name(),
            macs: step.macs,
            cost: units,
        })
        .collect();
    Response::Profile { layers, cost }
}

/// The hello of a board, for [`serve`].
pub fn hello<'a>(
    board: &'a crate::Board,
    unit: CostUnit,
    arena_len: usize,
    model: link::ModelState<'a>,
) -> Hello<'a> {
    Hello {
        board: board.name,
        core: board.core,
        clock_hz: board.clock_hz,
        firmware: env!("CARGO_PKG_VERSION"),
        unit,
        arena_len: arena_len as u32,
        model,
    }
}
