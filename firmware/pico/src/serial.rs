//! The Pico's serial port for the report and the host link: its own USB as a CDC-ACM serial
//! port (what a user gets by plugging in the USB cable only) and UART0 on GP0/GP1 (for a
//! USB-serial adapter or a debug probe's UART), both at once.
//!
//! USB is polled ([`poll_usb`]) whenever the firmware reads or writes the port and at every
//! layer boundary of an inference (the board's clock calls it), so the Pico enumerates and
//! answers the host within ~0.1 s even mid-inference; what the host sends waits in a queue
//! the main loop reads. (Polling rather than the USB interrupt: the interrupt-driven
//! version faulted in rp2040js, the emulator the tests run, resuming mid-instruction.) What the firmware writes goes out
//! on both: UART0 always, USB once a host has opened the port or spoken on it (else it is
//! dropped, so the report never waits on a cable no one reads).

use core::cell::RefCell;
use critical_section::Mutex;
use embedded_hal_nb::serial::{ErrorKind, ErrorType, Read, Write};
use heapless::Deque;

use rp2040_hal::uart::{Enabled, UartDevice, UartPeripheral, ValidUartPinout};
use rp2040_hal::usb::UsbBus;
use usb_device::class_prelude::UsbBusAllocator;
use usb_device::prelude::*;
use usbd_serial::SerialPort;

/// The Raspberry Pi vendor ID and the product ID it lists for Pico CDC-ACM firmware.
const VID_PID: UsbVidPid = UsbVidPid(0x2e8a, 0x000a);

/// Bytes from the host waiting for the main loop: a whole link frame and more.
const RX_QUEUE: usize = 4096;

struct Usb {
    device: UsbDevice<'static, UsbBus>,
    port: SerialPort<'static, UsbBus>,
    received: Deque<u8, RX_QUEUE>,
    /// The host has sent something: it reads what the board writes.
    heard: bool,
}

static USB: Mutex<RefCell<Option<Usb>>> = Mutex::new(RefCell::new(None));

/// Starts the USB device on `bus` and its interrupt; call once.
pub fn start_usb(bus: &'static UsbBusAllocator<UsbBus>) {
    let port = SerialPort::new(bus);
    let Ok(builder) = UsbDeviceBuilder::new(bus, VID_PID).strings(&[StringDescriptors::default()
        .manufacturer("emoedge")
        .product("emoedge-pico")
        .serial_number("emoedge")])
    else {
        return;
    };
    // Control packets of 64 bytes, the full-speed maximum: descriptors arrive in one packet
    // (rp2040js's CDC host, like some hosts, reads the configuration header whole).
    let Ok(builder) = builder.max_packet_size_0(64) else {
        return;
    };
    let device = builder.device_class(usbd_serial::USB_CLASS_CDC).build();
    critical_section::with(|cs| {
        USB.borrow(cs).replace(Some(Usb {
            device,
            port,
            received: Deque::new(),
            heard: false,
        }))
    });
}

/// Lets the USB device answer the host: enumeration, control requests, and the bytes the
/// host sent moved into the queue [`PicoSerial`] reads. Cheap when nothing is pending.
pub fn poll_usb() {
    critical_section::with(|cs| {
        let mut usb = USB.borrow(cs).borrow_mut();
        let Some(usb) = usb.as_mut() else { return };
        if !usb.device.poll(&mut [&mut usb.port]) {
            return;
        }
        let mut buf = [0u8; 64];
        // Read what fits the queue; the rest stays with the USB controller (NAKed) until
        // the main loop has made room.
        let room = RX_QUEUE - usb.received.len();
        if room == 0 {
            return;
        }
        let take = room.min(buf.len());
        if let Ok(n) = usb.port.read(&mut buf[..take]) {
            usb.heard |= n > 0;
            for &b in &buf[..n] {
                let _ = usb.received.push_back(b);
            }
        }
    });
}

/// UART0 and USB as one serial port ([`Read`] and [`Write`] of `embedded-hal-nb`).
pub struct PicoSerial<D: UartDevice, P: ValidUartPinout<D>> {
    uart: UartPeripheral<Enabled, D, P>,
}

impl<D: UartDevice, P: ValidUartPinout<D>> PicoSerial<D, P> {
    /// The port over an enabled UART (USB is started by [`start_usb`]).
    pub fn new(uart: UartPeripheral<Enabled, D, P>) -> Self {
        Self { uart }
    }
}

impl<D: UartDevice, P: ValidUartPinout<D>> ErrorType for PicoSerial<D, P> {
    type Error = ErrorKind;
}

impl<D: UartDevice, P: ValidUartPinout<D>> Read<u8> for PicoSerial<D, P> {
    fn read(&mut self) -> nb::Result<u8, ErrorKind> {
        poll_usb();
        let from_usb = critical_section::with(|cs| {
            USB.borrow(cs)
                .borrow_mut()
                .as_mut()
                .and_then(|u| u.received.pop_front())
        });
        if let Some(b) = from_usb {
            return Ok(b);
        }
        self.uart.read().map_err(|e| e.map(|_| ErrorKind::Other))
    }
}

impl<D: UartDevice, P: ValidUartPinout<D>> Write<u8> for PicoSerial<D, P> {
    fn write(&mut self, byte: u8) -> nb::Result<(), ErrorKind> {
        nb::block!(self.uart.write(byte)).map_err(|_| nb::Error::Other(ErrorKind::Other))?;
        // USB: only to a host that has opened the port (DTR set) or spoken on it, waiting
        // while its buffer is full (polling empties it as the host reads).
        loop {
            let sent = critical_section::with(|cs| {
                let mut usb = USB.borrow(cs).borrow_mut();
                let Some(usb) = usb.as_mut() else {
                    return true;
                };
                let listening = usb.heard || usb.port.dtr();
                if usb.device.state() != UsbDeviceState::Configured || !listening {
                    return true;
                }
                !matches!(usb.port.write(&[byte]), Err(UsbError::WouldBlock))
            });
            if sent {
                return Ok(());
            }
            poll_usb();
        }
    }

    fn flush(&mut self) -> nb::Result<(), ErrorKind> {
        nb::block!(self.uart.flush()).map_err(|_| nb::Error::Other(ErrorKind::Other))?;
        critical_section::with(|cs| {
            if let Some(usb) = USB.borrow(cs).borrow_mut().as_mut() {
                let _ = usb.port.flush();
            }
        });
        Ok(())
    }
}
