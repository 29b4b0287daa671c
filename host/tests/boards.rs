//! Boards people own (`emoedge flash --board`): each board's firmware runs the shipped model
//! in an emulator of its chip (the Pico in rp2040js, the STM32F405 in QEMU's netduinoplus2)
//! with exactly the host engine's logits and refuses missing or tampered blobs on its UART;
//! the host link on its serial port (`emoedge verify --board B --emulate`) gives the host
//! engine's logits, answers damaged frames with named errors, and stops before a face when
//! the board holds another model; images carry the blob at the board's address; `--probe`
//! asks probe-rs for the board's region (a stand-in `probe-rs` on `PATH` records what it was
//! asked).
//!
//! The emulator test needs each firmware built (`cargo build --release` in firmware/pico and
//! firmware/stm32f405), Node.js with rp2040js (`npm ci --prefix firmware/pico`) and
//! qemu-system-arm; without them it says it skipped, unless `$EMOEDGE_REQUIRE_MCU` is set
//! (CI).

use emoedge::mcu::link::{BoardLink, Wire, emulator_command};
use emoedge::mcu::{self, Board, Emulator};
use emoedge::verify::board::{BoardCheck, check_board};
use emoedge_boards::{PICO, STM32F405};
use emoedge_core::link::{self, LinkError, MAX_CONTENT, MAX_FRAME, Request, Response};
use emoedge_test_support::{data_dir, output_text, run, tool};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository root: the board runners and firmware paths are relative to it.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `emoedge` with `args`, run from the repository root.
fn emoedge(args: &[&str]) -> Command {
    let mut cmd = tool(env!("CARGO_BIN_EXE_emoedge"), args);
    cmd.current_dir(root());
    cmd
}

/// Runs `cmd` for `board`, shows what it printed and asserts it succeeded; returns the text.
fn succeeds(cmd: &mut Command, board: &str) -> String {
    let (ok, t) = run(cmd);
    eprintln!("{t}");
    assert!(ok, "{board}: {t}");
    t
}

/// The board's firmware, when it and the board's emulator are there.
fn board_firmware(board: &Board) -> Option<PathBuf> {
    let fw = root().join(mcu::firmware(board));
    let runs = |cmd: &str, arg: &str| {
        Command::new(cmd)
            .arg(arg)
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let emulator = match board.emulator {
        Emulator::Rp2040js => {
            runs("node", "--version")
                && root()
                    .join(board.firmware_dir)
                    .join("node_modules/rp2040js")
                    .is_dir()
        }
        Emulator::QemuSerial { .. } | Emulator::QemuSemihosting { .. } => {
            runs("qemu-system-arm", "--version")
        }
    };
    if fw.is_file() && emulator {
        return Some(fw);
    }
    assert!(
        std::env::var_os("EMOEDGE_REQUIRE_MCU").is_none(),
        "{}: firmware {} ({}) or its emulator ({emulator}) missing",
        board.name,
        fw.display(),
        fw.is_file()
    );
    eprintln!(
        "SKIPPED: build {} (cargo build --release) and install its emulator (README)",
        board.firmware_dir
    );
    None
}

/// Every board's firmware in its emulator: 20 `test` frames with the host engine's logits,
/// then blobs the host would refuse, which the firmware must name on its UART and stop at,
/// never fault.
#[test]
fn boards_in_their_emulators_match_the_host_engine_and_refuse_bad_blobs() {
    for board in [&PICO, &STM32F405] {
        let Some(fw) = board_firmware(board) else {
            continue;
        };
        let name = board.name;
        let t = succeeds(
            &mut emoedge(&["flash", "--board", name, "--emulate", "--frames", "20"]),
            name,
        );
        assert!(
            t.contains("all 20 frames: MCU labels and logits equal the host engine's"),
            "{name}: {t}"
        );
        assert!(t.contains(" per inference"), "{name}: {t}");

        let tmp = tempfile::tempdir().unwrap();
        let blob = std::fs::read(root().join("models/edge/model.blob")).unwrap();
        let erased = tmp.path().join("erased.bin");
        std::fs::write(&erased, [0xffu8; 64]).unwrap();
        let err = mcu::emulate(board, &fw, Some(&erased), None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("no valid model blob"), "{name}: {err}");
        let mut bad = blob.clone();
        let n = bad.len();
        bad[n - 3] ^= 0x10;
        let tampered = tmp.path().join("tampered.blob");
        std::fs::write(&tampered, &bad).unwrap();
        let err = mcu::emulate(board, &fw, Some(&tampered), None)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("model blob rejected") && err.contains("CRC"),
            "{name}: {err}"
        );
        std::fs::write(&tampered, &blob[..blob.len() / 2]).unwrap();
        let err = mcu::emulate(board, &fw, Some(&tampered), None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("model blob rejected"), "{name}: {err}");
        assert!(
            !err.contains("hard fault") && !err.contains("panic"),
            "{name}: {err}"
        );
    }
}

/// Camera-like frames of `w x h` from `test` (`emoedge stream`), in a folder of `tmp`.
fn stream(tmp: &Path, name: &str, faces: usize, frame: &str, face_px: &str) -> PathBuf {
    let dir = tmp.join(name);
    let out = emoedge(&["stream", "--faces", &faces.to_string(), "--frame", frame])
        .args(["--face-px", face_px, "--out"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", output_text(&out));
    dir
}

/// The whole job on each board (`flash --stream`): camera frames and the face cascade
/// flashed beside the model, every frame's boxes, labels and int8 logits equal to the Pi's
/// pipeline on the same frames.
#[test]
fn the_whole_job_on_each_board_equals_the_pi_pipeline() {
    let tmp = tempfile::tempdir().unwrap();
    let frames = stream(tmp.path(), "qqvga", 3, "160x120", "36-48");
    for board in [&PICO, &STM32F405] {
        if board_firmware(board).is_none() {
            continue;
        }
        let name = board.name;
        let t = succeeds(
            emoedge(&[
                "flash",
                "--board",
                name,
                "--emulate",
                "--frames",
                "3",
                "--stream",
            ])
            .arg(&frames),
            name,
        );
        assert!(
            t.contains("all 3 frames (") && t.contains("equal the Pi's pipeline"),
            "{name}: {t}"
        );
        assert!(
            t.contains("emoedge-mcu: cascade ok: 20x20 window, 20 stages"),
            "{name}: {t}"
        );
        let report = mcu::camera::parse_report(&t).unwrap();
        assert_eq!(report.len(), 3, "{name}: {t}");
        assert!(
            report.iter().any(|f| !f.faces.is_empty()),
            "{name}: no face found: {t}"
        );
        assert!(
            report.iter().all(|f| f.detect > 0 && f.windows > 0),
            "{name}: {t}"
        );
    }
}

/// A board refuses a damaged or missing cascade and frames wider than its detector's
/// buffers, naming each on its UART, and the host refuses to send frames a board cannot take.
#[test]
fn boards_name_a_bad_cascade_and_frames_they_cannot_take() {
    let Some(fw) = board_firmware(&STM32F405) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path();
    let blob = root().join("models/edge/model.blob");
    let cascade =
        emoedge_vision::detect::Cascade::load(&root().join(emoedge_vision::args::DEFAULT_CASCADE))
            .unwrap();
    let frame = vec![128u8; 160 * 120];
    let frames = p.join("frames.bin");
    let bytes = emoedge_core::camera_frames::write(160, 120, [&frame[..]].into_iter()).unwrap();
    std::fs::write(&frames, bytes).unwrap();
    let run = |cascade: Option<&Path>, frames: &Path| {
        mcu::emulate_flashed(
            &STM32F405,
            &fw,
            &mcu::Flashed {
                blob: Some(&blob),
                frames: Some(frames),
                cascade,
            },
        )
        .unwrap_err()
        .to_string()
    };
    let mut bad = cascade.bytes().to_vec();
    bad[5000] ^= 0x01;
    let damaged = p.join("damaged.cascade");
    std::fs::write(&damaged, &bad).unwrap();
    let err = run(Some(&damaged), &frames);
    assert!(
        err.contains("no usable face cascade in its flash region") && err.contains("damaged"),
        "{err}"
    );
    let err = run(None, &frames);
    assert!(err.contains("not a cascade blob"), "{err}");
    let good = p.join("good.cascade");
    std::fs::write(&good, cascade.bytes()).unwrap();
    let wide = vec![128u8; 320 * 240];
    let wide_frames = p.join("wide.bin");
    let bytes = emoedge_core::camera_frames::write(320, 240, [&wide[..]].into_iter()).unwrap();
    std::fs::write(&wide_frames, bytes).unwrap();
    let err = run(Some(&good), &wide_frames);
    assert!(
        err.contains("camera frames 320 pixels wide; this board's detector buffers take 160"),
        "{err}"
    );
    assert!(
        !err.contains("hard fault") && !err.contains("panic"),
        "{err}"
    );
    let qvga = stream(p, "qvga", 1, "320x240", "48-64");
    let out = emoedge(&["flash", "--board", "stm32f405", "--emulate", "--stream"])
        .arg(&qvga)
        .output()
        .unwrap();
    let t = output_text(&out);
    assert!(!out.status.success(), "{t}");
    assert!(
        t.contains("up to 160x120") && t.contains("--frame 160x120"),
        "{t}"
    );
}

/// `verify --board B --emulate`: faces of `test` over each board's link (the Pico's own USB,
/// the STM32F405's USART), every logit equal to the host engine's, the report with a
/// per-layer profile.
#[test]
fn verify_on_each_board_over_its_link_equals_the_host_engine() {
    for (board, n, usb) in [(&PICO, 2, true), (&STM32F405, 12, false)] {
        let Some(_) = board_firmware(board) else {
            continue;
        };
        let tmp = tempfile::tempdir().unwrap();
        let json = tmp.path().join("board.json");
        let mut cmd = emoedge(&["verify", "--board", board.name, "--emulate", "--images"]);
        cmd.arg(n.to_string());
        if usb {
            cmd.arg("--usb");
        }
        let out = cmd.arg("--json").arg(&json).output().unwrap();
        let t = output_text(&out);
        assert!(out.status.success(), "{}: {t}", board.name);
        assert!(t.contains(&format!("logits equal on {n}/{n}")), "{t}");
        assert!(t.contains("verify on the board passed"), "{t}");
        let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
        assert_eq!(r["board"], board.name);
        assert_eq!(r["link"].as_str().unwrap().contains("USB"), usb, "{r}");
        assert_eq!(r["core"], board.core);
        assert_eq!(r["faces"].as_array().unwrap().len(), n);
        assert!(
            r["faces"]
                .as_array()
                .unwrap()
                .iter()
                .all(|f| f["equal"] == true)
        );
        assert!(r["faces"][0]["cost"].as_u64().unwrap() > 1_000_000, "{r}");
        assert_eq!(r["profile"].as_array().unwrap().len(), 20, "{r}");
    }
}

/// The shipped blob with another weights hash: a valid blob of another model.
fn other_blob() -> Vec<u8> {
    let blob = std::fs::read(root().join("models/edge/model.blob")).unwrap();
    let model = emoedge_core::Model::parse(&blob).unwrap();
    let mut body = model.body().clone();
    body.weights_hash[0] ^= 1;
    emoedge_core::model::write_blob(&body).unwrap()
}

fn check(n: usize) -> BoardCheck {
    BoardCheck {
        board: &STM32F405,
        images: Some(n),
        hello_wait: std::time::Duration::from_secs(20),
    }
}

fn check_on(
    link: &mut BoardLink,
    c: &BoardCheck,
) -> anyhow::Result<emoedge::verify::board::BoardReport> {
    check_board(
        link,
        &root().join("models/edge"),
        &data_dir().join("fer2013/test"),
        emoedge::data::Split::Test,
        c,
        &|_| indicatif::ProgressBar::hidden(),
    )
}

/// The board's end of the link never faults on what a host sends: a damaged, a cut, an
/// overlong frame, one of another protocol version and a face of the wrong size are each
/// answered with the error naming it, and the next request is served as if nothing had
/// happened.
#[test]
fn the_link_answers_damaged_frames_with_named_errors() {
    for board in [&PICO, &STM32F405] {
        let Some(fw) = board_firmware(board) else {
            continue;
        };
        let blob = root().join("models/edge/model.blob");
        let mut link = BoardLink::emulate(board, &fw, &blob, Wire::Uart).unwrap();
        assert_eq!(
            link.hello(std::time::Duration::from_secs(20))
                .unwrap()
                .board,
            board.name
        );
        let (mut scratch, mut out) = ([0u8; MAX_CONTENT], [0u8; MAX_FRAME]);
        let face = [128u8; 2304];
        let frame = link::encode(
            &Request::Classify { id: 1, face: &face },
            &mut scratch,
            &mut out,
        )
        .unwrap()
        .to_vec();
        let mut error_for = |bytes: &[u8]| match link.send_raw(bytes).and_then(|()| {
            link.receive().map(|r| match r {
                Response::Error(e) => e,
                other => panic!("{}: answered {other:?}", board.name),
            })
        }) {
            Ok(e) => e,
            Err(e) => panic!("{}: {e:#}", board.name),
        };
        let mut damaged = frame.clone();
        damaged[100] ^= 0x01;
        assert!(matches!(error_for(&damaged), LinkError::Crc { .. }));
        let cut = [&frame[..1000], &[0u8]].concat();
        assert!(matches!(
            error_for(&cut),
            LinkError::Crc { .. } | LinkError::Framing
        ));
        let long = [vec![0u8], vec![7u8; MAX_FRAME + 100], vec![0u8]].concat();
        assert!(matches!(error_for(&long), LinkError::TooLong { .. }));
        // A hello as the next protocol version would send it.
        let other = link::encode_as_version(link::VERSION + 1, &Request::Hello);
        assert_eq!(
            error_for(&other),
            LinkError::Version {
                found: link::VERSION + 1,
                supported: link::VERSION
            }
        );
        let small = [1u8; 100];
        assert_eq!(
            link.request(&Request::Classify {
                id: 2,
                face: &small
            })
            .unwrap(),
            Response::Error(LinkError::FaceSize {
                got: 100,
                want: 2304
            })
        );
        // And a face after all that.
        match link
            .request(&Request::Classify { id: 3, face: &face })
            .unwrap()
        {
            Response::Logits { id, logits, .. } => assert_eq!((id, logits.len()), (3, 7)),
            other => panic!("{}: {other:?}", board.name),
        }
    }
}

/// A board that holds another model, or none, is named and no face is sent; a board that
/// stops answering ends the run with what it answered kept; a silent one times out naming
/// the request; a missing port is named with the ports there are.
#[test]
fn the_link_stops_at_another_model_a_silent_board_and_a_lost_one() {
    let Some(fw) = board_firmware(&STM32F405) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let other = tmp.path().join("other.blob");
    std::fs::write(&other, other_blob()).unwrap();
    let mut link = BoardLink::emulate(&STM32F405, &fw, &other, Wire::Uart).unwrap();
    let err = format!("{:#}", check_on(&mut link, &check(5)).unwrap_err());
    assert!(err.contains("holds another model"), "{err}");
    assert!(err.contains("emoedge flash --board stm32f405"), "{err}");

    let erased = tmp.path().join("erased.bin");
    std::fs::write(&erased, [0xffu8; 64]).unwrap();
    let mut link = BoardLink::emulate(&STM32F405, &fw, &erased, Wire::Uart).unwrap();
    let err = format!("{:#}", check_on(&mut link, &check(5)).unwrap_err());
    assert!(
        err.contains("has no usable model (no valid model blob"),
        "{err}"
    );

    // Unplugged after four faces were answered: the link's input ends there.
    let blob = root().join("models/edge/model.blob");
    let (mut cmd, name) = emulator_command(&STM32F405, &fw, &blob, Wire::Uart).unwrap();
    let mut child = cmd
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let input = CutAfterLogits {
        inner: child.stdout.take().unwrap(),
        frames: Box::new(link::FrameReader::new()),
        logits_left: 4,
    };
    let output = child.stdin.take().unwrap();
    let mut link = BoardLink::over(name, input, output, Some(child));
    let r = check_on(&mut link, &check(20)).unwrap();
    assert_eq!(r.faces.len(), 4, "{:?}", r.stopped);
    assert!(r.faces.iter().all(|f| f.equal));
    let failures = r.failures().join("; ");
    assert!(
        failures.contains("stopped after 4 of 20 faces"),
        "{failures}"
    );
    assert!(
        failures.contains("closed") && failures.contains("classify"),
        "{failures}"
    );

    // A board that never answers.
    let mut silent = std::process::Command::new("sleep")
        .arg("60")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (input, output) = (silent.stdout.take().unwrap(), silent.stdin.take().unwrap());
    let mut link = BoardLink::over("a silent board", input, output, Some(silent));
    link.timeout = std::time::Duration::from_millis(300);
    let face = [0u8; 2304];
    let err = format!(
        "{:#}",
        link.request(&Request::Classify { id: 0, face: &face })
            .unwrap_err()
    );
    assert!(
        err.contains("a silent board did not answer the classify request"),
        "{err}"
    );

    let err = format!(
        "{:#}",
        BoardLink::open_port("/dev/emoedge-no-such-port")
            .err()
            .unwrap()
    );
    assert!(
        err.contains("/dev/emoedge-no-such-port") && err.contains("the ports are"),
        "{err}"
    );
}

/// A serial port as a plugged-in board gives one: QEMU's STM32F405 with its USART on a
/// pseudo-terminal. `verify --port` checks the model over it; then the board vanishes
/// mid-run (QEMU stopped, the terminal closed under the port) and the faces it answered
/// stay in the report.
#[test]
fn verify_over_a_serial_port_keeps_what_a_board_answered_before_it_was_unplugged() {
    let Some(fw) = board_firmware(&STM32F405) else {
        return;
    };
    let blob = root().join("models/edge/model.blob");
    let board_on_a_port = || {
        let mut qemu = Command::new("qemu-system-arm")
            .args([
                "-machine",
                "netduinoplus2",
                "-display",
                "none",
                "-monitor",
                "none",
            ])
            .args(["-serial", "pty", "-icount", "shift=0", "-kernel"])
            .arg(&fw)
            .arg("-device")
            .arg(format!("loader,file={},addr=0x08020000", blob.display()))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // QEMU names the terminal on its standard output:
        // "char device redirected to /dev/pts/N (label serial0)".
        let mut line = String::new();
        let mut out = std::io::BufReader::new(qemu.stdout.take().unwrap());
        std::io::BufRead::read_line(&mut out, &mut line).unwrap();
        let pty = line
            .split_whitespace()
            .find(|w| w.starts_with("/dev/"))
            .unwrap_or_else(|| panic!("no pty in {line:?}"))
            .to_string();
        (qemu, pty)
    };

    let (mut qemu, pty) = board_on_a_port();
    let out = emoedge(&[
        "verify",
        "--board",
        "stm32f405",
        "--images",
        "5",
        "--port",
        &pty,
    ])
    .output()
    .unwrap();
    let _ = qemu.kill();
    let _ = qemu.wait();
    let t = output_text(&out);
    assert!(out.status.success(), "{t}");
    assert!(
        t.contains(&format!("via {pty}")) && t.contains("logits equal on 5/5"),
        "{t}"
    );

    let (mut qemu, pty) = board_on_a_port();
    let tmp = tempfile::tempdir().unwrap();
    let json = tmp.path().join("board.json");
    let run = emoedge(&[
        "verify",
        "--board",
        "stm32f405",
        "--images",
        "1000",
        "--port",
        &pty,
    ])
    .arg("--json")
    .arg(&json)
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    std::thread::sleep(std::time::Duration::from_secs(10));
    let _ = qemu.kill();
    let _ = qemu.wait();
    let out = run.wait_with_output().unwrap();
    let t = output_text(&out);
    assert!(!out.status.success(), "{t}");
    assert!(t.contains("stopped after"), "{t}");
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let faces = r["faces"].as_array().unwrap();
    assert!(!faces.is_empty() && faces.len() < 1000, "{t}");
    assert!(faces.iter().all(|f| f["equal"] == true));
    assert!(r["stopped"].as_str().unwrap().contains(&pty), "{r}");
}

/// A board's output that ends, as if unplugged, right after its `logits_left`-th logits
/// frame.
struct CutAfterLogits<R> {
    inner: R,
    frames: Box<link::FrameReader<MAX_FRAME>>,
    logits_left: usize,
}

impl<R: std::io::Read> std::io::Read for CutAfterLogits<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.logits_left == 0 {
            return Ok(0);
        }
        let n = self.inner.read(&mut buf[..1])?;
        if n == 1
            && let Some(Ok(m)) = self.frames.push(buf[0])
            && matches!(link::decode::<Response>(m), Ok(Response::Logits { .. }))
        {
            self.logits_left -= 1;
        }
        Ok(n)
    }
}

#[test]
fn board_images_carry_the_blob_at_the_board_address() {
    let tmp = tempfile::tempdir().unwrap();
    let uf2 = tmp.path().join("model.uf2");
    let out = emoedge(&["flash", "--board", "pico", "--out"])
        .arg(&uf2)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", output_text(&out));
    let img = std::fs::read(&uf2).unwrap();
    let word = |i: usize| u32::from_le_bytes(img[i * 4..i * 4 + 4].try_into().unwrap());
    assert_eq!(word(0), 0x0A32_4655, "UF2 magic");
    assert_eq!(word(3), PICO.blob.origin);
    assert_eq!(Some(word(7)), PICO.uf2_family);
    let blob = std::fs::read(root().join("models/edge/model.blob")).unwrap();
    assert_eq!(&img[32..32 + 256], &blob[..256]);

    // Test frames for a board without a camera: right after the blob region.
    let frames = tmp.path().join("frames.uf2");
    let out = emoedge(&["flash", "--board", "pico", "--frames", "3", "--frames-out"])
        .arg(&frames)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", output_text(&out));
    let img = std::fs::read(&frames).unwrap();
    let word = |i: usize| u32::from_le_bytes(img[i * 4..i * 4 + 4].try_into().unwrap());
    assert_eq!(word(3), PICO.frames.origin);
    assert_eq!(&img[32..36], b"EMOF");

    let bin = tmp.path().join("model.bin");
    let out = emoedge(&["flash", "--board", "pico", "--format", "bin", "--out"])
        .arg(&bin)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", output_text(&out));
    assert_eq!(std::fs::read(&bin).unwrap(), blob);

    let out = emoedge(&["flash", "--board", "nosuch"]).output().unwrap();
    assert!(!out.status.success());
    assert!(
        output_text(&out).contains("no board \"nosuch\"; the boards are pico, stm32f405"),
        "{}",
        output_text(&out)
    );
}

#[cfg(unix)]
#[test]
fn probe_writes_the_blob_through_probe_rs() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let bin = tmp.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    // A stand-in probe-rs: records its arguments and the file it was given.
    let script = bin.join("probe-rs");
    let log = tmp.path().join("args.txt");
    let copy = tmp.path().join("flashed.bin");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$@\" > '{}'\nfor a; do last=$a; done\ncp \"$last\" '{}'\n",
            log.display(),
            copy.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = emoedge(&["flash", "--board", "pico", "--probe"])
        .env("PATH", &path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", output_text(&out));
    let args = std::fs::read_to_string(&log).unwrap();
    let args: Vec<&str> = args.lines().collect();
    assert_eq!(
        args[..7],
        [
            "download",
            "--binary-format",
            "bin",
            "--base-address",
            "0x10100000",
            "--chip",
            "RP2040"
        ]
    );
    let blob = std::fs::read(root().join("models/edge/model.blob")).unwrap();
    assert_eq!(std::fs::read(&copy).unwrap(), blob);

    // Without probe-rs: a clear message saying how to get it.
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let out = emoedge(&["flash", "--board", "pico", "--probe"])
        .env("PATH", &empty)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        output_text(&out).contains("cargo install probe-rs-tools"),
        "{}",
        output_text(&out)
    );
}
