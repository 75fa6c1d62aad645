#!/usr/bin/env bash
# Installs what reaperd's tests drive for real, from Debian packages, when it can: as root, with
# apt-get, online. `deno task test` and .ci/run both call it. Where it cannot (not root, no apt,
# offline, REAPERD_TEST_NO_INSTALL=1) it says what is missing and exits 0: the tests that need a
# missing tool are then reported as ignored, with the command that would enable them
# (tests/support/needs.ts). With --strict (CI) anything still missing is an error.
#
#   runc, crun       cleanup runs them; the runc tests start real containers
#   busybox-static   the test containers' rootfs
#   conmon           the peer baseline of the benchmarks
#   gcc, libc6-dev   build the test shim and the fault helpers (tests/fixtures, tests/support)
#   systemd          systemd-analyze verifies the unit
#   zsh              the zsh completion test runs it
set -euo pipefail

strict=0
if [[ "${1:-}" == "--strict" ]]; then strict=1; fi

packages=(runc crun busybox-static conmon gcc libc6-dev systemd zsh)
# .ci/run (--strict) starts deno through npx; on a bare machine that needs Node too. No test
# needs it: deno task test runs with the deno that started it.
if ((strict)) && ! command -v npx >/dev/null 2>&1; then packages+=(nodejs npm); fi

say() { echo "setup: $*" >&2; }

installed() {
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"
}

missing=()
if command -v dpkg-query >/dev/null 2>&1; then
  for p in "${packages[@]}"; do installed "$p" || missing+=("$p"); done
else
  # Not Debian: nothing to ask; the tests find the tools on PATH or are ignored.
  say "no dpkg here; the tests use what is on PATH (Debian names: ${packages[*]})"
  # CI must not pass by ignoring what it could not install.
  ((strict)) && exit 1
  exit 0
fi
((${#missing[@]} == 0)) && exit 0

why=""
if [[ "${REAPERD_TEST_NO_INSTALL:-}" == "1" ]]; then
  why="REAPERD_TEST_NO_INSTALL=1"
elif [[ "$(id -u)" != "0" ]]; then
  why="not root"
elif ! command -v apt-get >/dev/null 2>&1; then
  why="no apt-get"
fi

if [[ -z "$why" ]]; then
  say "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  if apt-get update -qq &&
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; then
    exit 0
  fi
  why="apt-get failed (offline?)"
fi

say "${why}: not installing ${missing[*]}"
say "tests that need them are ignored; to run them: sudo apt-get install -y ${missing[*]}"
if ((strict)); then exit 1; fi
exit 0
