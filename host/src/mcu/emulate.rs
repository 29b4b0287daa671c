//! The emulators a board's firmware runs in without the board: rp2040js for the Pico, QEMU
//! for the STM32F405 (its serial port on stdout) and the MPS2 builds (semihosting).

use anyhow::{Context, Result, bail};
use emoedge_boards::Board;
use std::path::Path;
use std::process::Command;

/// The files an emulated board's flash regions hold (a region without a file reads erased).
#[derive(Clone, Copy, Debug, Default)]
pub struct Flashed<'a> {
    /// The model blob.
    pub blob: Option<&'a Path>,
    /// Test faces or camera frames.
    pub frames: Option<&'a Path>,
    /// The face cascade blob.
    pub cascade: Option<&'a Path>,
}

impl<'a> Flashed<'a> {
    /// Each file given and the address of its region on `board`.
    fn loads(&self, board: &Board) -> Vec<(&'a Path, u32)> {
        [
            (self.blob, board.blob.origin),
            (self.frames, board.frames.origin),
            (self.cascade, board.cascade.origin),
        ]
        .into_iter()
        .filter_map(|(f, addr)| Some((f?, addr)))
        .collect()
    }
}

/// QEMU's `-device loader` arguments for the files given, at the board's regions.
fn loader_args(board: &Board, files: &Flashed) -> Vec<String> {
    let mut args = Vec::new();
    for (f, addr) in files.loads(board) {
        args.push("-device".into());
        args.push(format!("loader,file={},addr={addr:#x}", f.display()));
    }
    args
}

/// The folder of the Pico's runner `emulate.mjs` and its rp2040js: the firmware's own (its
/// ELF lies in its target folder), else the board's firmware folder under the working
/// directory.
fn rp2040js_dir<'a>(board: &'a Board, firmware: &'a Path) -> Result<&'a Path> {
    let dir = firmware
        .ancestors()
        .find(|p| p.join("emulate.mjs").is_file())
        .unwrap_or(Path::new(board.firmware_dir));
    if !dir.join("node_modules/rp2040js").is_dir() {
        bail!(
            "rp2040js is not installed in {}: run `npm ci --prefix {}` (Node.js and npm from \
             your system's packages)",
            dir.display(),
            dir.display()
        );
    }
    Ok(dir)
}

/// The Pico's runner `emulate.mjs` on `firmware`, the blob and frames (when given) loaded at
/// the board's regions.
pub(super) fn rp2040js_command(board: &Board, firmware: &Path, files: &Flashed) -> Result<Command> {
    let mut cmd = Command::new("node");
    cmd.arg(rp2040js_dir(board, firmware)?.join("emulate.mjs"))
        .arg(firmware);
    for (f, addr) in files.loads(board) {
        cmd.arg("--load").arg(format!("{}@{addr:#x}", f.display()));
    }
    Ok(cmd)
}

/// QEMU's `machine` on `firmware`, the blob and frames (when given) loaded at the board's
/// regions, its serial port on standard input and output. `-serial stdio` without
/// `-nographic`: no monitor is multiplexed onto the pipe, so every byte passes as it is.
pub(super) fn qemu_serial_command(
    board: &Board,
    machine: &str,
    firmware: &Path,
    files: &Flashed,
) -> Command {
    let mut cmd = Command::new("qemu-system-arm");
    cmd.args(["-machine", machine, "-display", "none", "-monitor", "none"])
        .args(["-serial", "stdio", "-icount", "shift=0", "-kernel"])
        .arg(firmware)
        .args(loader_args(board, files));
    cmd
}

/// The Pico firmware in rp2040js, through the project's runner `firmware/pico/emulate.mjs`
/// (Node and the npm package; the runner loads the ELF, the blob and the frames into the
/// emulated flash and prints UART0).
pub(super) fn run_rp2040js(board: &Board, firmware: &Path, files: &Flashed) -> Result<String> {
    let mut cmd = rp2040js_command(board, firmware, files)?;
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

/// A board's firmware in a QEMU machine that models its chip (the STM32F405 in
/// netduinoplus2, its USART1 on stdout), blob and frames loaded at the board's addresses.
/// Board firmware does not exit the emulator (a chip has nothing to exit to), so QEMU is
/// stopped at the firmware's verdict line, or after [`BOARD_EMULATION_LIMIT`].
pub(super) fn run_qemu_serial(
    board: &Board,
    machine: &str,
    firmware: &Path,
    files: &Flashed,
) -> Result<String> {
    let mut cmd = qemu_serial_command(board, machine, firmware, files);
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

/// An MPS2 build in QEMU (instruction counting, the report over semihosting) with the blob
/// and frames loaded at the board's addresses; returns what it printed. Fails if QEMU does
/// not exit cleanly.
pub(super) fn run_qemu_semihosting(
    board: &Board,
    (machine, cpu): (&str, &str),
    firmware: &Path,
    files: &Flashed,
) -> Result<String> {
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
    .arg(firmware)
    .args(loader_args(board, files));
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
