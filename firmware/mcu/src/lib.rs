//! What every `emoedge-mcu` firmware image shares: how it reports a failure (a line over
//! semihosting, then a failing exit, so a host test or `emoedge flash --qemu` sees it) and
//! the panic and hard-fault handlers that route there.
#![no_std]

use cortex_m_rt::{ExceptionFrame, exception};
use cortex_m_semihosting::{debug, hprintln};

/// Prints `emoedge-mcu: error: …` and stops with a failing exit status.
pub fn fail(msg: core::fmt::Arguments) -> ! {
    hprintln!("emoedge-mcu: error: {}", msg);
    debug::exit(debug::EXIT_FAILURE);
    loop {
        cortex_m::asm::wfi();
    }
}

/// Stops with a successful exit status.
pub fn exit_ok() -> ! {
    debug::exit(debug::EXIT_SUCCESS);
    loop {
        cortex_m::asm::wfi();
    }
}

#[exception]
unsafe fn HardFault(ef: &ExceptionFrame) -> ! {
    fail(format_args!("hard fault at pc {:#010x}", ef.pc()))
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    fail(format_args!("panic: {}", info))
}
