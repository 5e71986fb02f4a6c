/*
 * A SYCL backend with no devices for Intel's Ollama 0.9.3 build (PyPI bigdl-core-cpp 2.7.0b20260110), on a machine
 * without an Intel GPU, as the test suite of sakura-ollama runs it.
 *
 * That build's server (ollama-lib) links libggml-sycl.so, which needs the oneAPI math and DNN libraries and a GPU.
 * This library takes its place. It exports the three symbols the server imports from it (found with
 * `nm -D --undefined-only ollama-lib`): the device count is zero, so the server never asks for a device's backend
 * or buffer type, and ggml runs everything on its CPU backends. The build's libllama.so still links Intel's SYCL
 * runtime (libsycl.so.8, from PyPI's intel-sycl-rt), which loads without a device and is not called on the CPU.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

/* int ggml_backend_sycl_get_device_count(void) */
int ggml_backend_sycl_get_device_count(void) { return 0; }

/* ggml_backend_t ggml_backend_sycl_init(int device): no device exists. */
void *ggml_backend_sycl_init(int device) {
    (void)device;
    return NULL;
}

/* ggml_backend_buffer_type_t ggml_backend_sycl_buffer_type(int device): asked for existing devices only. */
void *ggml_backend_sycl_buffer_type(int device) {
    fprintf(stderr, "sycl stub: buffer type requested for device %d of a backend with no devices\n", device);
    abort();
}
