// Virtual Raspberry Pi Pico for powerprune: loads a firmware image into rp2040js, feeds inputs,
// collects outputs and Cortex-M0+ cycle counts, and models the XIP flash cache that rp2040js lacks.
//
// Job (JSON on stdin):
//   { segments: [{addr, data(base64)}], entry, sp, input_addr, output_addr, output_size,
//     inputs: [base64...], cycle_budget, xip: {enabled, miss_cycles},
//     probes: [{layer, addr, size}] (optional: bytes to copy when layer `layer` (0-based) has finished) }
// Result (JSON on stdout):
//   { results: [{cycles, layer_cycles: [...], instructions, output(base64), xip_hits, xip_misses,
//                probes: [base64...]}],
//     boot_cycles, wall_seconds, instructions_total }
// Firmware markers are BKPT instructions: 1 = ready for input, 2 = layer done, 3 = inference done,
// 0x7f = fault.
import { readFileSync, writeSync } from 'node:fs';
import { RP2040 } from 'rp2040js';
import { FLASH_BASE, XipCache, hookXipReads } from './xip.mjs';

const SRAM_BASE = 0x20000000;
const MARK = { READY: 1, LAYER: 2, DONE: 3, FAULT: 0x7f };

// Results go out with a synchronous write and the process exits at once: Node 20 was seen to hang
// for good while winding down on its own (main thread in NodePlatform::DrainTasks, workers idle)
// after the result was written, leaving the caller waiting for an exit that never came.
function finish(obj, code) {
  writeSync(1, JSON.stringify(obj) + '\n');
  process.exit(code);
}

function fail(message) {
  finish({ error: message }, 3);
}

const job = JSON.parse(readFileSync(0, 'utf8'));
const rp = new RP2040();
// rp2040js reports bad accesses through its logger; for our firmware any of them is a bug (a stack
// overflow writes below SRAM, a wild pointer reads unmapped memory), so stop with the first one.
const quiet = () => {};
rp.logger = {
  debug: quiet,
  info: quiet,
  warn: (component, message) => fail(`${component}: ${message} (PC=0x${rp.core.PC.toString(16)})`),
  error: (component, message) => fail(`${component}: ${message} (PC=0x${rp.core.PC.toString(16)})`),
};
rp.flash.fill(0xff);
for (const seg of job.segments) {
  const data = Buffer.from(seg.data, 'base64');
  if (seg.addr >= FLASH_BASE && seg.addr + data.length <= FLASH_BASE + rp.flash.length) {
    rp.flash.set(data, seg.addr - FLASH_BASE);
  } else if (seg.addr >= SRAM_BASE && seg.addr + data.length <= SRAM_BASE + rp.sram.length) {
    rp.sram.set(data, seg.addr - SRAM_BASE);
  } else {
    fail(`segment at 0x${seg.addr.toString(16)} (${data.length} bytes) is outside flash and SRAM`);
  }
}
const core = rp.core;
core.SP = job.sp;
core.PC = job.entry & ~1;
core.cycles = 0;

const cache = new XipCache(core, () => job.xip.miss_cycles);
if (job.xip.enabled) hookXipReads(rp, cache);

const probes_wanted = job.probes || [];
for (const p of probes_wanted) {
  if (p.addr < SRAM_BASE || p.addr + p.size > SRAM_BASE + rp.sram.length) fail(`probe at 0x${p.addr.toString(16)} is outside SRAM`);
}

let mark = -1;
rp.onBreak = (code) => { mark = code; };
let instructions = 0;
const budget = job.cycle_budget;

function runToMark(limit) {
  mark = -1;
  while (mark < 0) {
    core.executeInstruction();
    instructions++;
    if (core.cycles > limit) {
      fail(`cycle budget exceeded: ${budget} cycles without reaching the next marker ` +
           `(PC=0x${core.PC.toString(16)}); the firmware is stuck or the model is too slow`);
    }
  }
  if (mark === MARK.FAULT) fail(`firmware fault (PC=0x${core.PC.toString(16)})`);
  return mark;
}

const started = process.hrtime.bigint();
if (runToMark(budget) !== MARK.READY) fail('firmware did not reach the ready marker after boot');
const bootCycles = core.cycles;
const results = [];
for (const input of job.inputs) {
  rp.sram.set(Buffer.from(input, 'base64'), job.input_addr - SRAM_BASE);
  const t0 = core.cycles;
  const i0 = instructions;
  const h0 = cache.hits;
  const m0 = cache.misses;
  const layers = [];
  const probes = [];
  let last = t0;
  for (;;) {
    const code = runToMark(t0 + budget);
    if (code === MARK.LAYER) {
      layers.push(core.cycles - last);
      last = core.cycles;
      for (const p of probes_wanted) {
        if (p.layer === layers.length - 1) {
          const at = p.addr - SRAM_BASE;
          probes.push(Buffer.from(rp.sram.subarray(at, at + p.size)).toString('base64'));
        }
      }
      continue;
    }
    if (code === MARK.DONE) break;
    fail(`unexpected marker ${code} during inference`);
  }
  const off = job.output_addr - SRAM_BASE;
  results.push({
    cycles: core.cycles - t0,
    layer_cycles: layers,
    instructions: instructions - i0,
    output: Buffer.from(rp.sram.subarray(off, off + job.output_size)).toString('base64'),
    xip_hits: cache.hits - h0,
    xip_misses: cache.misses - m0,
    probes,
  });
  if (runToMark(core.cycles + budget) !== MARK.READY) fail('firmware did not return to the ready marker');
}
const wall = Number(process.hrtime.bigint() - started) / 1e9;
finish({ results, boot_cycles: bootCycles, wall_seconds: wall, instructions_total: instructions }, 0);
