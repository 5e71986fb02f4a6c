#!/usr/bin/env bash
# Install a real Ollama server for sakura-ollama's tests, on a machine without a GPU and without network access
# beyond PyPI: Ollama 0.5.4 as Intel's ipex-llm build ships it inside PyPI's bigdl-core-cpp 2.6.0, with its SYCL
# backend library replaced by our own zero-device stub (tools/sycl_backend_stub.c) so that it runs on the CPU.
#
# Result: an executable `ollama` (a wrapper script) at <repository>/.cache/test-ollama/bin/ollama, which the tests
# find on their own. SAKURA_TEST_OLLAMA_DIR installs elsewhere; then point SAKURA_TEST_OLLAMA at <dir>/bin/ollama.
# Safe to run again: a finished install is kept (about 30 s the first time, mostly the 105 MB download).
#
# Needs: python3 with pip (PYTHON=... to choose another), gcc, 330 MB of disk while installing (64 MB kept).
# Linux x86-64 only.
set -euo pipefail

tools_dir=$(cd "$(dirname "$0")" && pwd)
repo_root=$(cd "$tools_dir/../../.." && pwd)
dest=${SAKURA_TEST_OLLAMA_DIR:-$repo_root/.cache/test-ollama}
python=${PYTHON:-python3}

wheels=(bigdl-core-cpp==2.6.0 intel-cmplr-lib-rt==2025.0.2 intel-openmp==2025.0.2)
stub_source="$tools_dir/sycl_backend_stub.c"
stamp="$dest/installed.txt"
want="${wheels[*]} stub=$(sha256sum "$stub_source" | cut -c1-16)"

if [ -x "$dest/bin/ollama" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    echo "test Ollama already installed: $dest/bin/ollama"
    exit 0
fi

command -v gcc >/dev/null || { echo "error: gcc is needed to build the SYCL stub (apt-get install gcc)" >&2; exit 1; }
case "$(uname -sm)" in
    "Linux x86_64") ;;
    *) echo "error: the test Ollama build is for Linux x86-64 only" >&2; exit 1 ;;
esac

echo "== installing ${wheels[*]} into $dest/prefix (no dependencies)"
rm -rf "$dest"
mkdir -p "$dest/bin" "$dest/lib"
"$python" -m pip install --quiet --disable-pip-version-check --no-deps --no-compile --ignore-installed \
    --prefix "$dest/prefix" "${wheels[@]}"

libs=$(find "$dest/prefix" -type d -path '*/bigdl/cpp/libs' | head -n 1)
[ -n "$libs" ] || { echo "error: bigdl/cpp/libs not found in the installed wheel" >&2; exit 1; }

echo "== collecting the Ollama server and the libraries it loads into $dest/lib"
# The Go server (ollama-lib) and the llama.cpp libraries it links; `ollama` in the wheel is a different launcher.
cp "$libs/ollama-lib" "$libs"/libollama_ggml.so "$libs"/libollama-ggml-base.so "$libs"/libollama-ggml-cpu.so \
    "$libs"/libollama_llama.so "$libs"/libollama_llava_shared.so "$libs"/libmllama.so "$libs"/libsample.so \
    "$dest/lib/"
# Intel's compiler runtime (libimf, libsvml, libirng, libintlc) and OpenMP (libiomp5), from the two other wheels.
for name in libimf.so libsvml.so libirng.so libintlc.so.5 libiomp5.so; do
    found=$(find "$dest/prefix" -name "$name" | head -n 1)
    [ -n "$found" ] || { echo "error: $name not found in the installed wheels" >&2; exit 1; }
    cp "$found" "$dest/lib/"
done
chmod +x "$dest/lib/ollama-lib"

echo "== building the zero-device SYCL backend in place of libollama-ggml-sycl.so"
gcc -shared -fPIC -O2 -Wall -Wextra -Werror -o "$dest/lib/libollama-ggml-sycl.so" "$stub_source"

cat > "$dest/bin/ollama" <<'WRAPPER'
#!/bin/sh
# Ollama 0.5.4 (Intel's build from bigdl-core-cpp) on the CPU, for sakura-ollama's tests.
lib_dir="$(cd "$(dirname "$(readlink -f "$0")")/../lib" && pwd)"
LD_LIBRARY_PATH="$lib_dir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export LD_LIBRARY_PATH
exec "$lib_dir/ollama-lib" "$@"
WRAPPER
chmod +x "$dest/bin/ollama"
rm -rf "$dest/prefix"

version=$("$dest/bin/ollama" --version 2>&1 | tail -n 1)
case "$version" in
    *0.5.4*) ;;
    *) echo "error: the installed server does not run: $version" >&2; exit 1 ;;
esac
echo "$want" > "$stamp"
echo "test Ollama installed: $dest/bin/ollama ($version)"
