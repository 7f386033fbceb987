# Sourced by the tests that run the tools under an LD_PRELOAD of ours (test_wb_error.sh,
# test_verify_fail.sh), after they set SRC to the tests directory: a temporary directory
# $T removed at exit, TAP's ok(), and build_preload NAME, which compiles tests/NAME.c into
# $T/NAME.so and reports it as a test.
set -u
TOOLS=${TOOLS:-./tools}
T=$(mktemp -d "${TMPDIR:-/tmp}/ckptd-preload.XXXXXX")
trap 'rm -rf "$T"' EXIT
n=0
ok() { n=$((n + 1)); if [ "$1" -eq 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fi; }
# the tools may be built with ASan, which wants its runtime first among the libraries
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0"

build_preload() {
  ${CC:-cc} -shared -fPIC -o "$T/$1.so" "$SRC/$1.c" -ldl 2>"$T/cc"
  ok $? "the preload $1 builds $(head -c 200 "$T/cc")"
}
