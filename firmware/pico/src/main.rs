//! emoedge-pico: the emoedge firmware on a Raspberry Pi Pico (RP2040, Cortex-M0+).
//!
//! The board layer only: clocks from the 12 MHz crystal through the PLLs (125 MHz system
//! clock), and the report and then the host link on both the Pico's own USB (a CDC-ACM
//! serial port) and UART0 on GP0 (TX) and GP1 (RX) at 115200 8N1 ([`serial`]). The memory map
//! (model blob at 0x10100000, test frames at 0x10180000) is `emoedge_boards::PICO`'s; the
//! rest is `emoedge_mcu::board`, as on every board. Costs are cycles of the 125 MHz system
//! clock from the microsecond timer (as the emulator models them, when run in rp2040js).
#![no_std]
#![no_main]

use core::fmt::Write;
use emoedge_core::link::CostUnit;
use emoedge_mcu::{board, halt};
use hal::uart::{DataBits, StopBits, UartConfig, UartPeripheral};
use rp2040_hal::{self as hal, Clock, fugit::RateExtU32, pac};
use usb_device::class_prelude::UsbBusAllocator;

mod serial;

/// The second-stage bootloader the RP2040's bootrom runs from the first 256 bytes of flash
/// (generic 03h-read QSPI setup, which works with the Pico's W25Q16).
#[unsafe(link_section = ".boot2")]
#[used]
pub static BOOT2_FIRMWARE: [u8; 256] = rp2040_boot2::BOOT_LOADER_GENERIC_03H;

/// The Pico's crystal.
const XTAL_HZ: u32 = 12_000_000;
#[hal::entry]
fn main() -> ! {
    let Some(mut pac) = pac::Peripherals::take() else {
        halt()
    };
    let mut watchdog = hal::Watchdog::new(pac.WATCHDOG);
    let Ok(clocks) = hal::clocks::init_clocks_and_plls(
        XTAL_HZ,
        pac.XOSC,
        pac.CLOCKS,
        pac.PLL_SYS,
        pac.PLL_USB,
        &mut pac.RESETS,
        &mut watchdog,
    ) else {
        halt()
    };
    let sio = hal::Sio::new(pac.SIO);
    let pins = hal::gpio::Pins::new(
        pac.IO_BANK0,
        pac.PADS_BANK0,
        sio.gpio_bank0,
        &mut pac.RESETS,
    );
    let uart_pins = (
        pins.gpio0.into_function::<hal::gpio::FunctionUart>(),
        pins.gpio1.into_function::<hal::gpio::FunctionUart>(),
    );
    let config = UartConfig::new(115_200.Hz(), DataBits::Eight, None, StopBits::One);
    let Ok(uart) = UartPeripheral::new(pac.UART0, uart_pins, &mut pac.RESETS)
        .enable(config, clocks.peripheral_clock.freq())
    else {
        halt()
    };

    // The RP2040's 64-bit microsecond timer, in cycles of the 125 MHz system clock
    // (resolution 125 cycles); SysTick's 24 bits wrap within one layer at this clock.
    let timer = hal::Timer::new(pac.TIMER, &mut pac.RESETS, &clocks);
    let cycles_per_us = (clocks.system_clock.freq().to_Hz() / 1_000_000) as u64;
    // Each reading also polls USB: the engine reads the clock at every layer boundary.
    let mut clock = || {
        serial::poll_usb();
        timer.get_counter().ticks() * cycles_per_us
    };
    let bus = UsbBusAllocator::new(hal::usb::UsbBus::new(
        pac.USBCTRL_REGS,
        pac.USBCTRL_DPRAM,
        clocks.usb_clock,
        true,
        &mut pac.RESETS,
    ));
    let Some(bus) = cortex_m::singleton!(: UsbBusAllocator<hal::usb::UsbBus> = bus) else {
        halt()
    };
    serial::start_usb(bus);
    let port = serial::PicoSerial::new(uart);
    let mut detect = emoedge_mcu::detect_buffers!(emoedge_boards::PICO);
    board::run_and_serve(
        port,
        &mut clock,
        CostUnit::Cycles,
        &emoedge_boards::PICO,
        &mut detect,
    )
}

/// UART0's transmit FIFO, written directly: what the panic and fault handlers have when the
/// `UartPeripheral` is out of reach (the UART is configured long before any panic can come).
struct Uart0Raw;

impl Write for Uart0Raw {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        // SAFETY: only the handlers below use this, and they never return to code that is
        // using UART0.
        let uart = unsafe { pac::UART0::steal() };
        for b in s.bytes() {
            while uart.uartfr().read().txff().bit_is_set() {}
            // SAFETY: any byte is a valid data value.
            uart.uartdr().write(|w| unsafe { w.data().bits(b) });
        }
        Ok(())
    }
}

emoedge_mcu::fault_handlers!(Uart0Raw);
