//! The ArduCAM driver against mocked buses: every byte it sends is checked, and the frame it
//! makes from a known FIFO content is checked pixel by pixel.

use embedded_hal_mock::eh1::delay::NoopDelay;
use embedded_hal_mock::eh1::i2c::{Mock as I2c, Transaction as I};
use embedded_hal_mock::eh1::spi::{Mock as Spi, Transaction as S};
use emoedge_camera::arducam::{ArduCam, ArduCamScenes, Error, SensorConfig, YuvOrder, reg, sensor};
use emoedge_camera::{FrameSource, INPUT_LEN, SceneSource};

const TABLE: &[(u8, u8)] = &[(0xFF, 0x00), (0xDA, 0x00), (0xFF, 0x01)];

fn cfg(order: YuvOrder) -> SensorConfig {
    SensorConfig {
        width: 96,
        height: 96,
        order,
        registers: TABLE,
    }
}

fn write(addr: u8, v: u8) -> Vec<S<u8>> {
    vec![
        S::transaction_start(),
        S::write_vec(vec![addr | reg::WRITE, v]),
        S::transaction_end(),
    ]
}

fn read(addr: u8, v: u8) -> Vec<S<u8>> {
    vec![
        S::transaction_start(),
        S::write_vec(vec![addr]),
        S::read_vec(vec![v]),
        S::transaction_end(),
    ]
}

fn init_spi(test_reads: u8) -> Vec<S<u8>> {
    let mut t = write(reg::TEST, 0x55);
    t.extend(read(reg::TEST, test_reads));
    t
}

fn sensor_id(pid: [u8; 2]) -> Vec<I> {
    vec![
        I::write(sensor::ADDR, vec![sensor::BANK, 1]),
        I::write_read(sensor::ADDR, vec![sensor::PID[0]], vec![pid[0]]),
        I::write_read(sensor::ADDR, vec![sensor::PID[1]], vec![pid[1]]),
    ]
}

/// Checks that every expected bus transaction happened.
fn done(cam: ArduCam<Spi<u8>, I2c, NoopDelay>) {
    let (mut s, mut i, _) = cam.release();
    s.done();
    i.done();
}

#[test]
fn init_checks_module_and_sensor_then_loads_the_table() {
    let mut s = init_spi(0x55);
    s.extend(write(reg::FRAMES, 0));
    let mut i = sensor_id([0x26, 0x42]);
    i.push(I::write(sensor::ADDR, vec![sensor::COM7, sensor::RESET]));
    i.extend(
        TABLE
            .iter()
            .map(|&(r, v)| I::write(sensor::ADDR, vec![r, v])),
    );
    let mut cam = ArduCam::new(Spi::new(&s), I2c::new(&i), NoopDelay, cfg(YuvOrder::Yuyv)).unwrap();
    cam.init().unwrap();
    done(cam);
}

#[test]
fn a_missing_module_is_named() {
    let s = init_spi(0xFF);
    let mut cam =
        ArduCam::new(Spi::new(&s), I2c::new(&[]), NoopDelay, cfg(YuvOrder::Yuyv)).unwrap();
    assert_eq!(cam.init(), Err(Error::NoCamera { read: 0xFF }));
    done(cam);
}

#[test]
fn a_wrong_sensor_is_named() {
    let s = init_spi(0x55);
    let i = sensor_id([0x76, 0x73]);
    let mut cam = ArduCam::new(Spi::new(&s), I2c::new(&i), NoopDelay, cfg(YuvOrder::Yuyv)).unwrap();
    assert_eq!(cam.init(), Err(Error::WrongSensor { pid: 0x7673 }));
    done(cam);
}

fn capture_start(not_done_polls: usize, fifo_len: u32) -> Vec<S<u8>> {
    let mut t = write(reg::FIFO, reg::FIFO_CLEAR);
    t.extend(write(reg::FIFO, reg::FIFO_START));
    for _ in 0..not_done_polls {
        t.extend(read(reg::TRIG, 0));
    }
    t.extend(read(reg::TRIG, reg::CAPTURE_DONE));
    for (k, r) in reg::FIFO_SIZE.iter().enumerate() {
        t.extend(read(*r, (fifo_len >> (8 * k)) as u8));
    }
    t
}

/// Luma of source pixel (x, y) of the synthetic 96x96 scene.
fn luma(x: usize, y: usize) -> u8 {
    ((x * 2 + y) % 256) as u8
}

fn frame_lines(order: YuvOrder) -> Vec<S<u8>> {
    let mut t = Vec::new();
    for y in 0..96 {
        let mut line = Vec::with_capacity(192);
        for x in 0..96 {
            let chroma = 0x80 ^ (x as u8);
            match order {
                YuvOrder::Yuyv => line.extend([luma(x, y), chroma]),
                YuvOrder::Uyvy => line.extend([chroma, luma(x, y)]),
            }
        }
        t.extend([
            S::transaction_start(),
            S::write_vec(vec![reg::BURST_READ]),
            S::read_vec(line),
            S::transaction_end(),
        ]);
    }
    t
}

#[test]
fn capture_streams_the_fifo_into_a_48x48_luma_frame() {
    for order in [YuvOrder::Yuyv, YuvOrder::Uyvy] {
        let mut s = capture_start(3, 96 * 96 * 2 + 8);
        s.extend(frame_lines(order));
        s.extend(write(reg::FIFO, reg::FIFO_CLEAR));
        let mut cam = ArduCam::new(Spi::new(&s), I2c::new(&[]), NoopDelay, cfg(order)).unwrap();
        let mut out = [0u8; INPUT_LEN];
        let info = cam.next_frame(&mut out).unwrap().unwrap();
        assert_eq!(info.label, None);
        for (i, &p) in out.iter().enumerate() {
            let (x, y) = (2 * (i % 48), 2 * (i / 48));
            let sum: u32 = [(0, 0), (1, 0), (0, 1), (1, 1)]
                .iter()
                .map(|(dx, dy)| luma(x + dx, y + dy) as u32)
                .sum();
            assert_eq!(p as u32, (sum + 2) / 4, "{order:?} pixel {i}");
        }
        let (mut s, mut i, _) = cam.release();
        s.done();
        i.done();
    }
}

#[test]
fn whole_frames_keep_every_luma_byte() {
    for order in [YuvOrder::Yuyv, YuvOrder::Uyvy] {
        let mut s = capture_start(1, 96 * 96 * 2);
        s.extend(frame_lines(order));
        s.extend(write(reg::FIFO, reg::FIFO_CLEAR));
        let cam = ArduCam::new(Spi::new(&s), I2c::new(&[]), NoopDelay, cfg(order)).unwrap();
        let mut buf = vec![0u8; 96 * 96];
        let mut scenes = ArduCamScenes::new(cam, &mut buf).unwrap();
        let scene = scenes.next_scene().unwrap().unwrap();
        assert_eq!((scene.width, scene.height), (96, 96));
        for (i, &p) in scene.pixels.iter().enumerate() {
            assert_eq!(p, luma(i % 96, i / 96), "{order:?} pixel {i}");
        }
        let (cam, _) = scenes.release();
        done(cam);
    }
    let (mut spi, mut i2c) = (Spi::new(&[]), I2c::new(&[]));
    let cam = ArduCam::new(spi.clone(), i2c.clone(), NoopDelay, cfg(YuvOrder::Yuyv)).unwrap();
    let mut small = [0u8; 100];
    let err = ArduCamScenes::new(cam, &mut small).err().unwrap();
    assert_eq!(
        err,
        Error::ShortBuffer {
            got: 100,
            need: 96 * 96
        }
    );
    spi.done();
    i2c.done();
}

#[test]
fn a_short_fifo_and_a_stuck_capture_are_errors() {
    let s = capture_start(0, 1000);
    let mut cam =
        ArduCam::new(Spi::new(&s), I2c::new(&[]), NoopDelay, cfg(YuvOrder::Yuyv)).unwrap();
    let mut out = [0u8; INPUT_LEN];
    assert_eq!(
        cam.capture(&mut out),
        Err(Error::ShortFrame {
            got: 1000,
            need: 96 * 96 * 2
        })
    );
    done(cam);

    let mut s = write(reg::FIFO, reg::FIFO_CLEAR);
    s.extend(write(reg::FIFO, reg::FIFO_START));
    for _ in 0..emoedge_camera::arducam::CAPTURE_TIMEOUT_MS {
        s.extend(read(reg::TRIG, 0));
    }
    let mut cam =
        ArduCam::new(Spi::new(&s), I2c::new(&[]), NoopDelay, cfg(YuvOrder::Yuyv)).unwrap();
    assert_eq!(cam.capture(&mut out), Err(Error::Timeout));
    done(cam);
}

#[test]
fn sizes_it_cannot_downscale_are_refused() {
    let mut c = cfg(YuvOrder::Yuyv);
    c.width = 320;
    let (mut s, mut i) = (Spi::new(&[]), I2c::new(&[]));
    assert!(matches!(
        ArduCam::new(s.clone(), i.clone(), NoopDelay, c),
        Err(Error::Size(_))
    ));
    s.done();
    i.done();
}
