#!/usr/bin/env bash
# Create .venv/ with Cove, its bundled model and its test tools; idempotent and offline-safe once built.
#
# llama-cpp-python builds from source. A default (GGML_NATIVE) build crashes on some CPUs on the
# first decode inside ggml's AMX matrix code, so we build with explicit instruction-set flags read
# from /proc/cpuinfo, and cache the wheel under a key made of the version and the flags, outside
# the repo (~/.cache/cove/wheels), so that a clean clone never rebuilds what is already built.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"

LLAMA_VERSION="0.3.36"
PY="${COVE_PYTHON:-}"
if [ -z "$PY" ]; then
  for c in python3.11 python3.12 python3; do
    if command -v "$c" >/dev/null 2>&1; then PY="$c"; break; fi
  done
fi

flags="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON"
cpu="$(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null || true)"
has() { [[ " $cpu " == *" $1 "* ]]; }
if has avx512f && has avx512bw && has avx512vl && has avx512dq; then
  flags+=" -DGGML_AVX512=ON"
  has avx512_vbmi && flags+=" -DGGML_AVX512_VBMI=ON"
  has avx512_vnni && flags+=" -DGGML_AVX512_VNNI=ON"
  has avx512_bf16 && flags+=" -DGGML_AVX512_BF16=ON"
fi
if ! has avx2; then flags="-DGGML_NATIVE=OFF"; fi
flags+=" -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_CURL=OFF"

key="$(printf '%s %s %s' "$LLAMA_VERSION" "$flags" "$("$PY" -c 'import sys;print(sys.version_info[:2])')" | sha256sum | cut -c1-16)"
# COVE_EXTRAS: optional extras installed beside the test tools (comma-separated; .ci/run sets
# the ones its tests need, e.g. "zim,ocr,train"); a user's plain setup installs none.
extras="test${COVE_EXTRAS:+,$COVE_EXTRAS}"
stamp_src="$(printf '%s' "$extras" | cat pyproject.toml scripts/bootstrap.sh - | sha256sum | cut -c1-16)"
stamp=".venv/.cove-setup-$key-$stamp_src"

if [ -f "$stamp" ] && [ -x .venv/bin/cove ]; then
  exit 0
fi

if [ ! -x .venv/bin/python ]; then
  echo "cove setup: creating .venv with $PY" >&2
  "$PY" -m venv .venv
fi

cache="${COVE_WHEEL_CACHE:-$HOME/.cache/cove/wheels}"
wheels="$cache/llama-cpp-python-$LLAMA_VERSION-$key"
sdist="$cache/llama_cpp_python-$LLAMA_VERSION.tar.gz"  # kept once downloaded (see train below)
if ! ls "$wheels"/llama_cpp_python-*.whl >/dev/null 2>&1; then
  echo "cove setup: building llama-cpp-python $LLAMA_VERSION (about 5 minutes, once; flags: $flags)" >&2
  mkdir -p "$wheels.tmp"
  CMAKE_ARGS="$flags" CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
    .venv/bin/pip wheel --no-deps --no-cache-dir --no-binary llama-cpp-python \
    -w "$wheels.tmp" "$( [ -f "$sdist" ] && echo "$sdist" || echo "llama-cpp-python==$LLAMA_VERSION")" >&2
  rm -rf "$wheels" && mv "$wheels.tmp" "$wheels"
fi

echo "cove setup: installing Cove into .venv" >&2
.venv/bin/pip install -q "$wheels"/llama_cpp_python-*.whl >&2
.venv/bin/pip install -q -e ".[$extras]" >&2
# cove train converts adapters with llama.cpp's convert_lora_to_gguf.py / convert_hf_to_gguf.py
# (and the conversion/ and gguf-py/ packages they import): they are in the llama-cpp-python
# sdist only, not in its wheel or the gguf package. The sdist is downloaded once into the
# cache; the scripts are copied into .venv/share/cove/llama.cpp (cove.features.train.convert).
if [[ ",$extras," == *",train,"* ]]; then
  if [ ! -f "$sdist" ]; then
    echo "cove setup: downloading the llama-cpp-python $LLAMA_VERSION sdist for its converters" >&2
    .venv/bin/pip download -q --no-deps --no-binary :all: -d "$cache" \
      "llama-cpp-python==$LLAMA_VERSION" >&2
  fi
  top="llama_cpp_python-$LLAMA_VERSION/vendor/llama.cpp"
  rm -rf .venv/share/cove/llama.cpp && mkdir -p .venv/share/cove/llama.cpp
  tar -xzf "$sdist" -C .venv/share/cove/llama.cpp --strip-components=3 \
    "$top/convert_hf_to_gguf.py" "$top/convert_lora_to_gguf.py" "$top/conversion" "$top/gguf-py" \
    "$top/LICENSE"
fi
rm -f .venv/.cove-setup-*
touch "$stamp"
