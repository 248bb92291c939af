/* Markers the generated model emits around inferences and between layers.
 *
 * On the virtual Pico (PP_TARGET_EMU) a marker is a BKPT instruction with a code; the runner catches
 * it, records the cycle counter and resumes, so markers cost one instruction. On a real board
 * (PP_TARGET_DEVICE) a BKPT without a debugger would fault, so markers compile to nothing there and
 * the device firmware reports timing over UART and on its marker pin instead. */
#ifndef PP_PLATFORM_H
#define PP_PLATFORM_H

#define PP_MARK_READY 1   /* waiting for an input: the runner fills pp_input, or stops */
#define PP_MARK_LAYER 2   /* a layer finished */
#define PP_MARK_DONE 3    /* pp_output holds the result */
#define PP_MARK_FAULT 0x7f

#define PP_STR2(x) #x
#define PP_STR(x) PP_STR2(x)
#ifdef PP_TARGET_EMU
#define PP_MARK(code) __asm__ volatile("bkpt " PP_STR(code) ::: "memory")
#else
#define PP_MARK(code) ((void)0)
#endif

#endif
