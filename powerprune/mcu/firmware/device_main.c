/* Firmware for a physical Raspberry Pi Pico (and for the virtual one, bridged to a pseudo-terminal).
 *
 * Clocks: 12 MHz crystal -> PLL_SYS (VCO 1500 MHz / 6 / 2) = 125 MHz for clk_sys and clk_peri.
 * UART0 on GP0 (TX) / GP1 (RX), 115200 8N1. GP2 is high while an inference runs, so a power analyzer
 * can integrate energy between its edges. SysTick counts processor cycles (24-bit, overflows counted
 * in its interrupt).
 *
 * Protocol (little endian; CRC-16/CCITT-FALSE over everything between sync byte and CRC):
 *   request  A5 | cmd u8 | len u16 | payload | crc u16    cmd 1 = infer (payload: input tensor),
 *                                                        cmd 2 = info (empty payload)
 *   response 5A | status u8 | len u16 | payload | crc u16  status 0 = ok; infer payload: output tensor,
 *            cycles u32; info payload: input size u16, output size u16. Errors: 1 bad crc,
 *            2 bad length, 3 unknown command, 4 frame timeout (100 ms), each with an empty payload.
 * A damaged or truncated frame gets an error response and the firmware resynchronises on the next
 * sync byte: it never hangs waiting for bytes that will not come. */
#include <stdint.h>

#include "model.h"
#include "rp2040_regs.h"

#define SYNC_REQUEST 0xA5
#define SYNC_RESPONSE 0x5A
#define CMD_INFER 1
#define CMD_INFO 2
#define ST_OK 0
#define ST_BAD_CRC 1
#define ST_BAD_LENGTH 2
#define ST_BAD_COMMAND 3
#define ST_TIMEOUT 4
#define CLK_HZ 125000000u
#define FRAME_TIMEOUT_CYCLES (CLK_HZ / 10u)
#define MARKER_PIN 2u

int8_t pp_input[PP_INPUT_SIZE] __attribute__((aligned(4)));
int8_t pp_output[PP_OUTPUT_SIZE] __attribute__((aligned(4)));
static volatile uint32_t systick_wraps;

void pp_systick_handler(void) { ++systick_wraps; }
#ifdef PP_WITH_PICO_SDK
void isr_systick(void) { pp_systick_handler(); }  /* the SDK's vector table name */
#endif

static uint32_t cycles_now(void) {
    uint32_t w, v;
    do {
        w = systick_wraps;
        v = REG(SYST_CVR);
    } while (w != systick_wraps);
    return (w << 24) + (0xffffffu - v);
}

static void unreset(uint32_t bits) {
    REG(RESETS_RESET + ATOMIC_CLR) = bits;
    while ((REG(RESETS_DONE) & bits) != bits) {}
}

static void clocks_init(void) {
    REG(XOSC_STARTUP) = 47;                       /* ~1 ms at 12 MHz, in units of 256 cycles */
    REG(XOSC_CTRL) = (0xfabu << 12) | 0xaa0u;     /* enable, 1-15 MHz range */
    while (!(REG(XOSC_STATUS) & (1u << 31))) {}
    REG(CLK_REF_CTRL) = 2;                        /* clk_ref <- xosc */
    while (!(REG(CLK_REF_SELECTED) & (1u << 2))) {}
    REG(CLK_SYS_CTRL) = 0;                        /* clk_sys <- clk_ref while the PLL starts */
    while (!(REG(CLK_SYS_SELECTED) & 1u)) {}
    REG(RESETS_RESET) |= RESET_PLL_SYS;
    unreset(RESET_PLL_SYS);
    REG(PLL_CS) = 1;                              /* refdiv 1 */
    REG(PLL_FBDIV) = 125;                         /* VCO = 12 MHz * 125 = 1500 MHz */
    REG(PLL_PWR) &= ~((1u << 0) | (1u << 5));     /* power up the PLL and its VCO */
    while (!(REG(PLL_CS) & (1u << 31))) {}
    REG(PLL_PRIM) = (6u << 16) | (2u << 12);      /* 1500 / 6 / 2 = 125 MHz */
    REG(PLL_PWR) &= ~(1u << 3);                   /* post dividers on */
    REG(CLK_SYS_CTRL) = (0u << 5);                /* aux source: pll_sys */
    REG(CLK_SYS_CTRL) = (0u << 5) | 1u;           /* clk_sys <- aux */
    while (!(REG(CLK_SYS_SELECTED) & (1u << 1))) {}
    REG(CLK_PERI_CTRL) = (1u << 11);              /* clk_peri <- clk_sys, enabled */
}

static void io_init(void) {
    unreset(RESET_IO_BANK0 | RESET_PADS_BANK0 | RESET_UART0);
    REG(UART_IBRD) = 67;                          /* 125 MHz / (16 * 115200) = 67.817 */
    REG(UART_FBRD) = 52;                          /* 0.817 * 64 */
    REG(UART_LCR_H) = (3u << 5) | (1u << 4);      /* 8 bits, FIFOs on, no parity, 1 stop */
    REG(UART_CR) = (1u << 0) | (1u << 8) | (1u << 9);
    REG(IO_BANK0_GPIO_CTRL(0)) = FUNCSEL_UART;
    REG(IO_BANK0_GPIO_CTRL(1)) = FUNCSEL_UART;
    REG(IO_BANK0_GPIO_CTRL(MARKER_PIN)) = FUNCSEL_SIO;
    REG(SIO_GPIO_OUT_CLR) = 1u << MARKER_PIN;
    REG(SIO_GPIO_OE_SET) = 1u << MARKER_PIN;
    REG(SYST_RVR) = 0xffffffu;
    REG(SYST_CVR) = 0;
    REG(SYST_CSR) = 7u;                           /* processor clock, interrupt, enable */
}

static void put(uint8_t b) {
    while (REG(UART_FR) & UART_FR_TXFF) {}
    REG(UART_DR) = b;
}

/* next byte, or -1 when none arrives within the frame timeout */
static int get_timeout(uint32_t start) {
    while (REG(UART_FR) & UART_FR_RXFE) {
        if (cycles_now() - start > FRAME_TIMEOUT_CYCLES) return -1;
    }
    return (int)(REG(UART_DR) & 0xffu);
}

static uint16_t crc16(uint16_t crc, uint8_t b) {
    crc ^= (uint16_t)(b << 8);
    for (int i = 0; i < 8; ++i) crc = (crc & 0x8000u) ? (uint16_t)((crc << 1) ^ 0x1021u) : (uint16_t)(crc << 1);
    return crc;
}

static void respond(uint8_t status, const uint8_t *payload, uint16_t len, const uint8_t *tail, uint16_t tail_len) {
    uint16_t crc = 0xffff;
    const uint16_t total = (uint16_t)(len + tail_len);
    const uint8_t head[3] = {status, (uint8_t)(total & 0xff), (uint8_t)(total >> 8)};
    put(SYNC_RESPONSE);
    for (int i = 0; i < 3; ++i) { put(head[i]); crc = crc16(crc, head[i]); }
    for (uint16_t i = 0; i < len; ++i) { put(payload[i]); crc = crc16(crc, payload[i]); }
    for (uint16_t i = 0; i < tail_len; ++i) { put(tail[i]); crc = crc16(crc, tail[i]); }
    put((uint8_t)(crc & 0xff));
    put((uint8_t)(crc >> 8));
}

static void serve_frame(void) {
    const uint32_t start = cycles_now();
    uint8_t head[3];
    uint16_t crc = 0xffff;
    for (int i = 0; i < 3; ++i) {
        int b = get_timeout(start);
        if (b < 0) { respond(ST_TIMEOUT, 0, 0, 0, 0); return; }
        head[i] = (uint8_t)b;
        crc = crc16(crc, head[i]);
    }
    const uint8_t cmd = head[0];
    const uint16_t len = (uint16_t)(head[1] | (head[2] << 8));
    /* never try to swallow a payload of unknown size: answer at once and resynchronise */
    if (cmd != CMD_INFER && cmd != CMD_INFO) { respond(ST_BAD_COMMAND, 0, 0, 0, 0); return; }
    if (len != (cmd == CMD_INFER ? PP_INPUT_SIZE : 0)) { respond(ST_BAD_LENGTH, 0, 0, 0, 0); return; }
    for (uint16_t i = 0; i < len; ++i) {
        int b = get_timeout(start);
        if (b < 0) { respond(ST_TIMEOUT, 0, 0, 0, 0); return; }
        ((uint8_t *)pp_input)[i] = (uint8_t)b;
        crc = crc16(crc, (uint8_t)b);
    }
    int lo = get_timeout(start), hi = lo < 0 ? -1 : get_timeout(start);
    if (hi < 0) { respond(ST_TIMEOUT, 0, 0, 0, 0); return; }
    if ((uint16_t)(lo | (hi << 8)) != crc) { respond(ST_BAD_CRC, 0, 0, 0, 0); return; }
    if (cmd == CMD_INFO) {
        const uint8_t info[4] = {PP_INPUT_SIZE & 0xff, PP_INPUT_SIZE >> 8, PP_OUTPUT_SIZE & 0xff, PP_OUTPUT_SIZE >> 8};
        respond(ST_OK, info, 4, 0, 0);
        return;
    }
    REG(SIO_GPIO_OUT_SET) = 1u << MARKER_PIN;
    const uint32_t t0 = cycles_now();
    pp_model_run(pp_input, pp_output);
    const uint32_t cycles = cycles_now() - t0;
    REG(SIO_GPIO_OUT_CLR) = 1u << MARKER_PIN;
    const uint8_t tail[4] = {(uint8_t)cycles, (uint8_t)(cycles >> 8), (uint8_t)(cycles >> 16), (uint8_t)(cycles >> 24)};
    respond(ST_OK, (const uint8_t *)pp_output, PP_OUTPUT_SIZE, tail, 4);
}

int main(void) {
#ifndef PP_WITH_PICO_SDK
    clocks_init();  /* the SDK's runtime has already set 125 MHz */
#endif
    io_init();
    for (;;) {
        while (REG(UART_FR) & UART_FR_RXFE) {}
        if ((REG(UART_DR) & 0xffu) == SYNC_REQUEST) serve_frame();
    }
}
