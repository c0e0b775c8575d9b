#!/usr/bin/env bash
# Installs everything deepen needs on a fresh machine: a recent enough Node check, pnpm at the
# version pinned in package.json, the Debian packages the build needs, and the workspace's
# dependencies from the committed lockfile. Safe to run again: it skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the build needs: a compiler and Python for node-gyp builds, OpenBLAS for
# deepen's native CPU engine (its matrix products), and the DejaVu fonts that report charts
# are rendered to PNG with, and strace for the test that checks the fsync order of a checkpoint
# save. List any addition here.
APT_PACKAGES=(python3 make g++ libopenblas-dev fonts-dejavu-core strace)

node_version=$(node -p 'process.versions.node' 2>/dev/null || echo 0)
if ! node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=19)?0:1)'; then
  echo "setup: Node.js >= 20.19 is required (found ${node_version})" >&2
  exit 1
fi

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" -eq 0 ]; then
    echo "setup: installing ${missing[*]} with apt-get"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
  else
    echo "setup: please install these system packages first: ${missing[*]}" >&2
    exit 1
  fi
fi

pnpm_wanted=$(node -p 'require("./package.json").packageManager.split("@")[1]')
if [ "$(pnpm --version 2>/dev/null || true)" != "$pnpm_wanted" ]; then
  echo "setup: installing pnpm ${pnpm_wanted}"
  npm install --global --silent "pnpm@${pnpm_wanted}"
fi

# better-sqlite3 (the finetune service's storage) compiles from source because its prebuilt
# binaries are downloaded from outside the npm registry. node-gyp would download the Node
# headers too; pointing it at the headers installed with Node itself avoids that.
if [ -z "${npm_config_nodedir:-}" ]; then
  node_prefix=$(node -p 'require("path").resolve(process.execPath, "..", "..")')
  if [ -f "${node_prefix}/include/node/common.gypi" ]; then
    export npm_config_nodedir="${node_prefix}"
  else
    echo "setup: no Node.js headers under ${node_prefix}/include/node; node-gyp will try to download them" >&2
  fi
fi

# The optional tfjs-node engines try to download libtensorflow during install; where that
# download is impossible they stay unusable, the install still succeeds, and deepen reports
# why at run time. Their download errors in this output are expected on such machines.
pnpm install --frozen-lockfile
