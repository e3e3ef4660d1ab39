#!/usr/bin/env bash
# Set up a fresh machine: Fashion-MNIST from Debian (when possible) and a virtualenv with gauguin.
set -euo pipefail
PYTHON=${1:-python3}
VENV=${2:-.venv}

if [ ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    echo "setup: installing Debian's dataset-fashion-mnist"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist) \
      || echo "setup: could not install dataset-fashion-mnist; gauguin will try to download Fashion-MNIST"
  else
    echo "setup: Fashion-MNIST is not in /usr/share/datasets; run 'sudo apt-get install dataset-fashion-mnist'" \
         "or let gauguin download it on first use"
  fi
fi

if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  echo "setup: installing Debian's chromium (the paint page's browser test)"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) \
    || echo "setup: could not install chromium; the browser test of the paint page will be skipped"
fi

if ! command -v ip >/dev/null && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  echo "setup: installing Debian's iproute2 (the multi-host test's network namespaces)"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iproute2) \
    || echo "setup: could not install iproute2; the multi-host test will fail in CI"
fi

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q -e ".[dev]"
echo "setup: done ($("$VENV/bin/python" -c 'import torch; print("torch", torch.__version__)'))"
