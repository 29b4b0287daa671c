// Runs the emoedge Pico firmware in rp2040js (an RP2040 emulator) and prints what it writes
// to UART0.
//
//   node emulate.mjs FIRMWARE.elf [--load FILE@ADDR]... [--max-cycles N] [--link uart|usb]
//
// The ELF's loadable segments go into the emulated flash (and SRAM), and each --load file at
// its address: `emoedge flash --board pico --emulate` loads the model blob and the test
// frames at the regions of the Pico's memory map (emoedge-boards); the rest of the flash
// reads as erased (0xff). rp2040js ships no bootrom,
// and the bootrom's code may only run on RP2040 chips, so none is loaded: the core starts
// past boot2, with VTOR, SP and PC taken from the firmware's vector table at 0x10000100, as
// boot2 would leave them. The firmware must therefore make no calls into the ROM.
//
// With --link, a serial port of the firmware is a byte pipe instead: what arrives on stdin
// goes to the firmware (as fast as it takes it), and every byte the firmware sends goes to
// stdout as it is, for `emoedge verify --board pico --emulate` to speak the host link
// (emoedge_core::link) through. `uart` is UART0; `usb` is the Pico's own USB, enumerated by
// rp2040js's CDC-ACM host as a computer would, the port opened (DTR set) once it is. The
// run then ends when stdin closes.
//
// Exit status: 0 when the firmware reports "emoedge-mcu: done", 1 when it reports an error
// or stops without a verdict, 2 on bad arguments or when --max-cycles runs out. The last
// stderr line gives the cycles the emulator counted.
import { readFileSync } from 'node:fs';
import { Simulator, ConsoleLogger, LogLevel, USBCDC } from 'rp2040js';

const FLASH = 0x10000000;
const SRAM = 0x20000000;
const VECTORS = 0x10000100;
const CYCLE_NANOS = 1e9 / 125_000_000; // the firmware's 125 MHz system clock

function usage(msg) {
  process.stderr.write(`emulate.mjs: ${msg}\n`);
  process.stderr.write('usage: node emulate.mjs FIRMWARE.elf [--load FILE@ADDR]... [--max-cycles N] [--link uart|usb]\n');
  process.exit(2);
}

function readFile(path, what) {
  try {
    return readFileSync(path);
  } catch (e) {
    usage(`cannot read ${what} ${path}: ${e.message}`);
  }
}

// The loadable segments of a 32-bit little-endian ARM ELF, at their load addresses.
function loadSegments(elf, path) {
  const v = new DataView(elf.buffer, elf.byteOffset, elf.byteLength);
  if (elf.length < 52 || v.getUint32(0, false) !== 0x7f454c46 || elf[4] !== 1 || elf[5] !== 1) {
    usage(`${path} is not a 32-bit little-endian ELF file`);
  }
  const phoff = v.getUint32(28, true);
  const phentsize = v.getUint16(42, true);
  const phnum = v.getUint16(44, true);
  const out = [];
  for (let i = 0; i < phnum; i++) {
    const p = phoff + i * phentsize;
    if (p + 32 > elf.length) usage(`${path}: program header ${i} is past the end of the file`);
    const type = v.getUint32(p, true);
    const offset = v.getUint32(p + 4, true);
    const paddr = v.getUint32(p + 12, true);
    const filesz = v.getUint32(p + 16, true);
    if (type !== 1 || filesz === 0) continue;
    if (offset + filesz > elf.length) usage(`${path}: segment ${i} is past the end of the file`);
    out.push({ addr: paddr, bytes: elf.subarray(offset, offset + filesz) });
  }
  return out;
}

const args = process.argv.slice(2);
let firmware = null;
const loads = [];
let maxCycles = 20e9;
let link = null;
for (let i = 0; i < args.length; i++) {
  const a = args[i];
  if (a === '--load') {
    const spec = args[++i] ?? '';
    const at = spec.lastIndexOf('@');
    const addr = Number(spec.slice(at + 1));
    if (at <= 0 || !Number.isInteger(addr)) usage(`--load needs FILE@ADDR, got ${spec}`);
    loads.push({ file: spec.slice(0, at), addr });
  }
  else if (a === '--max-cycles') maxCycles = Number(args[++i]);
  else if (a === '--link') {
    link = args[++i] ?? '';
    if (link !== 'uart' && link !== 'usb') usage(`--link takes uart or usb, got ${link}`);
  }
  else if (a.startsWith('--')) usage(`unknown option ${a}`);
  else if (firmware === null) firmware = a;
  else usage(`unexpected argument ${a}`);
}
if (firmware === null) usage('no firmware given');
if (!(maxCycles > 0)) usage('--max-cycles needs a positive number');

const sim = new Simulator();
const mcu = sim.rp2040;
mcu.logger = new ConsoleLogger(LogLevel.Error);
mcu.flash.fill(0xff);

function place(addr, bytes, what) {
  if (addr >= FLASH && addr + bytes.length <= FLASH + mcu.flash.length) {
    mcu.flash.set(bytes, addr - FLASH);
  } else if (addr >= SRAM && addr + bytes.length <= SRAM + mcu.sram.length) {
    mcu.sram.set(bytes, addr - SRAM);
  } else {
    usage(`${what}: ${bytes.length} bytes at 0x${addr.toString(16)} do not fit flash or SRAM`);
  }
}

for (const s of loadSegments(readFile(firmware, 'firmware'), firmware)) place(s.addr, s.bytes, firmware);
for (const l of loads) place(l.addr, readFile(l.file, 'file to load'), l.file);

mcu.core.VTOR = VECTORS;
mcu.core.SP = mcu.readUint32(VECTORS);
mcu.core.PC = mcu.readUint32(VECTORS + 4) & ~1;

const { clock } = sim;

// Runs the core until it has executed `cycles` more cycles or `stop()` says so; returns
// false when it fell asleep with nothing to wake it (the firmware has stopped).
let idle = 0;
function runFor(cycles, stop) {
  const until = mcu.core.cycles + cycles;
  while (mcu.core.cycles < until && !stop()) {
    if (mcu.core.waiting) {
      // Asleep (WFI): run the clock to the next alarm.
      const next = clock.nanosToNextAlarm;
      if (!(next > 0) || ++idle > 1000) return false;
      clock.tick(next);
    } else {
      clock.tick(mcu.core.executeInstruction() * CYCLE_NANOS);
    }
  }
  return true;
}

// The report: UART0's lines to stdout until the verdict line.
function report() {
  let line = '';
  let verdict = null;
  mcu.uart[0].onByte = (b) => {
    if (b === 10) {
      process.stdout.write(line + '\n');
      if (line.startsWith('emoedge-mcu: done')) verdict = 0;
      else if (line.startsWith('emoedge-mcu: error:')) verdict = 1;
      line = '';
    } else if (b !== 13) {
      line += String.fromCharCode(b);
    }
  };
  while (verdict === null) {
    if (mcu.core.cycles > maxCycles) {
      process.stderr.write(`emulate.mjs: no verdict after ${maxCycles} cycles\n`);
      process.exit(2);
    }
    if (!runFor(1_000_000, () => verdict !== null)) {
      if (line) process.stdout.write(line + '\n');
      process.stderr.write('emulate.mjs: the firmware stopped without reporting done\n');
      process.exit(1);
    }
  }
  process.stderr.write(`emulate.mjs: ${mcu.core.cycles} cycles\n`);
  process.exit(verdict);
}

// The host link: stdin to the port's receiver, its transmitter to stdout, in slices of
// 100,000 cycles (0.8 ms of the Pico's time) between which Node moves the bytes.
function serveLink() {
  const input = [];
  let inputOpen = true;
  let out = [];
  // The port: how many bytes it takes now, how to give it one, and (USB) how to let the
  // firmware have what was given.
  let room;
  let give;
  let serveArmed = () => {};
  if (link === 'uart') {
    const uart = mcu.uart[0];
    uart.onByte = (b) => out.push(b);
    room = () => (uart.rxFIFO.full ? 0 : 1);
    give = (b) => uart.feedByte(b);
  } else {
    const cdc = new USBCDC(mcu.usbCtrl);
    let open = false;
    cdc.onDeviceConnected = () => { open = true; };
    cdc.onSerialData = (bytes) => { for (const b of bytes) out.push(b); };
    // The firmware arms its bulk OUT endpoint once, as soon as it is reset, before
    // rp2040js's CDC host has read the descriptors naming it, and a host answers an armed
    // OUT endpoint only when it has data to send. So an armed endpoint waits here until
    // there are bytes for it, and is then handed to the CDC host; control transfers
    // (endpoint 0) pass at once.
    const usb = mcu.usbCtrl;
    const hostRead = usb.onEndpointRead;
    const armed = new Map();
    usb.onEndpointRead = (endpoint, size) => {
      if (endpoint === 0) hostRead(endpoint, size);
      else armed.set(endpoint, size);
    };
    serveArmed = () => {
      if (!open || cdc.txFIFO.empty) return;
      for (const [endpoint, size] of armed) {
        armed.delete(endpoint);
        hostRead(endpoint, size);
      }
    };
    room = () => (open && !cdc.txFIFO.full ? 1 : 0);
    give = (b) => cdc.sendSerialByte(b);
  }
  process.stdin.on('data', (chunk) => { for (const b of chunk) input.push(b); });
  process.stdin.on('end', () => { inputOpen = false; });
  const never = () => false;
  const slice = () => {
    let fed = 0;
    while (fed < input.length && room() > 0) give(input[fed++]);
    input.splice(0, fed);
    serveArmed();
    const awake = runFor(100_000, never);
    if (out.length) {
      process.stdout.write(Buffer.from(out));
      out = [];
    }
    if (!awake) {
      process.stderr.write('emulate.mjs: the firmware stopped\n');
      process.exit(1);
    }
    if (!inputOpen && input.length === 0) process.exit(0);
    setImmediate(slice);
  };
  slice();
}

if (link) serveLink();
else report();
