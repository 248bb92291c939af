// The device firmware on a virtual Pico, as a board on a serial line: UART0 is bridged to
// stdin/stdout, and every edge of the marker pin (GP2) is reported on stderr as a JSON line with
// the cycle counter (and the XIP cache misses while it was high), so the host can check the pin's
// high time against the firmware's own count.
//
// Usage: node device.mjs IMAGE.json   (the UF2's blocks in file order, {segments: [{addr, data}]})
//
// Like the RP2040 bootrom, the first block's address decides what the image is:
// - RAM-only (0x20000000...): loaded into SRAM, execution starts at the lowest loaded address.
// - flash (0x10000000...): written to flash, then booted the way the bootrom boots flash. We have
//   no bootrom image (rp2040js ships none), so this file does the bootrom's part of a flash boot:
//   check the CRC-32 of the first 252 bytes against bytes 252..255 (a mismatch ends the run, where
//   the real bootrom would fall back to USB boot), copy the 256 bytes to 0x20041f00, leave the SSI
//   as the bootrom leaves it (byte-wide serial transfers, not XIP), and enter boot2 with lr = 0 and
//   the bootrom's stack. From there on everything is the image's own code on the emulated core:
//   boot2 must set the SSI up for XIP (a read of the XIP window before that is a fault), set VTOR
//   and enter the image. Each XIP cache miss then costs the serial read boot2 configured (xip.mjs).
//   Not emulated: the bootrom's own instructions (its clock, pad and flash reset sequence, retries
//   over CPOL/CPHA), the flash chip's timing beyond SCK counting.
import { readFileSync } from 'node:fs';
import { RP2040 } from 'rp2040js';
import { FLASH_BASE, XipCache, hookXipReads, serialReadCost, ssiOf } from './xip.mjs';

const SRAM_BASE = 0x20000000;
const BOOT2_BYTES = 256;
const BOOT2_SRAM = 0x20041f00;  // top 256 bytes of SRAM; also the bootrom's initial stack pointer

const image = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const MARKER_PIN = image.marker_pin ?? 2;
const CYCLE_NANOS = 1e9 / 125e6;
const rp = new RP2040();
// A real core would take a HardFault (and with a fault in the handler, lock up) where rp2040js only
// logs a warning or calls onBreak: an unimplemented/undefined instruction, a bad memory access, a
// BKPT/UDF (the device firmware has no BKPT markers). Any of them means the board is dead, so report
// it as an error event and exit; the host then ends `emulate` (or `measure`) with that error.
function fault(message) {
  process.stderr.write(JSON.stringify({ error: `${message} (PC=0x${rp.core.PC.toString(16)})`, fatal: true }) + '\n');
  process.exit(3);
}
function event(obj) {
  process.stderr.write(JSON.stringify(obj) + '\n');
}
rp.logger = { debug() {}, info() {}, warn(c, m) { fault(`${c}: ${m}`); }, error(c, m) { fault(`${c}: ${m}`); } };
rp.onBreak = (code) => fault(`core fault: breakpoint or undefined instruction (code ${code})`);

// CRC-32 as the bootrom checks boot2: polynomial 0x04c11db7, MSB first, init 0xffffffff, no final xor
function crc32Boot2(bytes) {
  let crc = 0xffffffff;
  for (const b of bytes) {
    crc ^= b << 24;
    for (let i = 0; i < 8; i++) crc = crc & 0x80000000 ? (crc << 1) ^ 0x04c11db7 : crc << 1;
  }
  return crc >>> 0;
}

const blocks = image.segments.map((s) => ({ addr: s.addr, data: Buffer.from(s.data, 'base64') }));
if (!blocks.length) fault('empty image');
const fromFlash = blocks[0].addr >= FLASH_BASE && blocks[0].addr < SRAM_BASE;
const [base, memory] = fromFlash ? [FLASH_BASE, rp.flash] : [SRAM_BASE, rp.sram];
for (const { addr, data } of blocks) {
  if (addr < base || addr + data.length > base + memory.length) {
    fault(`UF2 block at 0x${addr.toString(16)} is outside the ${fromFlash ? 'flash' : 'SRAM'} the first block chose`);
  }
  memory.set(data, addr - base);
}

let cache = null;
if (fromFlash) {
  const boot2 = rp.flash.subarray(0, BOOT2_BYTES);
  const stored = Buffer.from(boot2).readUInt32LE(BOOT2_BYTES - 4);
  const computed = crc32Boot2(boot2.subarray(0, BOOT2_BYTES - 4));
  if (stored !== computed) {
    fault(`boot2 checksum mismatch (stored 0x${stored.toString(16)}, computed 0x${computed.toString(16)}): ` +
          'the bootrom would not run this image and would fall back to USB boot');
  }
  rp.sram.set(boot2, BOOT2_SRAM - SRAM_BASE);
  // the SSI as the bootrom's flash reads leave it: standard SPI, 8-bit frames, TX-and-RX mode, clk/6
  const ssi = ssiOf(rp);
  Object.assign(ssi, { ssienr: 1, baudr: 6, crtlr0: 7 << 16, spictlr0: 0x03000000 });
  let reported = false;
  cache = new XipCache(rp.core, () => {
    const cost = serialReadCost(ssi);
    if (cost.error) fault(cost.error);
    if (!reported) { event({ xip: cost }); reported = true; }
    return cost.cycles;
  });
  hookXipReads(rp, cache);
  rp.core.SP = BOOT2_SRAM;
  rp.core.LR = 0;
  rp.core.PC = BOOT2_SRAM;
} else {
  rp.core.SP = 0x20042000;
  rp.core.PC = Math.min(...blocks.map((b) => b.addr)) & ~1;
}

const uart = rp.uart[0];
const rx = [];
uart.onByte = (b) => process.stdout.write(Buffer.from([b]));
process.stdin.on('data', (chunk) => { for (const b of chunk) rx.push(b); });
process.stdin.on('end', () => process.exit(0));

let riseAt = 0;
let missesAt = 0;
rp.gpio[MARKER_PIN].addListener((state, old) => {
  // GPIOPinState: Low 0, High 1; other states are the pin as an input (before the firmware drives it)
  if (state === 1 && old !== 1) {
    riseAt = rp.core.cycles;
    missesAt = cache ? cache.misses : 0;
  } else if (old === 1 && state !== 1) {
    event({ marker_high_cycles: rp.core.cycles - riseAt, xip_misses: cache ? cache.misses - missesAt : 0 });
  }
});

function run() {
  const end = rp.core.cycles + 2_000_000;
  while (rp.core.cycles < end) {
    while (rx.length && !uart.rxFIFO.full) uart.feedByte(rx.shift());
    const before = rp.core.cycles;
    rp.core.executeInstruction();
    rp.clock.tick((rp.core.cycles - before) * CYCLE_NANOS);
  }
  setImmediate(run);
}
run();
