"""The virtual (and real) Raspberry Pi Pico: C code generation, firmware build, emulated runs."""
