#!/bin/sh
# A stand-in OCI runtime for reaperd's crash and fault tests: it keeps real, per-container
# state, so that a cleanup step that runs twice can be told apart from one that did harm.
#
#   crash_runtime.sh --log LOG --root ROOT <kill ID 9 | delete --force ID | resume ID>
#
# A container "exists" while the directory ROOT/ID exists (the test creates it, like `runc
# create`). Every call appends one line to LOG (O_APPEND, one short write, so concurrent
# calls never interleave):
#   "kill ID" / "delete ID"        the call acted on an existing container
#   "<cmd> ID absent"              the container was gone: answered "does not exist" (exit 1)
#   "delete ID failed"             a delete refused on purpose (see below)
#   "<cmd> ID hang PID"            the call is about to hang (see below), as process PID
# Files in ROOT/ID steer it:
#   fail      a count N: the next N deletes fail with "device or resource busy" (exit 1)
#   hang      holds a subcommand name: that subcommand sleeps for a minute (exec, same pid)
#   slow      a number of seconds every call waits before it acts
# Shell builtins only, but for `rm` and `sleep`: crash tests run it thousands of times.
set -u
# A killed daemon's call lives on with its stdout and stderr broken: a SIGPIPE must not stop
# it half-way (the lock below would stay taken).
trap '' PIPE

if [ "${1:-}" != "--log" ] || [ -z "${2:-}" ]; then
  echo "crash_runtime: usage: crash_runtime.sh --log LOG --root ROOT <subcommand> ..." >&2
  exit 2
fi
log=$2
shift 2
root=""
if [ "${1:-}" = "--root" ]; then
  root=${2:-}
  shift 2
fi
cmd=${1:-}
id=""
case "$cmd" in
  kill | resume) id=${2:-} ;;
  delete) id=${3:-} ;;
  *)
    echo "crash_runtime: unknown subcommand $cmd" >&2
    exit 2
    ;;
esac
c="$root/$id"

absent() {
  echo "$cmd $id absent" >>"$log"
  echo "time=\"now\" level=error msg=\"container $id does not exist\"" >&2
  exit 1
}

if [ -z "$root" ] || [ -z "$id" ] || [ ! -d "$c" ]; then
  absent
fi

if [ -f "$c/slow" ]; then
  read -r seconds <"$c/slow"
  sleep "$seconds"
fi

if [ -f "$c/hang" ]; then
  read -r hang <"$c/hang"
  if [ "$hang" = "$cmd" ]; then
    echo "$cmd $id hang $$" >>"$log"
    # exec: the runner's SIGKILL at its timeout reaches the sleeping process itself.
    exec sleep 60
  fi
fi

case "$cmd" in
  kill)
    echo "kill $id" >>"$log"
    exit 0
    ;;
  resume)
    echo "time=\"now\" level=error msg=\"container not paused\"" >&2
    exit 1
    ;;
  delete)
    # One delete at a time per container, as runc's own lock does: a killed daemon's call may
    # still be running when the restarted daemon makes the same call. With noclobber the
    # redirection is an O_EXCL create: the lock.
    set -C
    until { : >"$c/.lock"; } 2>/dev/null; do
      [ -d "$c" ] || absent
      sleep 0.01
    done
    set +C
    left=0
    if [ -f "$c/fail" ]; then
      read -r left <"$c/fail"
    fi
    if [ "$left" -gt 0 ]; then
      echo $((left - 1)) >"$c/fail"
      echo "delete $id failed" >>"$log"
      echo "crash_runtime: delete $id: device or resource busy" >&2
      rm -f "$c/.lock"
      exit 1
    fi
    rm -rf "$c"
    echo "delete $id" >>"$log"
    exit 0
    ;;
esac
