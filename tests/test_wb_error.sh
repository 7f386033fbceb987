#!/bin/sh
# A disk error found while pacing writeback (common/fileio.c, ck_wb) fails the
# conversion with a clear error, and nothing is published: tensorflow-to-h5,
# h5-to-tensorflow and ckpt convert to safetensors, with every writeback wait failing
# with EIO (tests/eio_preload.c). With --verify nothing is waited for. TAP output.
SRC=$(cd "$(dirname "$0")" && pwd)
. "$SRC/preload.sh"

build_preload eio_preload
# one 40 MiB tensor: its copy passes two 8 MiB steps, so writeback is waited for
$TOOLS/ckpt synth "$T/m" --size 40M --tensors 1 >/dev/null
ok $? "a checkpoint of one 40 MiB tensor"
mkdir "$T/out"

# fails_cleanly WHAT DIR CMD...: CMD under the preload fails naming the I/O error, and
# leaves DIR empty (no output, no temporary, no checkpoint file)
fails_cleanly() {
  what=$1 dir=$2
  shift 2
  LD_PRELOAD="$T/eio_preload.so" "$@" 2>"$T/err"
  rc=$?
  [ $rc -ne 0 ] && grep -q ': write: Input/output error' "$T/err"
  ok $? "$what fails naming the file and the error (exit $rc: $(head -c 200 "$T/err"))"
  [ -z "$(ls -A "$dir")" ]; ok $? "and leaves nothing in $(basename "$dir")/ ($(ls -A "$dir" | tr '\n' ' '))"
}

fails_cleanly tensorflow-to-h5 "$T/out" $TOOLS/tensorflow-to-h5 --quiet "$T/m" "$T/out/m.h5"
LD_PRELOAD="$T/eio_preload.so" $TOOLS/tensorflow-to-h5 --quiet --verify "$T/m" "$T/out/m.h5" 2>"$T/err"
ok $? "with --verify the output is only handed to writeback: it converts ($(head -c 200 "$T/err"))"
mkdir "$T/back"
fails_cleanly h5-to-tensorflow "$T/back" $TOOLS/h5-to-tensorflow --quiet "$T/out/m.h5" "$T/back/m"
fails_cleanly "ckpt convert to safetensors" "$T/back" $TOOLS/ckpt convert -q "$T/m" "$T/back/m.safetensors"

$TOOLS/h5-to-tensorflow --quiet "$T/out/m.h5" "$T/back/m" 2>"$T/err" && $TOOLS/ckpt diff "$T/m" "$T/back/m" >/dev/null
ok $? "without the preload the same conversion succeeds and equals the source"
echo "1..$n"
