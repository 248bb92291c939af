/* Inference loop for the virtual Pico: wait for an input, run the model, report, repeat. */
#include "model.h"
#include "pp_platform.h"

pp_io_t pp_input[PP_INPUT_SIZE] __attribute__((aligned(4)));    /* int8_t, or float in a float32 model */
pp_io_t pp_output[PP_OUTPUT_SIZE] __attribute__((aligned(4)));

int main(void) {
    for (;;) {
        PP_MARK(PP_MARK_READY);
        pp_model_run(pp_input, pp_output);
        PP_MARK(PP_MARK_DONE);
    }
}
