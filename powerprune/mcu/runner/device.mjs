// The device firmware on a virtual Pico, as a board on a serial line: UART0 is bridged to
// stdin/stdout, and every edge of the marker pin (GP2) is reported on stderr as a JSON line with
// the cycle counter, so the host can check the pin's high time against the firmware's own count.
//
// Usage: node device.mjs IMAGE.json   (segments as run.mjs takes them; execution starts at the
// lowest loaded address, as the RP2040 bootrom does for a RAM-only UF2)
import { readFileSync } from 'node:fs';
import { RP2040 } from 'rp2040js';

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
rp.logger = { debug() {}, info() {}, warn(c, m) { fault(`${c}: ${m}`); }, error(c, m) { fault(`${c}: ${m}`); } };
rp.onBreak = (code) => fault(`core fault: breakpoint or undefined instruction (code ${code})`);
let lowest = Infinity;
for (const seg of image.segments) {
  const data = Buffer.from(seg.data, 'base64');
  rp.sram.set(data, seg.addr - 0x20000000);
  lowest = Math.min(lowest, seg.addr);
}
rp.core.SP = 0x20042000;
rp.core.PC = lowest & ~1;

const uart = rp.uart[0];
const rx = [];
uart.onByte = (b) => process.stdout.write(Buffer.from([b]));
process.stdin.on('data', (chunk) => { for (const b of chunk) rx.push(b); });
process.stdin.on('end', () => process.exit(0));

let riseAt = 0;
rp.gpio[MARKER_PIN].addListener((state, old) => {
  // GPIOPinState: Low 0, High 1; other states are the pin as an input (before the firmware drives it)
  if (state === 1 && old !== 1) riseAt = rp.core.cycles;
  else if (old === 1 && state !== 1) {
    process.stderr.write(JSON.stringify({ marker_high_cycles: rp.core.cycles - riseAt }) + '\n');
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
