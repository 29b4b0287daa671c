//! The MPS2 boards in QEMU: the report goes out over semihosting, and the run ends by
//! exiting QEMU with the verdict, so that a host test or `emoedge flash --qemu` sees it; the
//! panic and hard-fault handlers route there too.

use cortex_m_rt::{ExceptionFrame, exception};
use cortex_m_semihosting::{debug, hio, hprintln};

/// QEMU's standard output, as a [`core::fmt::Write`] for [`crate::board::run`].
pub struct Console(Option<hio::HostStream>);

impl Console {
    /// Opens the host's standard output.
    pub fn open() -> Self {
        Self(hio::hstdout().ok())
    }
}

impl core::fmt::Write for Console {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        match &mut self.0 {
            Some(out) => out.write_str(s),
            None => Err(core::fmt::Error),
        }
    }
}

/// No host reaches the MPS2 boards' semihosting.
impl crate::app::Console for Console {}

/// Prints `emoedge-mcu: error: …` and stops with a failing exit status.
pub fn fail(msg: core::fmt::Arguments) -> ! {
    hprintln!("emoedge-mcu: error: {}", msg);
    debug::exit(debug::EXIT_FAILURE);
    crate::halt()
}

/// Stops with a successful exit status.
pub fn exit_ok() -> ! {
    debug::exit(debug::EXIT_SUCCESS);
    crate::halt()
}

#[exception]
unsafe fn HardFault(ef: &ExceptionFrame) -> ! {
    fail(format_args!("hard fault at pc {:#010x}", ef.pc()))
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    fail(format_args!("panic: {}", info))
}
