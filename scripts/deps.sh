#!/usr/bin/env bash
# Installs the system and npm packages of the full parity proof (`make deps`); idempotent.
#
# `make demo` and `make test` need none of this: each tool below is optional, and the rows and tests
# that need a missing one say "unavailable" / skip with this command (CI=true fails them instead).
# Debian packages come from apt (as root, or through sudo); the npm packages are the ones pinned in
# js/package-lock.json. tests/tools.py lists the same tools with what needs each: keep them in step.
set -euo pipefail
cd "$(dirname "$0")/.."

# command -> Debian package. A tool already on PATH is left alone, however it was installed.
packages=()
need() { command -v "$1" >/dev/null 2>&1 || packages+=("$2"); }
need clang clang
need clang-format clang-format
need chromium chromium
need arm-none-eabi-gcc gcc-arm-none-eabi
need qemu-system-arm qemu-system-arm
need node nodejs
need npm npm
# newlib has no command of its own: the cross toolchain links against its libc.a.
if command -v arm-none-eabi-gcc >/dev/null 2>&1; then
  [ -n "$(arm-none-eabi-gcc -print-file-name=libc.a | grep /)" ] || packages+=(libnewlib-arm-none-eabi)
else
  packages+=(libnewlib-arm-none-eabi)
fi

if [ ${#packages[@]} -gt 0 ]; then
  echo "deps: installing ${packages[*]}"
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${packages[@]}"
else
  echo "deps: every system package is installed"
fi

# onnxruntime-node's post-install would download CUDA files, so scripts are skipped: the CPU binaries
# ship in the package. `npm ci` is rerun only when the lock file changed since the last install.
stamp=js/node_modules/.lenetc-lock
if [ -f "$stamp" ] && cmp -s js/package-lock.json "$stamp"; then
  echo "deps: js/node_modules is up to date"
else
  (cd js && ONNXRUNTIME_NODE_INSTALL=skip npm ci --no-audit --no-fund --ignore-scripts)
  cp js/package-lock.json "$stamp"
fi
