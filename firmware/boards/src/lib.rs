//! `emoedge-boards`: every board the emoedge firmware runs on, defined once.
//!
//! A board's facts (its flash and RAM, where the model blob and the test frames live, its
//! UF2 family, its chip's name for probe-rs, its emulator) are needed in three places: the
//! linker script of its firmware, the firmware's own code, and the host, which writes flash
//! images and runs the emulators. Each reads them from [`Board`]: the firmware's build script
//! writes `memory.x` with [`Board::memory_x`], the firmware takes the region sizes from the
//! same constant, and `emoedge flash --board NAME` finds the board with [`by_name`].
#![no_std]
#![forbid(unsafe_code)]

use core::fmt;

/// A range of the address space.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    /// First address.
    pub origin: u32,
    /// Bytes.
    pub len: u32,
}

impl Region {
    /// One past the last address.
    pub const fn end(&self) -> u32 {
        self.origin + self.len
    }

    /// Whether `other` lies inside this region.
    pub const fn contains(&self, other: &Region) -> bool {
        other.origin >= self.origin && other.end() <= self.end()
    }

    /// Whether the two regions share an address.
    pub const fn overlaps(&self, other: &Region) -> bool {
        self.origin < other.end() && other.origin < self.end()
    }
}

/// How a board's firmware runs without the board.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Emulator {
    /// rp2040js on Node.js, through the firmware folder's `emulate.mjs`.
    Rp2040js,
    /// A QEMU machine; the firmware reports over its serial port and stops at its verdict.
    QemuSerial {
        /// `-machine`.
        machine: &'static str,
    },
    /// A QEMU machine; the firmware reports over semihosting and exits QEMU with its
    /// verdict.
    QemuSemihosting {
        /// `-machine`.
        machine: &'static str,
        /// `-cpu`.
        cpu: &'static str,
    },
}

/// One board: a chip on a board people own, or an emulated machine the firmware is
/// measured on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Board {
    /// Its name on the command line (`emoedge flash --board NAME`).
    pub name: &'static str,
    /// What it is, in a line.
    pub summary: &'static str,
    /// Its processor core, as the firmware names it to the host ("Cortex-M0+").
    pub core: &'static str,
    /// The Rust target its firmware is built for.
    pub target: &'static str,
    /// The firmware's folder, from the repository root.
    pub firmware_dir: &'static str,
    /// The firmware's binary name.
    pub firmware_bin: &'static str,
    /// Where the firmware's code goes.
    pub code: Region,
    /// The second-stage bootloader's place at the start of flash, where the chip needs one
    /// (the RP2040).
    pub boot2: Option<Region>,
    /// The RAM the firmware may use.
    pub ram: Region,
    /// The model blob's flash region: flashed on its own, so a new model needs no new
    /// firmware.
    pub blob: Region,
    /// The frames' flash region: 48x48 test faces (`emoedge_core::test_frames`) or whole
    /// camera frames (`emoedge_core::camera_frames`).
    pub frames: Region,
    /// The face cascade blob's flash region (`emoedge_vision::detect::blob`): flashed on
    /// its own, like the model.
    pub cascade: Region,
    /// The largest camera frame (width, height) the firmware's RAM holds the face
    /// detector's buffers for.
    pub camera_max: (u16, u16),
    /// The core clock, Hz, as the firmware runs it.
    pub clock_hz: u32,
    /// The UF2 family ID its drag-and-drop bootloader accepts.
    pub uf2_family: Option<u32>,
    /// The chip's name for `probe-rs --chip`.
    pub probe_chip: Option<&'static str>,
    /// How it runs without the board.
    pub emulator: Emulator,
}

/// Raspberry Pi Pico: RP2040 (Cortex-M0+), 2 MiB of QSPI flash, 264 KiB of SRAM. The firmware
/// takes the first 768 KiB of flash, the face cascade the next 256 KiB; the blob and the
/// frames have 512 KiB each after them.
pub const PICO: Board = Board {
    name: "pico",
    summary: "Raspberry Pi Pico (RP2040, Cortex-M0+, 125 MHz), UART0 on GP0/GP1",
    core: "Cortex-M0+",
    target: "thumbv6m-none-eabi",
    firmware_dir: "firmware/pico",
    firmware_bin: "emoedge-pico",
    code: Region {
        origin: 0x1000_0100,
        len: 0xC_0000 - 0x100,
    },
    boot2: Some(Region {
        origin: 0x1000_0000,
        len: 0x100,
    }),
    ram: Region {
        origin: 0x2000_0000,
        len: 256 * 1024,
    },
    blob: Region {
        origin: 0x1010_0000,
        len: 0x8_0000,
    },
    frames: Region {
        origin: 0x1018_0000,
        len: 0x8_0000,
    },
    cascade: Region {
        origin: 0x100C_0000,
        len: 0x4_0000,
    },
    camera_max: (320, 240),
    clock_hz: 125_000_000,
    uf2_family: Some(0xe48b_ff56),
    probe_chip: Some("RP2040"),
    emulator: Emulator::Rp2040js,
};

/// STM32F405/407 boards: Cortex-M4F with DSP, 1 MiB of flash in sectors of 16, 64 and
/// 128 KiB, 128 KiB of SRAM (the 64 KiB CCM is not used). The firmware takes sectors 0-4;
/// the blob sectors 5-7 and the frames sectors 8-11, so each is erased on its own.
pub const STM32F405: Board = Board {
    name: "stm32f405",
    summary: "STM32F405/407 boards (Cortex-M4F, 168 MHz), USART1 on PA9/PA10",
    core: "Cortex-M4F",
    target: "thumbv7em-none-eabihf",
    firmware_dir: "firmware/stm32f405",
    firmware_bin: "emoedge-stm32f405",
    code: Region {
        origin: 0x0800_0000,
        len: 128 * 1024,
    },
    boot2: None,
    ram: Region {
        origin: 0x2000_0000,
        len: 128 * 1024,
    },
    blob: Region {
        origin: 0x0802_0000,
        len: 0x6_0000,
    },
    frames: Region {
        origin: 0x080A_0000,
        len: 0x6_0000,
    },
    cascade: Region {
        origin: 0x0808_0000,
        len: 0x2_0000,
    },
    camera_max: (160, 120),
    clock_hz: 168_000_000,
    uf2_family: Some(0x5775_5a57),
    probe_chip: Some("STM32F405RGTx"),
    emulator: Emulator::QemuSerial {
        machine: "netduinoplus2",
    },
};

/// QEMU's MPS2 AN386 (Cortex-M4F at 25 MHz): 4 MiB of code memory, of which the firmware
/// takes 512 KiB, the blob 1 MiB, the frames 2 MiB and the face cascade 512 KiB; RAM capped at 256 KiB to stay
/// honest about what a microcontroller has. Instruction counts per layer are measured here.
pub const MPS2_M4F: Board = Board {
    name: "mps2-m4f",
    summary: "Cortex-M4F build on QEMU's MPS2 AN386 (instruction counts)",
    core: "Cortex-M4F",
    target: "thumbv7em-none-eabihf",
    firmware_dir: "firmware/mcu",
    firmware_bin: "emoedge-mcu",
    code: Region {
        origin: 0,
        len: 512 * 1024,
    },
    boot2: None,
    ram: Region {
        origin: 0x2000_0000,
        len: 256 * 1024,
    },
    blob: Region {
        origin: 0x0008_0000,
        len: 0x10_0000,
    },
    frames: Region {
        origin: 0x0018_0000,
        len: 0x20_0000,
    },
    cascade: Region {
        origin: 0x0038_0000,
        len: 0x8_0000,
    },
    camera_max: (320, 240),
    clock_hz: 25_000_000,
    uf2_family: None,
    probe_chip: None,
    emulator: Emulator::QemuSemihosting {
        machine: "mps2-an386",
        cpu: "cortex-m4",
    },
};

/// The Cortex-M0+ build (Armv6-M) on QEMU's MPS2 AN385: QEMU has no M0+ board of this
/// family, and its Cortex-M3 runs Armv6-M code unchanged, so the counts are of the M0+
/// instructions. Same memory map as [`MPS2_M4F`].
pub const MPS2_M0PLUS: Board = Board {
    name: "mps2-m0plus",
    summary: "Cortex-M0+ build on QEMU's MPS2 AN385 (instruction counts)",
    core: "Cortex-M0+",
    target: "thumbv6m-none-eabi",
    emulator: Emulator::QemuSemihosting {
        machine: "mps2-an385",
        cpu: "cortex-m3",
    },
    ..MPS2_M4F
};

/// The Cortex-M33 build (Armv8-M Mainline with DSP, `-C target-cpu=cortex-m33`) on QEMU's
/// MPS2 AN505 at 20 MHz, in the secure state: code memory at 0x10000000, data in SSRAM2 at
/// 0x38000000, the blob, the frames and the cascade at the offsets of [`MPS2_M4F`].
pub const MPS2_M33: Board = Board {
    name: "mps2-m33",
    summary: "Cortex-M33 build on QEMU's MPS2 AN505 (instruction counts)",
    core: "Cortex-M33",
    target: "thumbv8m.main-none-eabihf",
    code: Region {
        origin: 0x1000_0000,
        len: 512 * 1024,
    },
    ram: Region {
        origin: 0x3800_0000,
        len: 256 * 1024,
    },
    blob: Region {
        origin: 0x1008_0000,
        len: 0x10_0000,
    },
    frames: Region {
        origin: 0x1018_0000,
        len: 0x20_0000,
    },
    cascade: Region {
        origin: 0x1038_0000,
        len: 0x8_0000,
    },
    clock_hz: 20_000_000,
    emulator: Emulator::QemuSemihosting {
        machine: "mps2-an505",
        cpu: "cortex-m33",
    },
    ..MPS2_M4F
};

/// Every board, boards people own first.
pub const ALL: [Board; 5] = [PICO, STM32F405, MPS2_M4F, MPS2_M0PLUS, MPS2_M33];

/// The board called `name` (a `const fn`, so that firmware can pick its board at compile
/// time from a name its build script sets).
pub const fn by_name(name: &str) -> Option<&'static Board> {
    let mut i = 0;
    while i < ALL.len() {
        if str_eq(ALL[i].name, name) {
            return Some(&ALL[i]);
        }
        i += 1;
    }
    None
}

const fn str_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

impl Board {
    /// The MPS2 build of `firmware/mcu` for a Rust target: what its build script links for.
    pub fn mps2_for_target(target: &str) -> &'static Board {
        if target.starts_with("thumbv8m.main") {
            &MPS2_M33
        } else if target.starts_with("thumbv6m") {
            &MPS2_M0PLUS
        } else {
            &MPS2_M4F
        }
    }

    /// The firmware's linker memory map (`memory.x` for `cortex-m-rt`): its code and RAM,
    /// the boot2 section where the chip has one, and the symbols `_model_blob`, `_frames`
    /// and `_cascade` at the regions' starts.
    pub fn memory_x(&self) -> MemoryX<'_> {
        MemoryX(self)
    }

    /// The board's layout is consistent: code, blob, frames and cascade apart, each flashed
    /// region in whole 256-byte UF2 blocks.
    pub const fn is_consistent(&self) -> bool {
        let flashed = [self.blob, self.frames, self.cascade];
        let mut i = 0;
        while i < flashed.len() {
            if self.code.overlaps(&flashed[i]) || !flashed[i].origin.is_multiple_of(256) {
                return false;
            }
            let mut j = i + 1;
            while j < flashed.len() {
                if flashed[i].overlaps(&flashed[j]) {
                    return false;
                }
                j += 1;
            }
            i += 1;
        }
        true
    }
}

/// [`Board::memory_x`].
pub struct MemoryX<'a>(&'a Board);

impl fmt::Display for MemoryX<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        writeln!(
            f,
            "/* {}: generated from emoedge-boards by the firmware's build script. */",
            b.summary
        )?;
        writeln!(f, "MEMORY\n{{")?;
        if let Some(boot2) = b.boot2 {
            writeln!(
                f,
                "  BOOT2 : ORIGIN = {:#010x}, LENGTH = {:#x}",
                boot2.origin, boot2.len
            )?;
        }
        writeln!(
            f,
            "  FLASH : ORIGIN = {:#010x}, LENGTH = {:#x}",
            b.code.origin, b.code.len
        )?;
        writeln!(
            f,
            "  RAM   : ORIGIN = {:#010x}, LENGTH = {:#x}\n}}\n",
            b.ram.origin, b.ram.len
        )?;
        if b.boot2.is_some() {
            writeln!(
                f,
                "EXTERN(BOOT2_FIRMWARE)\n\nSECTIONS {{\n  .boot2 ORIGIN(BOOT2) :\n  {{\n    \
                 KEEP(*(.boot2));\n  }} > BOOT2\n}} INSERT BEFORE .text;\n"
            )?;
        }
        writeln!(f, "_model_blob = {:#010x};", b.blob.origin)?;
        writeln!(f, "_model_blob_len = {:#x};", b.blob.len)?;
        writeln!(f, "_frames = {:#010x};", b.frames.origin)?;
        writeln!(f, "_frames_len = {:#x};", b.frames.len)?;
        writeln!(f, "_cascade = {:#010x};", b.cascade.origin)?;
        writeln!(f, "_cascade_len = {:#x};", b.cascade.len)
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::string::ToString;

    #[test]
    fn every_board_is_laid_out_apart_and_named_once() {
        for (i, b) in ALL.iter().enumerate() {
            assert!(b.is_consistent(), "{}", b.name);
            assert_eq!(by_name(b.name), Some(&ALL[i]));
            assert!(ALL.iter().filter(|o| o.name == b.name).count() == 1);
        }
        // The Pico's blob and cascade lie past the flash its firmware keeps.
        assert!(PICO.blob.origin >= PICO.code.end());
        assert!(PICO.cascade.origin >= PICO.code.end());
        assert_eq!(by_name("nope"), None);
    }

    #[test]
    fn memory_x_places_the_regions() {
        let x = PICO.memory_x().to_string();
        assert!(
            x.contains("BOOT2 : ORIGIN = 0x10000000, LENGTH = 0x100"),
            "{x}"
        );
        assert!(
            x.contains("FLASH : ORIGIN = 0x10000100, LENGTH = 0xbff00"),
            "{x}"
        );
        assert!(x.contains("_model_blob = 0x10100000;"), "{x}");
        assert!(x.contains("_frames = 0x10180000;"), "{x}");
        assert!(x.contains("_cascade = 0x100c0000;"), "{x}");
        assert!(x.contains("KEEP(*(.boot2))"), "{x}");
        let y = MPS2_M33.memory_x().to_string();
        assert!(
            y.contains("RAM   : ORIGIN = 0x38000000, LENGTH = 0x40000"),
            "{y}"
        );
        assert!(!y.contains("BOOT2"), "{y}");
        assert_eq!(
            Board::mps2_for_target("thumbv6m-none-eabi").name,
            "mps2-m0plus"
        );
    }
}
