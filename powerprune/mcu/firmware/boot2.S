/* powerprune's flash second stage ("boot2") for the RP2040: the first 256 bytes of a flash image.
 *
 * What the bootrom does before we run (RP2040 datasheet 2.7/2.8, and the public bootrom source): it
 * reads flash bytes 0..255 with plain 03h serial reads, checks that the CRC-32 in bytes 252..255
 * matches bytes 0..251, copies the 256 bytes to the top of SRAM (0x20041f00) and jumps there with
 * lr = 0. The SSI is then still in the bootrom's byte-by-byte mode, so the XIP window at 0x10000000
 * cannot be read yet; setting it up is our whole job.
 *
 * Read mode: standard serial 03h ("Read Data": 8-bit command, 24-bit address, data, all on one
 * line, no dummy cycles). Every SPI NOR flash chip answers it, so this boot2 does not depend on the
 * board's flash chip; the price is speed: a cache line refill (8 bytes) takes 8 + 24 + 64 = 96 SCK
 * where a quad EBh continuous read needs 28. Quad modes need the chip's quad-enable bit set, which
 * is chip-specific (Winbond, Macronix, ISSI ... each do it differently), and we cannot test any of
 * them without hardware.
 *
 * SCK = clk_sys / PP_FLASH_CLKDIV, a -D from boot2.py (FLASH_CLKDIV: one place the CLI and tests
 * read too). At the 125 MHz our firmware runs at, a divider of 4 gives 31.25 MHz. 03h has no dummy
 * cycles, so chips rate it below their fast reads: the Pico's W25Q16JV allows 50 MHz, most current
 * chips 33 MHz or more, some old parts only 25 MHz (those need a divider of 6). While this code runs
 * clk_sys is still the ring oscillator (a few MHz), so SCK is slower still until main() raises the
 * clocks. The divider must be even (the SSI ignores bit 0).
 *
 * It runs from SRAM because the SSI cannot be reconfigured while instructions are fetched through
 * it; boot2.py links it at 0x20041f00, and all its addressing is PC-relative (literal pool) anyway. */

        .syntax unified
        .cpu cortex-m0plus
        .thumb

        .equ SSI_BASE,          0x18000000
        .equ SSI_CTRLR0,        0x00
        .equ SSI_CTRLR1,        0x04
        .equ SSI_SSIENR,        0x08
        .equ SSI_BAUDR,         0x14
        .equ SSI_SPI_CTRLR0,    0xf4        /* beyond a 5-bit STR offset: stored via a register */

#if !defined(PP_FLASH_CLKDIV) || (PP_FLASH_CLKDIV) < 2 || (PP_FLASH_CLKDIV) % 2 || (PP_FLASH_CLKDIV) > 254
#error "PP_FLASH_CLKDIV must be an even divider from 2 to 254 (it is loaded with one 8-bit MOVS)"
#endif

        /* CTRLR0: SPI_FRF (bits 22:21) = 0 standard 1-bit frames; DFS_32 (20:16) = 31, i.e. 32-bit
         * data frames; TMOD (9:8) = 3 "EEPROM read": send instruction + address, then only receive.
         * That is the mode XIP accesses need: each one becomes a command + address + read. */
        .equ CTRLR0_XIP,        (0 << 21) | (31 << 16) | (3 << 8)
        /* SPI_CTRLR0: XIP_CMD (31:24) = 0x03, the command XIP sends; WAIT_CYCLES (15:11) = 0, 03h
         * has none; INST_L (9:8) = 2, an 8-bit instruction; ADDR_L (5:2) = 6 nibbles = 24-bit
         * address; TRANS_TYPE (1:0) = 0, instruction and address in the standard 1-bit format. */
        .equ SPI_CTRLR0_XIP,    (0x03 << 24) | (0 << 11) | (2 << 8) | (6 << 2) | 0

        .equ PPB_VTOR,          0xe000ed08
        .equ IMAGE_VECTORS,     0x10000100  /* the image's vector table, right after these 256 bytes */

        .section .text.pp_boot2, "ax"
        .global pp_boot2
        .type pp_boot2, %function
        .thumb_func
pp_boot2:
        ldr     r3, =SSI_BASE
        movs    r0, #0
        str     r0, [r3, #SSI_SSIENR]       /* the SSI ignores configuration while enabled */
        movs    r0, #PP_FLASH_CLKDIV
        str     r0, [r3, #SSI_BAUDR]
        ldr     r0, =CTRLR0_XIP
        str     r0, [r3, #SSI_CTRLR0]
        movs    r0, #0
        str     r0, [r3, #SSI_CTRLR1]       /* NDF = 0: one frame per transfer; XIP sizes its own */
        ldr     r0, =SPI_CTRLR0_XIP
        movs    r1, #SSI_SPI_CTRLR0
        str     r0, [r3, r1]
        movs    r0, #1
        str     r0, [r3, #SSI_SSIENR]       /* from here on, reads of 0x10000000+ reach the flash */

        /* Enter the image the way a reset would, but through its own vector table: VTOR first (so
         * SysTick and faults find our handlers, not the bootrom's), then its stack and reset
         * handler. We never return to the bootrom (it passes lr = 0 and expects us not to). */
        ldr     r0, =IMAGE_VECTORS
        ldr     r1, =PPB_VTOR
        str     r0, [r1]
        ldmia   r0!, {r1, r2}               /* r1 = initial stack pointer, r2 = reset handler */
        msr     msp, r1
        bx      r2

        .ltorg
