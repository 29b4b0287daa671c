//! The MCU side of a deployment, from the host: flash images of the model blob (Intel HEX,
//! UF2), and the firmware run in QEMU on test frames, its logits read back.
//!
//! The model blob lives in its own flash region ([`BLOB_ADDR`]), apart from the firmware, so
//! a new model is flashed without rebuilding the firmware. The QEMU runs count instructions
//! on an MPS2 board for each [`Core`] the firmware is built for; frames go into a second
//! region ([`FRAMES_ADDR`]) in the format of [`emoedge_core::test_frames`].

use crate::data::Dataset;
use anyhow::{Context, Result, bail};
use emoedge_core::NUM_CLASSES;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Flash address of the model blob on MPS2 AN386/AN385 (firmware/mcu/memory/).
pub const BLOB_ADDR: u32 = 0x0008_0000;
/// Flash address of the test frames on MPS2 AN386/AN385 (firmware/mcu/memory/).
pub const FRAMES_ADDR: u32 = 0x0018_0000;
/// Bytes of the frames region on the MPS2 boards.
const FRAMES_REGION: usize = 0x20_0000;
/// Where `cargo build --release` in firmware/mcu puts the Cortex-M4F firmware.
pub const DEFAULT_FIRMWARE: &str = "firmware/mcu/target/thumbv7em-none-eabihf/release/emoedge-mcu";

/// The Cortex-M cores the firmware is built for and run on in QEMU (MPS2 FPGA images, whose
/// memory maps `firmware/mcu/memory/` follows).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Core {
    /// Cortex-M4F, Armv7E-M with the DSP extension (`thumbv7em-none-eabihf`), on MPS2 AN386.
    #[default]
    M4f,
    /// Cortex-M0+ code, Armv6-M (`thumbv6m-none-eabi`), on MPS2 AN385's Cortex-M3: QEMU has
    /// no M0+ board of this family, and the M3 runs Armv6-M code unchanged, so the counts are
    /// of the M0+ instructions.
    M0plus,
    /// Cortex-M33 with the DSP extension, Armv8-M Mainline (`thumbv8m.main-none-eabihf`,
    /// built with `-C target-cpu=cortex-m33`), on MPS2 AN505 in the secure state.
    M33,
}

impl Core {
    /// The Rust target the firmware is built for.
    pub fn target(self) -> &'static str {
        match self {
            Core::M4f => "thumbv7em-none-eabihf",
            Core::M0plus => "thumbv6m-none-eabi",
            Core::M33 => "thumbv8m.main-none-eabihf",
        }
    }

    /// Where the board's memory map puts the model blob and the test frames.
    pub fn blob_and_frames_addr(self) -> (u32, u32) {
        match self {
            Core::M4f | Core::M0plus => (BLOB_ADDR, FRAMES_ADDR),
            // AN505's code memory, secure alias.
            Core::M33 => (0x1000_0000 + BLOB_ADDR, 0x1000_0000 + FRAMES_ADDR),
        }
    }

    /// QEMU's `-machine` and `-cpu`.
    fn qemu_machine(self) -> (&'static str, &'static str) {
        match self {
            Core::M4f => ("mps2-an386", "cortex-m4"),
            Core::M0plus => ("mps2-an385", "cortex-m3"),
            Core::M33 => ("mps2-an505", "cortex-m33"),
        }
    }

    /// Where `cargo build --release --target …` in firmware/mcu puts binary `bin`.
    pub fn firmware(self, bin: &str) -> std::path::PathBuf {
        Path::new("firmware/mcu/target")
            .join(self.target())
            .join("release")
            .join(bin)
    }
}

/// Boards people own, with their own firmware under `firmware/`: where the model blob goes
/// in their flash, how big its region is, how they are flashed and how they are emulated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Board {
    /// Raspberry Pi Pico (RP2040, Cortex-M0+, 2 MiB flash): firmware/pico, emulated in
    /// rp2040js.
    Pico,
    /// STM32F405/407 boards (Cortex-M4F, 1 MiB flash): firmware/stm32f405, emulated in QEMU's
    /// netduinoplus2.
    Stm32f405,
}

impl Board {
    /// The board's name on the command line and its firmware folder under `firmware/`.
    pub fn name(self) -> &'static str {
        match self {
            Board::Pico => "pico",
            Board::Stm32f405 => "stm32f405",
        }
    }

    /// Flash address of the model blob (the board's memory.x).
    pub fn blob_addr(self) -> u32 {
        match self {
            Board::Pico => 0x1010_0000,
            // Flash sector 5.
            Board::Stm32f405 => 0x0802_0000,
        }
    }

    /// Bytes reserved for the blob at [`Board::blob_addr`].
    pub fn blob_region(self) -> usize {
        match self {
            Board::Pico => 0x8_0000,
            // Sectors 5-7.
            Board::Stm32f405 => 0x6_0000,
        }
    }

    /// Flash address of the test frames: right after the blob region.
    pub fn frames_addr(self) -> u32 {
        self.blob_addr() + self.blob_region() as u32
    }

    /// Bytes reserved for test frames at [`Board::frames_addr`].
    pub fn frames_region(self) -> usize {
        match self {
            // Pico: 512 KiB; STM32F405: sectors 8-11.
            Board::Pico | Board::Stm32f405 => 0x8_0000,
        }
    }

    /// The UF2 family ID its bootloader accepts.
    pub fn uf2_family(self) -> u32 {
        match self {
            Board::Pico => 0xe48b_ff56,      // RP2040
            Board::Stm32f405 => 0x5775_5a57, // STM32F4
        }
    }

    /// The chip's name for `probe-rs --chip`.
    pub fn probe_chip(self) -> &'static str {
        match self {
            Board::Pico => "RP2040",
            Board::Stm32f405 => "STM32F405RGTx",
        }
    }

    /// Where `cargo build --release` in the board's firmware folder puts the ELF.
    pub fn firmware(self) -> PathBuf {
        match self {
            Board::Pico => {
                PathBuf::from("firmware/pico/target/thumbv6m-none-eabi/release/emoedge-pico")
            }
            Board::Stm32f405 => PathBuf::from(
                "firmware/stm32f405/target/thumbv7em-none-eabihf/release/emoedge-stm32f405",
            ),
        }
    }

    /// Refuses a blob that does not fit the board's region.
    pub fn check_fits(self, blob_len: usize) -> Result<()> {
        if blob_len > self.blob_region() {
            bail!(
                "the model blob has {blob_len} bytes; the {} board keeps {} bytes for it at {:#010x}",
                self.name(),
                self.blob_region(),
                self.blob_addr()
            );
        }
        Ok(())
    }

    /// Runs the board's firmware in its emulator with the blob and frames in flash; returns
    /// what it printed on its console. Fails when the firmware reports an error.
    pub fn emulate(self, firmware: &Path, blob: &Path, frames: Option<&Path>) -> Result<String> {
        match self {
            Board::Pico => run_rp2040js(firmware, blob, frames),
            Board::Stm32f405 => run_netduinoplus2(firmware, blob, frames, self),
        }
    }

    /// The `probe-rs` command that writes `blob_file` (raw bytes) into the board's flash.
    pub fn probe_command(self, blob_file: &Path) -> Command {
        let mut cmd = Command::new("probe-rs");
        cmd.args(["download", "--binary-format", "bin", "--base-address"])
            .arg(format!("{:#x}", self.blob_addr()))
            .args(["--chip", self.probe_chip()])
            .arg(blob_file);
        cmd
    }
}

/// The Pico firmware in rp2040js, through the project's runner `firmware/pico/emulate.mjs`
/// (Node and the npm package; the runner loads the ELF, the blob and the frames into the
/// emulated flash and prints UART0).
fn run_rp2040js(firmware: &Path, blob: &Path, frames: Option<&Path>) -> Result<String> {
    // The runner's folder: the firmware's own (its ELF lies in its target folder), else
    // firmware/pico under the working directory.
    let dir = firmware
        .ancestors()
        .find(|p| p.join("emulate.mjs").is_file())
        .unwrap_or(Path::new("firmware/pico"));
    if !dir.join("node_modules/rp2040js").is_dir() {
        bail!(
            "rp2040js is not installed in {}: run `npm ci --prefix {}` (Node.js and npm from \
             your system's packages)",
            dir.display(),
            dir.display()
        );
    }
    let mut cmd = Command::new("node");
    cmd.arg(dir.join("emulate.mjs"))
        .arg(firmware)
        .arg("--blob")
        .arg(blob);
    if let Some(f) = frames {
        cmd.arg("--frames").arg(f);
    }
    let out = cmd
        .output()
        .context("running node (install Node.js from your system's packages)")?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() {
        bail!("the firmware failed in rp2040js:\n{text}");
    }
    Ok(text)
}

/// The STM32F405 firmware in QEMU's netduinoplus2 (an STM32F405 with its USART1 on
/// stdout), blob and frames loaded at the board's addresses. Board firmware does not exit
/// the emulator (a chip has nothing to exit to), so QEMU is stopped at the firmware's
/// verdict line, or after [`BOARD_EMULATION_LIMIT`].
fn run_netduinoplus2(
    firmware: &Path,
    blob: &Path,
    frames: Option<&Path>,
    board: Board,
) -> Result<String> {
    let mut cmd = Command::new("qemu-system-arm");
    cmd.args([
        "-machine",
        "netduinoplus2",
        "-nographic",
        "-monitor",
        "none",
    ])
    .args(["-icount", "shift=0", "-kernel"])
    .arg(firmware)
    .arg("-device")
    .arg(format!(
        "loader,file={},addr={:#x}",
        blob.display(),
        board.blob_addr()
    ));
    if let Some(f) = frames {
        cmd.arg("-device").arg(format!(
            "loader,file={},addr={:#x}",
            f.display(),
            board.frames_addr()
        ));
    }
    let mut child = cmd
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .context("running qemu-system-arm (apt-get install qemu-system-arm)")?;
    let stdout = child.stdout.take().context("QEMU's output")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = std::time::Instant::now() + BOARD_EMULATION_LIMIT;
    let mut text = String::new();
    let verdict = loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                let line = line.trim_end_matches('\r').to_string();
                text += &line;
                text.push('\n');
                if line.starts_with("emoedge-mcu: done") {
                    break Ok(());
                }
                if line.starts_with("emoedge-mcu: error:") {
                    break Err(anyhow::anyhow!("the firmware failed in QEMU:\n{text}"));
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                break Err(anyhow::anyhow!(
                    "no verdict from the firmware after {} s in QEMU:\n{text}",
                    BOARD_EMULATION_LIMIT.as_secs()
                ));
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    use std::io::Read;
                    let _ = e.read_to_string(&mut err);
                }
                break Err(anyhow::anyhow!(
                    "QEMU stopped before the firmware's verdict:\n{text}{err}"
                ));
            }
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    verdict.map(|()| text)
}

/// How long an emulated board may run before it is stopped without a verdict.
const BOARD_EMULATION_LIMIT: std::time::Duration = std::time::Duration::from_secs(600);

/// Writes `ds` as test frames and `blob` into a temporary folder, runs `run` on their paths
/// and returns what it printed and the logits it reported per frame.
fn with_frames(
    blob: &[u8],
    ds: &Dataset,
    frames_room: usize,
    run: impl FnOnce(&Path, &Path) -> Result<String>,
) -> Result<(String, Vec<[i8; NUM_CLASSES]>)> {
    let tmp = tempfile::tempdir()?;
    let (blob_file, frames_file) = (tmp.path().join("model.blob"), tmp.path().join("frames.bin"));
    std::fs::write(&blob_file, blob)?;
    let frames =
        emoedge_core::test_frames::write((0..ds.len()).map(|i| (Some(ds.labels[i]), ds.image(i))));
    if frames.len() > frames_room {
        bail!(
            "{} test frames take {} bytes; the frames region holds {frames_room}",
            ds.len(),
            frames.len()
        );
    }
    std::fs::write(&frames_file, &frames)?;
    let text = run(&blob_file, &frames_file)?;
    let got = parse_frames(&text);
    if got.len() != ds.len() {
        bail!(
            "the firmware reported {} frames, expected {}:\n{text}",
            got.len(),
            ds.len()
        );
    }
    Ok((text, got))
}

/// Runs the board's firmware in its emulator on every image of `ds` (labels included);
/// returns what it printed and the logits it reported per frame.
pub fn run_board_frames(
    board: Board,
    firmware: &Path,
    blob: &[u8],
    ds: &Dataset,
) -> Result<(String, Vec<[i8; NUM_CLASSES]>)> {
    if !firmware.is_file() {
        bail!(
            "no firmware at {}: build it with `cargo build --release` in firmware/{}",
            firmware.display(),
            board.name()
        );
    }
    board.check_fits(blob.len())?;
    with_frames(blob, ds, board.frames_region(), |b, f| {
        board.emulate(firmware, b, Some(f))
    })
}

/// UF2 image of `data` at `addr`: 512-byte blocks carrying 256 bytes each.
pub fn uf2_image(data: &[u8], addr: u32, family: u32) -> Result<Vec<u8>> {
    if !addr.is_multiple_of(256) {
        bail!("UF2 address {addr:#010x} is not 256-byte aligned");
    }
    uf2::bin_to_uf2(&data.to_vec(), family, addr).context("building the UF2 image")
}

/// Intel HEX of `data` at `addr` (extended linear address records, 16-byte data records).
pub fn intel_hex(data: &[u8], addr: u32) -> String {
    let mut out = String::new();
    let rec = |out: &mut String, kind: u8, a: u16, bytes: &[u8]| {
        let mut sum = bytes.len() as u8;
        sum = sum
            .wrapping_add((a >> 8) as u8)
            .wrapping_add(a as u8)
            .wrapping_add(kind);
        let mut line = format!(":{:02X}{:04X}{:02X}", bytes.len(), a, kind);
        for b in bytes {
            line += &format!("{b:02X}");
            sum = sum.wrapping_add(*b);
        }
        line += &format!("{:02X}\n", sum.wrapping_neg());
        out.push_str(&line);
    };
    let mut upper = None;
    for (i, chunk) in data.chunks(16).enumerate() {
        let a = addr + (i * 16) as u32;
        if upper != Some(a >> 16) {
            upper = Some(a >> 16);
            rec(&mut out, 4, 0, &((a >> 16) as u16).to_be_bytes());
        }
        rec(&mut out, 0, a as u16, chunk);
    }
    rec(&mut out, 1, 0, &[]);
    out
}

/// Runs the firmware in QEMU on every image of `ds` (labels included); returns what it
/// printed and the logits it reported per frame.
pub fn run_frames(
    firmware: &Path,
    core: Core,
    blob: &[u8],
    ds: &Dataset,
) -> Result<(String, Vec<[i8; NUM_CLASSES]>)> {
    if !firmware.is_file() {
        bail!(
            "no firmware at {}: build it with `cargo build --release --target {}` in firmware/mcu",
            firmware.display(),
            core.target()
        );
    }
    with_frames(blob, ds, FRAMES_REGION, |b, f| {
        run_qemu(firmware, core, Some(b), Some(f))
    })
}

/// Runs the firmware in QEMU (the core's MPS2 board, instruction counting) with the blob
/// and frames loaded at their addresses; returns what it printed. Fails if QEMU does not
/// exit cleanly.
pub fn run_qemu(
    firmware: &Path,
    core: Core,
    blob: Option<&Path>,
    frames: Option<&Path>,
) -> Result<String> {
    let (machine, cpu) = core.qemu_machine();
    let (blob_addr, frames_addr) = core.blob_and_frames_addr();
    let mut cmd = Command::new("qemu-system-arm");
    cmd.args([
        "-cpu",
        cpu,
        "-machine",
        machine,
        "-nographic",
        "-monitor",
        "none",
    ])
    .args([
        "-semihosting-config",
        "enable=on,target=native",
        "-icount",
        "shift=0",
        "-kernel",
    ])
    .arg(firmware);
    if let Some(b) = blob {
        cmd.arg("-device")
            .arg(format!("loader,file={},addr={blob_addr:#x}", b.display()));
    }
    if let Some(f) = frames {
        cmd.arg("-device")
            .arg(format!("loader,file={},addr={frames_addr:#x}", f.display()));
    }
    let out = cmd
        .output()
        .context("running qemu-system-arm (apt-get install qemu-system-arm)")?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() {
        bail!("the firmware failed in QEMU:\n{text}");
    }
    Ok(text)
}

/// The logits of each `frame N label X logits [..]` line.
pub fn parse_frames(text: &str) -> Vec<[i8; NUM_CLASSES]> {
    text.lines()
        .filter(|l| l.starts_with("frame "))
        .filter_map(|l| {
            let inner = l.split_once('[')?.1.split_once(']')?.0;
            let v: Vec<i8> = inner
                .split(',')
                .filter_map(|t| t.trim().parse().ok())
                .collect();
            v.try_into().ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intel_hex_records() {
        let h = intel_hex(&[0x01, 0x02, 0x03], 0x0008_0000);
        let lines: Vec<&str> = h.lines().collect();
        assert_eq!(
            lines,
            [":020000040008F2", ":03000000010203F7", ":00000001FF"]
        );
    }

    #[test]
    fn uf2_blocks_carry_the_blob_at_its_address() {
        let blob: Vec<u8> = (0..600u32).map(|i| (i * 7) as u8).collect();
        let img = uf2_image(&blob, 0x1008_0000, 0xe48b_ff56).unwrap();
        assert_eq!(img.len(), 3 * 512);
        let word = |b: &[u8], i: usize| u32::from_le_bytes(b[i * 4..i * 4 + 4].try_into().unwrap());
        let mut back = Vec::new();
        for (n, block) in img.chunks(512).enumerate() {
            assert_eq!(word(block, 0), 0x0A32_4655);
            assert_eq!(word(block, 1), 0x9E5D_5157);
            assert_eq!(word(block, 2), 0x2000, "family-ID flag");
            assert_eq!(word(block, 3), 0x1008_0000 + 256 * n as u32);
            assert_eq!(word(block, 4), 256);
            assert_eq!((word(block, 5), word(block, 6)), (n as u32, 3));
            assert_eq!(word(block, 7), 0xe48b_ff56);
            assert_eq!(word(block, 127), 0x0AB1_6F30);
            back.extend_from_slice(&block[32..32 + 256]);
        }
        assert_eq!(&back[..600], &blob[..]);
        assert!(uf2_image(&blob, 0x1008_0001, 0).is_err());
    }

    #[test]
    fn boards_refuse_blobs_larger_than_their_region() {
        let b = Board::Pico;
        assert!(b.check_fits(b.blob_region()).is_ok());
        let err = b.check_fits(b.blob_region() + 1).unwrap_err().to_string();
        assert!(err.contains("pico") && err.contains("0x10100000"), "{err}");
    }

    #[test]
    fn probe_rs_is_asked_for_the_blob_region() {
        let cmd = Board::Pico.probe_command(Path::new("m.bin"));
        let args: Vec<_> = cmd
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(cmd.get_program(), "probe-rs");
        assert_eq!(
            args,
            [
                "download",
                "--binary-format",
                "bin",
                "--base-address",
                "0x10100000",
                "--chip",
                "RP2040",
                "m.bin"
            ]
        );
    }

    #[test]
    fn parses_frame_lines() {
        let t = "emoedge-mcu: model ok\nframe 0 label happy logits [-3, 4, 5, 120, -128, 0, 1]\nlayer 0\n";
        assert_eq!(parse_frames(t), vec![[-3, 4, 5, 120, -128, 0, 1]]);
    }
}
