// The RP2040's flash path, which rp2040js lacks (it reads flash like SRAM): our XIP cache model,
// shared by the profiling runner (run.mjs, a fixed miss penalty) and the virtual board (device.mjs,
// the penalty of the serial read the firmware's boot2 set the SSI up for).

export const FLASH_BASE = 0x10000000;
export const XIP_END = 0x14000000;
const SSI_ADDRESS = 0x18000000;

// RP2040 XIP cache: 16 KB, 2-way set associative, 8-byte lines -> 1024 sets. Aliases of flash:
// 0x10.. cached+allocate, 0x11.. cached no-allocate, 0x12../0x13.. uncached.
// missCost(addr) -> clk_sys cycles one line refill costs; they are added to the core's counter.
export class XipCache {
  constructor(core, missCost) {
    this.core = core;
    this.missCost = missCost;
    this.tags = new Int32Array(2048).fill(-1);
    this.nextVictim = new Uint8Array(1024);
    this.hits = 0;
    this.misses = 0;
  }

  access(addr) {
    const alias = (addr >>> 24) & 3;
    const line = (addr & 0xffffff) >>> 3;
    const set = line & 1023;
    const tag = line >>> 10;
    if (alias < 2) {
      const base = set * 2;
      if (this.tags[base] === tag) { this.hits++; this.nextVictim[set] = 1; return; }
      if (this.tags[base + 1] === tag) { this.hits++; this.nextVictim[set] = 0; return; }
      if (alias === 0) {
        const way = this.nextVictim[set];
        this.tags[base + way] = tag;
        this.nextVictim[set] = way ^ 1;
      }
    }
    this.misses++;
    this.core.cycles += this.missCost(addr);
  }
}

// Every read of the XIP window goes through the cache model first.
export function hookXipReads(rp, cache) {
  for (const name of ['readUint32', 'readUint16', 'readUint8']) {
    const original = rp[name].bind(rp);
    rp[name] = (addr) => {
      if (addr >= FLASH_BASE && addr < XIP_END) cache.access(addr >>> 0);
      return original(addr);
    };
  }
}

export function ssiOf(rp) {
  return rp.findPeripheral(SSI_ADDRESS);
}

// What one XIP line refill costs with the SSI as it is configured now, or {error} when XIP cannot
// work in this configuration. The virtual flash chip answers what every SPI NOR chip answers after
// power-up: serial (1-bit) 03h Read Data without dummy cycles and 0Bh Fast Read with 8; quad/dual
// modes need a chip-specific quad-enable step that we do not emulate, so they are refused rather
// than silently served. The cost counts SCK periods of one transfer (instruction + address + dummy
// + the 8-byte line, the same one-transfer-per-line assumption as the profiler's penalty) times
// the SSI's clock divider (SCK = clk_sys / BAUDR); SSI handshake cycles we do not know are not
// added, so it is a lower bound.
export function serialReadCost(ssi) {
  const ctrlr0 = ssi.crtlr0 >>> 0;
  const spi = ssi.spictlr0 >>> 0;
  const tmod = (ctrlr0 >>> 8) & 3;
  const dfs32 = (ctrlr0 >>> 16) & 31;
  const frf = (ctrlr0 >>> 21) & 3;
  const trans = spi & 3;
  const addrBits = ((spi >>> 2) & 15) * 4;
  const instBits = [0, 4, 8, 16][(spi >>> 8) & 3];
  const wait = (spi >>> 11) & 31;
  const cmd = spi >>> 24;
  const div = ssi.baudr & 0xfffe;  // the SSI ignores bit 0
  const regs = `CTRLR0=0x${ctrlr0.toString(16)} SPI_CTRLR0=0x${spi.toString(16)} BAUDR=${ssi.baudr}`;
  const refuse = (why) => ({ error: `XIP read while the SSI is not set up for it (${why}; ${regs}): ` +
                                    'the flash second stage (boot2) did not configure execute-in-place' });
  if (!(ssi.ssienr & 1)) return refuse('SSI disabled');
  if (tmod !== 3) return refuse('TMOD is not EEPROM read');
  if (dfs32 !== 31) return refuse('data frames are not 32 bits');
  if (div === 0) return refuse('BAUDR is 0, SCK stopped');
  if (frf !== 0 || trans !== 0 || instBits !== 8 || addrBits !== 24 ||
      !((cmd === 0x03 && wait === 0) || (cmd === 0x0b && wait === 8))) {
    return refuse('the virtual flash chip answers only serial 03h and 0Bh reads with a 24-bit address');
  }
  const sck = instBits + addrBits + wait + 64;
  return { cycles: div * sck, command: cmd, sck_divider: div, sck_per_line: sck };
}
