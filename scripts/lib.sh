# shellcheck shell=bash
# Shared helpers for the bash scripts in scripts/. Source it, don't run it:
#   . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# Defines:
#   CPPFLY_ROOT          absolute path of the repository root (from this file's path)
#   cppfly_log MSG...    message to stderr
#   cppfly_die MSG...    "error: MSG" to stderr, exit 1
#   cppfly_as_root CMD.. run CMD as root (directly, or through sudo when not root)

CPPFLY_ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)

cppfly_log() { printf '%s\n' "$*" >&2; }
cppfly_die() { printf 'error: %s\n' "$*" >&2; exit 1; }

cppfly_as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    cppfly_die "need root (or sudo) to run: $*"
  fi
}
