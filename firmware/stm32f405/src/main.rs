//! emoedge-stm32f405: the emoedge firmware on an STM32F405/407 board (Cortex-M4F with the
//! DSP kernels).
//!
//! The board layer only: clocks and USART1 on PA9 (TX) / PA10 (RX) at 115200 8N1 for the
//! report and then the host link. The memory map (model blob at 0x08020000 in sectors 5-7, test frames at
//! 0x08080000 in sectors 8-11) is `emoedge_boards::STM32F405`'s; the rest is
//! `emoedge_mcu::board`, as on every board.
//!
//! Clocks: on a chip, the PLL runs the core at 168 MHz from the internal 16 MHz oscillator
//! (no crystal needed, any F405/F407 board), and costs are SysTick cycles. QEMU's
//! `netduinoplus2` models no RCC (its registers read as zero, so the HSI never reports
//! ready and a PLL would never lock): there the firmware leaves the clock tree alone, and
//! with `-icount shift=0` SysTick's 168 MHz is 1000/168 retired instructions per tick, so
//! it reports instructions.
#![no_std]
#![no_main]

use core::fmt::Write;
use cortex_m_rt::entry;
use emoedge_boards::STM32F405;
use emoedge_core::link::CostUnit;
use emoedge_mcu::app::SysTickCount;
use emoedge_mcu::{board, halt};
use stm32f4xx_hal::{pac, prelude::*, rcc::Config};

#[entry]
fn main() -> ! {
    let (Some(dp), Some(mut cp)) = (pac::Peripherals::take(), cortex_m::Peripherals::take()) else {
        halt()
    };
    // A real chip comes out of reset on the HSI with HSIRDY set; QEMU's RCC reads zero.
    let on_chip = dp.RCC.cr().read().hsirdy().bit_is_set();
    let config = if on_chip {
        Config::hsi().sysclk(STM32F405.clock_hz.Hz())
    } else {
        Config::hsi()
    };
    let mut rcc = dp.RCC.freeze(config);
    let gpioa = dp.GPIOA.split(&mut rcc);
    let Ok(serial) = dp
        .USART1
        .serial((gpioa.pa9, gpioa.pa10), 115_200.bps(), &mut rcc)
    else {
        halt()
    };
    let (unit, mut count) = if on_chip {
        (CostUnit::Cycles, SysTickCount::start(&mut cp.SYST, 1, 1))
    } else {
        // With `-icount shift=0` a nanosecond is one instruction.
        let mhz = STM32F405.clock_hz / 1_000_000;
        (
            CostUnit::Instructions,
            SysTickCount::start(&mut cp.SYST, 1000, mhz),
        )
    };
    let mut clock = || count.now();
    let mut detect = emoedge_mcu::detect_buffers!(STM32F405);
    board::run_and_serve(serial, &mut clock, unit, &STM32F405, &mut detect)
}

/// USART1's data register, written directly: what the panic and fault handlers have when the
/// serial port is out of reach (it is configured long before any panic can come).
struct Usart1Raw;

impl Write for Usart1Raw {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        // SAFETY: only the handlers below use this, and they never return to code that is
        // using USART1.
        let usart = unsafe { pac::USART1::steal() };
        for b in s.bytes() {
            while usart.sr().read().txe().bit_is_clear() {}
            usart.dr().write(|w| unsafe { w.dr().bits(b as u16) });
        }
        Ok(())
    }
}

emoedge_mcu::fault_handlers!(Usart1Raw);
