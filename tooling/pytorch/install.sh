#!/usr/bin/env bash
# Installs the PyTorch baseline that `pnpm bench` compares deepen's engines with: Debian's
# python3-torch (PyTorch 1.13 on Debian 12, CPU only, OpenMP threads). Nothing else in deepen
# needs Python or torch; the benchmark skips the comparison when torch is missing.
set -euo pipefail
if /usr/bin/python3 -c 'import torch' 2>/dev/null; then
  echo "pytorch baseline: $(/usr/bin/python3 -c 'import torch; print("torch", torch.__version__)') is already installed"
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "pytorch baseline: this script uses Debian's apt-get; elsewhere install PyTorch for python3 yourself (pip install torch)" >&2
  exit 1
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq python3-torch
/usr/bin/python3 -c 'import torch; print("pytorch baseline: torch", torch.__version__, "installed")'
