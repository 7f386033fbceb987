#!/bin/sh
# A disk that corrupts what it is given (tests/flip_preload.c: one bit of the first
# large write to a temporary) is caught by --verify: tensorflow-to-h5, h5-to-tensorflow
# and ckpt convert to safetensors and to torch each fail naming the file and the
# checksum that disagrees, and publish nothing. Without --verify the same conversion succeeds and
# `ckpt verify` finds the damage, which shows the preload did corrupt. TAP output.
SRC=$(cd "$(dirname "$0")" && pwd)
. "$SRC/preload.sh"

build_preload flip_preload
$TOOLS/ckpt synth "$T/m" --size 8M --tensors 4 >/dev/null && $TOOLS/tensorflow-to-h5 --quiet "$T/m" "$T/m.h5"
ok $? "a checkpoint of four tensors, and its .h5"
mkdir "$T/out"

# caught WHAT CMD...: CMD --verify under the preload fails naming the temporary and the
# checksum that differs (the tensor's, or for torch the zip entry's CRC-32), and leaves
# out/ empty
caught() {
  what=$1
  shift
  LD_PRELOAD="$T/flip_preload.so" "$@" 2>"$T/err"
  rc=$?
  [ $rc -ne 0 ] && grep -q 'ckptd-tmp' "$T/err" && grep -qi 'crc' "$T/err"
  ok $? "$what --verify: one flipped bit fails it (exit $rc: $(head -c 240 "$T/err"))"
  [ -z "$(ls -A "$T/out")" ]; ok $? "and nothing is published ($(ls -A "$T/out" | tr '\n' ' '))"
}

caught tensorflow-to-h5 $TOOLS/tensorflow-to-h5 --quiet --verify "$T/m" "$T/out/m.h5"
caught h5-to-tensorflow $TOOLS/h5-to-tensorflow --quiet --verify "$T/m.h5" "$T/out/m"
caught "ckpt convert to safetensors" $TOOLS/ckpt convert -q --verify "$T/m" "$T/out/m.safetensors"
caught "ckpt convert to torch" $TOOLS/ckpt convert -q --verify "$T/m" "$T/out/m.pt"

LD_PRELOAD="$T/flip_preload.so" $TOOLS/tensorflow-to-h5 --quiet "$T/m" "$T/out/m.h5" 2>"$T/err"
ok $? "without --verify the conversion succeeds ($(head -c 200 "$T/err"))"
$TOOLS/ckpt verify "$T/out/m.h5" >/dev/null 2>"$T/err"
[ $? -eq 1 ] && grep -q 'tf_crc32c' "$T/err"
ok $? "and ckpt verify finds the flipped bit: the preload corrupts ($(head -c 200 "$T/err"))"
echo "1..$n"
