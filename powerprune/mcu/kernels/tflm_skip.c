/* Kernel set "tflm-skip", int8: the paper's "adapted TFLM".
 *
 * Widmann et al. kept TFLM's reference kernels and the model file as they were and added one test:
 * a multiplication by a zero weight is skipped at run time. These are tflm_ref.c's loops
 * (pp_tflm_loops.h) compiled with that test, nothing else: the same loop nest, bounds checks and offset arithmetic, the weight loaded
 * first and, when it is zero, neither the input load nor the multiply-accumulate. So a zero weight
 * still costs its loop iteration, its offset computation, a load and a branch; what unstructured
 * pruning saves here is exactly the multiply-accumulate. The result is bit-identical to tflm-ref (a
 * zero weight adds nothing to an integer sum). Pooling has no weights: the generator gives pools the
 * tflm-ref kernels under this set. */
#define PP_TFLM_FN(op) op##_tflmskip
#define PP_SKIP_ZERO_WEIGHTS 1
#include "pp_tflm_loops.h"
