//! A driver for ArduCAM-style camera modules (an image sensor configured over I2C/SCCB, and
//! a frame FIFO read over SPI; e.g. ArduCAM Mini 2MP with an OV2640), generic over the
//! `embedded-hal` 1.0 traits so it runs on any microcontroller HAL.
//!
//! The sensor is set to a YUV 4:2:2 mode of `width x height` by a register table that the
//! caller supplies ([`SensorConfig::registers`], from the sensor vendor's application
//! notes for the chosen mode; it is not reproduced here). The driver checks the module and
//! sensor are there, loads the table, triggers single captures, and streams the FIFO line
//! by line through a [`Binner`], keeping only the luma: 48x48 gray frames come out with
//! a 2-line buffer and 4.6 KB of sums, never a full frame in RAM.

use crate::binner::{BadSize, Binner, MAX_SIDE};
use crate::{FrameInfo, FrameSource, INPUT_LEN, Scene, SceneSource};
use embedded_hal::delay::DelayNs;
use embedded_hal::i2c::I2c;
use embedded_hal::spi::{Operation, SpiDevice};

/// SPI register map of the ArduCAM controller.
pub mod reg {
    /// Scratch register: what is written reads back (presence test).
    pub const TEST: u8 = 0x00;
    /// Frames to capture minus one.
    pub const FRAMES: u8 = 0x01;
    /// FIFO control: [`FIFO_CLEAR`] | [`FIFO_START`].
    pub const FIFO: u8 = 0x04;
    /// Clears the capture-done flag.
    pub const FIFO_CLEAR: u8 = 0x01;
    /// Starts a capture.
    pub const FIFO_START: u8 = 0x02;
    /// Status: [`CAPTURE_DONE`].
    pub const TRIG: u8 = 0x41;
    /// Capture finished.
    pub const CAPTURE_DONE: u8 = 0x08;
    /// FIFO length, bytes 0..2 (little end first; the top byte has 7 bits).
    pub const FIFO_SIZE: [u8; 3] = [0x42, 0x43, 0x44];
    /// Burst read of the FIFO from its read pointer.
    pub const BURST_READ: u8 = 0x3C;
    /// Set on the address byte of a register write.
    pub const WRITE: u8 = 0x80;
}

/// OV2640 sensor: 7-bit I2C address and identification registers.
pub mod sensor {
    /// I2C (SCCB) address.
    pub const ADDR: u8 = 0x30;
    /// Register-bank select; `1` selects the sensor bank.
    pub const BANK: u8 = 0xFF;
    /// Product ID high and low bytes (sensor bank).
    pub const PID: [u8; 2] = [0x0A, 0x0B];
    /// Product ID high byte of the OV2640.
    pub const PID_HIGH: u8 = 0x26;
    /// COM7; [`RESET`] resets every register.
    pub const COM7: u8 = 0x12;
    /// Soft reset bit of COM7.
    pub const RESET: u8 = 0x80;
}

/// Byte order of the sensor's YUV 4:2:2 output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum YuvOrder {
    /// `Y0 U Y1 V`: luma on even bytes.
    Yuyv,
    /// `U Y0 V Y1`: luma on odd bytes.
    Uyvy,
}

/// The sensor mode the firmware runs the camera in.
#[derive(Clone, Copy, Debug)]
pub struct SensorConfig {
    /// Frame width in pixels (48 to 192).
    pub width: u16,
    /// Frame height in pixels (48 to 192).
    pub height: u16,
    /// YUV byte order that the register table selects.
    pub order: YuvOrder,
    /// `(register, value)` writes that put the sensor in this mode, applied in order after
    /// a reset; a write to [`sensor::BANK`] switches banks as usual.
    pub registers: &'static [(u8, u8)],
}

/// What went wrong, with the bus error where there was one.
#[derive(Debug, PartialEq, Eq)]
pub enum Error<S, I> {
    /// The SPI bus failed.
    Spi(S),
    /// The I2C bus failed.
    I2c(I),
    /// The SPI scratch register did not read back: no module, or wiring.
    NoCamera {
        /// What came back instead of the test pattern.
        read: u8,
    },
    /// The sensor's product ID is not an OV2640's.
    WrongSensor {
        /// The ID read.
        pid: u16,
    },
    /// No capture-done flag within the timeout.
    Timeout,
    /// The FIFO holds less than one frame.
    ShortFrame {
        /// Bytes in the FIFO.
        got: u32,
        /// Bytes of one frame.
        need: u32,
    },
    /// The configured size is outside what the driver can downscale.
    Size(BadSize),
    /// A whole-frame buffer shorter than a frame.
    ShortBuffer {
        /// Its length.
        got: usize,
        /// Bytes of one gray frame.
        need: usize,
    },
}

/// Polls of the capture-done flag, 1 ms apart, before [`Error::Timeout`].
pub const CAPTURE_TIMEOUT_MS: u32 = 1000;

/// An ArduCAM-style module on an SPI device and an I2C bus.
pub struct ArduCam<S, I, D> {
    spi: S,
    i2c: I,
    delay: D,
    cfg: SensorConfig,
    binner: Binner,
}

impl<S: SpiDevice, I: I2c, D: DelayNs> ArduCam<S, I, D> {
    /// Takes the buses; nothing is sent until [`ArduCam::init`].
    pub fn new(
        spi: S,
        i2c: I,
        delay: D,
        cfg: SensorConfig,
    ) -> Result<Self, Error<S::Error, I::Error>> {
        let binner = Binner::new(cfg.width as usize, cfg.height as usize).map_err(Error::Size)?;
        Ok(ArduCam {
            spi,
            i2c,
            delay,
            cfg,
            binner,
        })
    }

    /// Gives the buses back.
    pub fn release(self) -> (S, I, D) {
        (self.spi, self.i2c, self.delay)
    }

    fn write_reg(&mut self, addr: u8, value: u8) -> Result<(), Error<S::Error, I::Error>> {
        self.spi
            .write(&[addr | reg::WRITE, value])
            .map_err(Error::Spi)
    }

    fn read_reg(&mut self, addr: u8) -> Result<u8, Error<S::Error, I::Error>> {
        let mut v = [0u8];
        self.spi
            .transaction(&mut [
                Operation::Write(&[addr & !reg::WRITE]),
                Operation::Read(&mut v),
            ])
            .map_err(Error::Spi)?;
        Ok(v[0])
    }

    fn sensor_write(&mut self, r: u8, v: u8) -> Result<(), Error<S::Error, I::Error>> {
        self.i2c.write(sensor::ADDR, &[r, v]).map_err(Error::I2c)
    }

    fn sensor_read(&mut self, r: u8) -> Result<u8, Error<S::Error, I::Error>> {
        let mut v = [0u8];
        self.i2c
            .write_read(sensor::ADDR, &[r], &mut v)
            .map_err(Error::I2c)?;
        Ok(v[0])
    }

    /// Checks the module and sensor answer, resets the sensor and loads the mode's table.
    pub fn init(&mut self) -> Result<(), Error<S::Error, I::Error>> {
        const PATTERN: u8 = 0x55;
        self.write_reg(reg::TEST, PATTERN)?;
        let read = self.read_reg(reg::TEST)?;
        if read != PATTERN {
            return Err(Error::NoCamera { read });
        }
        self.sensor_write(sensor::BANK, 1)?;
        let pid = u16::from_be_bytes([
            self.sensor_read(sensor::PID[0])?,
            self.sensor_read(sensor::PID[1])?,
        ]);
        if pid >> 8 != sensor::PID_HIGH as u16 {
            return Err(Error::WrongSensor { pid });
        }
        self.sensor_write(sensor::COM7, sensor::RESET)?;
        self.delay.delay_ms(100);
        for &(r, v) in self.cfg.registers {
            self.sensor_write(r, v)?;
        }
        self.write_reg(reg::FRAMES, 0)
    }

    /// Captures one frame and writes its luma, `width x height` bytes, into `out` (at least
    /// that long): the face pipeline's input, read from the FIFO a line at a time.
    pub fn capture_gray(&mut self, out: &mut [u8]) -> Result<(), Error<S::Error, I::Error>> {
        let (w, h) = (self.cfg.width as usize, self.cfg.height as usize);
        if out.len() < w * h {
            return Err(Error::ShortBuffer {
                got: out.len(),
                need: w * h,
            });
        }
        self.start_capture()?;
        let mut line: heapless::Vec<u8, { 2 * MAX_SIDE }> = heapless::Vec::new();
        // `new` checked the width, so the line always fits.
        let _ = line.resize(2 * w, 0);
        let skip = self.luma_offset();
        for row in out[..w * h].chunks_exact_mut(w) {
            self.spi
                .transaction(&mut [
                    Operation::Write(&[reg::BURST_READ]),
                    Operation::Read(&mut line),
                ])
                .map_err(Error::Spi)?;
            for (o, &y) in row.iter_mut().zip(line.iter().skip(skip).step_by(2)) {
                *o = y;
            }
        }
        self.write_reg(reg::FIFO, reg::FIFO_CLEAR)
    }

    /// Byte offset of luma in the sensor's YUV 4:2:2 pairs.
    fn luma_offset(&self) -> usize {
        match self.cfg.order {
            YuvOrder::Yuyv => 0,
            YuvOrder::Uyvy => 1,
        }
    }

    /// Starts a capture, waits for it and checks the FIFO holds a whole frame.
    fn start_capture(&mut self) -> Result<(), Error<S::Error, I::Error>> {
        self.write_reg(reg::FIFO, reg::FIFO_CLEAR)?;
        self.write_reg(reg::FIFO, reg::FIFO_START)?;
        let mut polls = 0;
        while self.read_reg(reg::TRIG)? & reg::CAPTURE_DONE == 0 {
            polls += 1;
            if polls >= CAPTURE_TIMEOUT_MS {
                return Err(Error::Timeout);
            }
            self.delay.delay_ms(1);
        }
        let mut len = 0u32;
        for (k, r) in reg::FIFO_SIZE.iter().enumerate() {
            let mask = if k == 2 { 0x7F } else { 0xFF };
            len |= ((self.read_reg(*r)? & mask) as u32) << (8 * k);
        }
        let (w, h) = (self.cfg.width as usize, self.cfg.height as usize);
        let need = (w * h * 2) as u32;
        if len < need {
            return Err(Error::ShortFrame { got: len, need });
        }
        Ok(())
    }

    /// Captures one frame and writes it downscaled to 48x48 gray into `out`.
    pub fn capture(&mut self, out: &mut [u8; INPUT_LEN]) -> Result<(), Error<S::Error, I::Error>> {
        self.start_capture()?;
        let (w, h) = (self.cfg.width as usize, self.cfg.height as usize);
        let mut line: heapless::Vec<u8, { 2 * MAX_SIDE }> = heapless::Vec::new();
        // `new` checked the width, so the line always fits.
        let _ = line.resize(2 * w, 0);
        let skip = self.luma_offset();
        self.binner.clear();
        for y in 0..h {
            self.spi
                .transaction(&mut [
                    Operation::Write(&[reg::BURST_READ]),
                    Operation::Read(&mut line),
                ])
                .map_err(Error::Spi)?;
            self.binner
                .add_row(y, line.iter().skip(skip).step_by(2).copied());
        }
        self.write_reg(reg::FIFO, reg::FIFO_CLEAR)?;
        self.binner.finish(out);
        Ok(())
    }
}

impl<S: SpiDevice, I: I2c, D: DelayNs> FrameSource for ArduCam<S, I, D> {
    type Error = Error<S::Error, I::Error>;

    /// A camera never runs out of frames.
    fn next_frame(&mut self, out: &mut [u8; INPUT_LEN]) -> Result<Option<FrameInfo>, Self::Error> {
        self.capture(out)?;
        Ok(Some(FrameInfo { label: None }))
    }
}

/// The camera as a source of whole gray frames, captured into a buffer the firmware sets
/// aside (`width · height` bytes: 19,200 for QQVGA).
pub struct ArduCamScenes<'b, S, I, D> {
    cam: ArduCam<S, I, D>,
    buf: &'b mut [u8],
}

impl<'b, S: SpiDevice, I: I2c, D: DelayNs> ArduCamScenes<'b, S, I, D> {
    /// Whole frames from `cam` into `buf`; an error when `buf` is shorter than a frame.
    pub fn new(
        cam: ArduCam<S, I, D>,
        buf: &'b mut [u8],
    ) -> Result<Self, Error<S::Error, I::Error>> {
        let need = cam.cfg.width as usize * cam.cfg.height as usize;
        if buf.len() < need {
            return Err(Error::ShortBuffer {
                got: buf.len(),
                need,
            });
        }
        Ok(Self { cam, buf })
    }

    /// The camera back, with the buffer.
    pub fn release(self) -> (ArduCam<S, I, D>, &'b mut [u8]) {
        (self.cam, self.buf)
    }
}

impl<S: SpiDevice, I: I2c, D: DelayNs> SceneSource for ArduCamScenes<'_, S, I, D> {
    type Error = Error<S::Error, I::Error>;

    /// A camera never runs out of frames.
    fn next_scene(&mut self) -> Result<Option<Scene<'_>>, Self::Error> {
        let (w, h) = (self.cam.cfg.width as u32, self.cam.cfg.height as u32);
        self.cam.capture_gray(self.buf)?;
        Ok(Some(Scene {
            pixels: &self.buf[..(w * h) as usize],
            width: w,
            height: h,
        }))
    }
}
