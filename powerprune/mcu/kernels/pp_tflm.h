/* What every kernel written after TFLM's reference kernels shares: TFLM's 4-D Offset(). */
#ifndef PP_TFLM_H
#define PP_TFLM_H

#include <stdint.h>

typedef struct { int32_t d[4]; } shape4;

/* TFLM's Offset(shape, i0, i1, i2, i3), dims read from the shape each time */
static inline int32_t offset4(const shape4 *s, int32_t i0, int32_t i1, int32_t i2, int32_t i3) {
    return ((i0 * s->d[1] + i1) * s->d[2] + i2) * s->d[3] + i3;
}

#endif
