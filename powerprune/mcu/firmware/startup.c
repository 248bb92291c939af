/* Bare-metal RP2040 start-up: vector table, .data copy, .bss clear, then main().
 * No pico-sdk: the emulator starts at the reset handler; the real-board image (powerprune deploy)
 * adds the second-stage bootloader in .boot2. */
#include <stddef.h>
#include <stdint.h>

#include "pp_platform.h"

extern uint32_t __data_load__, __data_start__, __data_end__, __bss_start__, __bss_end__, __StackTop;
int main(void);

void pp_reset_handler(void) {
    uint32_t *src = &__data_load__;
    for (uint32_t *dst = &__data_start__; dst < &__data_end__;) *dst++ = *src++;
    for (uint32_t *dst = &__bss_start__; dst < &__bss_end__;) *dst++ = 0;
    main();
    for (;;) PP_MARK(PP_MARK_FAULT);
}

void pp_fault_handler(void) {
    for (;;) PP_MARK(PP_MARK_FAULT);
}

static void pp_ignore(void) {}
void pp_systick_handler(void) __attribute__((weak, alias("pp_ignore")));

__attribute__((section(".vectors"), used)) void (*const pp_vectors[16])(void) = {
    (void (*)(void))&__StackTop,
    pp_reset_handler,
    pp_fault_handler, /* NMI */
    pp_fault_handler, /* HardFault */
    [15] = pp_systick_handler,
};

/* Entry of a RAM-only UF2 image: the bootrom jumps to the lowest loaded address with its own stack
 * and vector table, so point VTOR at ours, take our stack and go to the reset handler. */
__attribute__((naked, section(".entry"), used)) void pp_entry(void) {
    __asm__ volatile(
        "ldr r0, =pp_vectors\n"
        "ldr r1, =0xe000ed08\n"
        "str r0, [r1]\n"
        "ldr r1, [r0]\n"
        "mov sp, r1\n"
        "ldr r1, [r0, #4]\n"
        "bx r1\n"
        ".ltorg\n");
}

/* gcc may call these for struct copies and array initialisation; there is no libc. The attribute
 * stops gcc from turning the loops back into calls to themselves. */
#define PP_NO_LIBCALL __attribute__((optimize("no-tree-loop-distribute-patterns")))

PP_NO_LIBCALL void *memcpy(void *dst, const void *src, size_t n) {
    uint8_t *d = dst;
    const uint8_t *s = src;
    while (n--) *d++ = *s++;
    return dst;
}

PP_NO_LIBCALL void *memset(void *dst, int c, size_t n) {
    uint8_t *d = dst;
    while (n--) *d++ = (uint8_t)c;
    return dst;
}

/* newlib's libm (expf in a float32 SOFTMAX) reports range errors in errno, which lives in its libc; we
 * link no libc, so this is errno. Nothing reads it. */
int *__errno(void) {
    static int value;
    return &value;
}
