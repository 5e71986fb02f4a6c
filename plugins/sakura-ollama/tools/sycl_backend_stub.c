/*
 * A SYCL backend with no devices, for running Intel's Ollama build (PyPI bigdl-core-cpp) on a machine without an
 * Intel GPU, as the test suite of sakura-ollama does.
 *
 * That build links its ggml libraries against libollama-ggml-sycl.so, whose backend aborts at start when no Level
 * Zero/OpenCL GPU is present. This library takes its place: it exports the four symbols the other libraries import
 * from it (found with `nm -D --undefined-only`), registers a backend named "SYCL" that reports zero devices, so
 * ggml schedules everything on its CPU backend, and never needs the oneAPI runtime.
 *
 * The registration record mirrors ggml's `struct ggml_backend_reg` of that build, read from the disassembly of
 * ggml_backend_reg_name / _dev_count / _dev_get / _get_proc_address in libollama-ggml-base.so: an int API version,
 * then the four interface function pointers at offsets 8, 16, 24 and 32, then a context pointer.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

struct zero_device_backend_interface {
    const char *(*get_name)(void *reg);
    size_t (*get_device_count)(void *reg);
    void *(*get_device)(void *reg, size_t index);
    void *(*get_proc_address)(void *reg, const char *name);
};

struct zero_device_backend_registration {
    int api_version;
    struct zero_device_backend_interface iface;
    void *context;
};

static const char *backend_name(void *reg) {
    (void)reg;
    return "SYCL";
}

static size_t backend_device_count(void *reg) {
    (void)reg;
    return 0;
}

static void *backend_device(void *reg, size_t index) {
    (void)reg;
    fprintf(stderr, "sycl stub: device %zu requested from a backend with no devices\n", index);
    abort();
}

static void *backend_proc_address(void *reg, const char *name) {
    (void)reg;
    (void)name;
    return NULL;
}

static struct zero_device_backend_registration registration = {
    1,
    {backend_name, backend_device_count, backend_device, backend_proc_address},
    NULL,
};

/* ggml_backend_reg_t ggml_backend_sycl_reg(void): imported by libollama_ggml.so's backend registry. */
void *ggml_backend_sycl_reg(void) { return &registration; }

/* ggml_backend_t ggml_backend_sycl_init(int device): imported by libollama_llava_shared.so; no device exists. */
void *ggml_backend_sycl_init(int device) {
    (void)device;
    return NULL;
}

/* Imported by libollama_llama.so; called for GPU devices only, of which there are none. */
const char *ggml_backend_sycl_get_device_name(int device) {
    (void)device;
    return "none";
}

/*
 * void ggml_format_convert_to_xpu(const void *, void *, size_t, int): a C++ function of that build, imported by
 * libollama_llama.so under its mangled name; it converts weights for GPU devices only.
 */
void _Z26ggml_format_convert_to_xpuPKvPvmi(const void *src, void *dst, size_t size, int type) {
    (void)src;
    (void)dst;
    (void)size;
    (void)type;
    fprintf(stderr, "sycl stub: weight conversion requested for a device that does not exist\n");
    abort();
}
