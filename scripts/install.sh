#!/usr/bin/env bash
# Installs reaperd from the bundle: the deno binary from npm, dist/reaperd.js, the systemd unit
# and a `reaperd` command for the CLI. Run as root from the repository, after
# `deno task bundle`. DESTDIR=/some/root installs into a staging tree (and skips systemctl);
# BUNDLE= and DENO_BIN= name another bundle or deno binary.
set -euo pipefail

cd "$(dirname "$0")/.."
DENO_VERSION=2.9.6
DESTDIR="${DESTDIR:-}"
LIB="$DESTDIR/usr/lib/reaperd"
BIN="$DESTDIR/usr/local/bin"
UNIT_DIR="$DESTDIR/etc/systemd/system"
BUNDLE="${BUNDLE:-dist/reaperd.js}"

if [[ ! -f "$BUNDLE" ]]; then
  echo "install: $BUNDLE is missing: run 'deno task bundle' first" >&2
  exit 1
fi

# The real binary behind `npx deno`, not npm's launcher script.
deno_bin="${DENO_BIN:-$(npx --yes "deno@${DENO_VERSION}" eval 'console.log(Deno.execPath())' </dev/null)}"

install -d -m 0755 "$LIB" "$BIN" "$UNIT_DIR"
install -m 0755 "$deno_bin" "$LIB/deno"
install -m 0644 "$BUNDLE" "$LIB/reaperd.js"
install -m 0644 README.md "$LIB/README.md"
install -m 0644 systemd/reaperd.service "$UNIT_DIR/reaperd.service"

# The CLI: the same bundle, with the same flags as the unit's ExecStart.
cat >"$BIN/reaperd" <<'WRAPPER'
#!/bin/sh
exec /usr/lib/reaperd/deno run --no-config --cached-only --unstable-kv --unstable-net \
  --unstable-no-legacy-abort --allow-all /usr/lib/reaperd/reaperd.js "$@"
WRAPPER
chmod 0755 "$BIN/reaperd"

echo "install: reaperd installed under ${DESTDIR:-/}"
if [[ -z "$DESTDIR" ]] && command -v systemctl >/dev/null 2>&1 && [[ -d /run/systemd/system ]]; then
  systemctl daemon-reload
  echo "install: start it with: systemctl enable --now reaperd"
fi
