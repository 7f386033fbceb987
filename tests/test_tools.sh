#!/bin/sh
# The ckpt command line: ls in three formats, verify, synth, exit codes. TAP output.
set -u
CKPT=${CKPT:-./tools/ckpt}
FX=${CKPTD_FIXTURES:-../shared/fixtures}/tf
T=$(mktemp -d "${TMPDIR:-/tmp}/ckptd-tools.XXXXXX")
trap 'rm -rf "$T"' EXIT
n=0
ok() { n=$((n + 1)); if [ "$1" -eq 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fi; }

$CKPT synth "$T/m" --size 2M --tensors 10 --dtypes float32,bfloat16,int64,bool,string >"$T/out" 2>&1
ok $? "synth writes a checkpoint"
$CKPT ls "$T/m" >"$T/ls" 2>&1
ok $? "ls succeeds"
grep -q '^10 tensors, ' "$T/ls"; ok $? "ls counts 10 tensors"
grep -q 'layer_00001/kernel .*DT_BFLOAT16' "$T/ls"; ok $? "ls shows dtype DT_BFLOAT16"
grep -q 'layer_00004/vocab .*DT_STRING .*5 ' "$T/ls"; ok $? "ls shows the string vector of 5"
$CKPT ls --format tsv "$T/m" >"$T/tsv"
[ "$(head -1 "$T/tsv")" = "$(printf 'name\tdtype\tshape\tbytes\tshard\toffset\tcrc32c')" ]; ok $? "tsv header"
[ "$(wc -l <"$T/tsv")" -eq 11 ]; ok $? "tsv has 10 rows"
$CKPT ls --format json "$T/m" >"$T/json"
if command -v python3 >/dev/null 2>&1; then
  python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert len(d["tensors"])==10' "$T/json"
  ok $? "json parses with 10 tensors"
fi
$CKPT verify "$T/m" >"$T/v"; ok $? "verify passes on a good checkpoint"
grep -q '10 entries' "$T/v"; ok $? "verify reports 10 entries"

# corrupt one data byte: verify must fail with exit 1 naming the data file
f="$T/m.data-00000-of-00001"
printf '\377' | dd of="$f" bs=1 seek=100 conv=notrunc 2>/dev/null
$CKPT verify "$T/m" >/dev/null 2>"$T/err"; rc=$?
[ $rc -eq 1 ]; ok $? "verify exits 1 on a corrupt tensor"
grep -q 'm.data-00000-of-00001: .*crc32c mismatch' "$T/err"; ok $? "error names the data file and the fault"

$CKPT ls "$T/nope" 2>"$T/err"; [ $? -eq 1 ]; ok $? "ls of a missing checkpoint exits 1"
grep -q 'nope.index' "$T/err"; ok $? "error names the missing index"
$CKPT frobnicate >/dev/null 2>&1; [ $? -eq 2 ]; ok $? "unknown command exits 2"
$CKPT ls >/dev/null 2>&1; [ $? -eq 2 ]; ok $? "missing argument exits 2"
$CKPT --help | grep -q '^usage: ckpt'; ok $? "--help prints usage"

if [ -d "$FX" ]; then
  $CKPT ls "$FX/t2t_transformer_sharded" | grep -q '^250 tensors, 1670432 bytes, 2 shard(s)$'
  ok $? "ls of a sharded fixture directory"
  $CKPT verify "$FX/tf2guide_tf_ckpts_variant" >/dev/null; ok $? "verify of the variant fixture"
elif [ "${CKPTD_REQUIRE_FIXTURES:-0}" != 0 ]; then
  ok 1 "fixtures required but $FX is missing"
else
  n=$((n + 1)); echo "ok $n - # SKIP fixtures not found at $FX (set CKPTD_FIXTURES)"
fi

$CKPT synth "$T/s" --size 3M --tensors 30 --shard-size 1M >/dev/null && $CKPT verify "$T/s" >/dev/null
ok $? "synth with --shard-size verifies"
ls "$T"/s.data-*-of-* | wc -l | grep -qv '^1$'; ok $? "synth --shard-size made several shards"
# ckpt diff's error paths free everything (a leak shows as a sanitizer report and exit 23)
$CKPT diff "$T/m" "$T/s" >/dev/null 2>"$T/err"; rc=$?
[ $rc -eq 2 ] && grep -q 'crc32c mismatch' "$T/err" && ! grep -q 'Sanitizer' "$T/err"
ok $? "diff with a corrupt A: exit 2, no leak ($rc: $(grep -m1 -E 'Sanitizer|mismatch' "$T/err"))"
$CKPT diff "$T/s" "$T/m" >/dev/null 2>"$T/err"; rc=$?
[ $rc -eq 2 ] && ! grep -q 'Sanitizer' "$T/err"; ok $? "diff with a corrupt B: exit 2, no leak ($rc)"
# ---- issue 7, item 11: an output is never the source, even with --force ----
TOOLS=$(dirname "$CKPT")
$CKPT synth "$T/src" --size 256K --tensors 6 --dtypes float32,string >/dev/null
sum0=$(cat "$T/src.index" "$T/src.data-00000-of-00001" | cksum)
$TOOLS/tensorflow-to-h5 -q --force "$T/src" "$T/src.index" 2>"$T/err"; rc=$?
[ $rc -eq 1 ] && grep -q "$T/src.index is the source file $T/src.index" "$T/err"
ok $? "tensorflow-to-h5 --force P P.index: exit 1 naming both ($rc: $(head -c 200 "$T/err"))"
ln "$T/src.data-00000-of-00001" "$T/link.h5"
$TOOLS/tensorflow-to-h5 -q --force "$T/src" "$T/link.h5" 2>"$T/err"; rc=$?
[ $rc -eq 1 ] && grep -q "link.h5 is the source file $T/src.data-00000-of-00001" "$T/err"
ok $? "tensorflow-to-h5 --force onto a hard link of a data file: exit 1 ($rc)"
[ "$(cat "$T/src.index" "$T/src.data-00000-of-00001" | cksum)" = "$sum0" ]; ok $? "the TF source is unchanged"
$TOOLS/tensorflow-to-h5 -q "$T/src" "$T/src.h5"; ok $? "convert the source to HDF5"
hsum=$(cksum <"$T/src.h5")
mkdir -p "$T/h1" "$T/h2" "$T/h3"
ln "$T/src.h5" "$T/h1/out.index"
$TOOLS/h5-to-tensorflow -q --force "$T/src.h5" "$T/h1/out" 2>"$T/err"; rc=$?
[ $rc -eq 1 ] && grep -q "h1/out.index is the source file $T/src.h5" "$T/err"
ok $? "h5-to-tensorflow --force onto a prefix whose .index is the source: exit 1 ($rc)"
ln "$T/src.h5" "$T/h2/out.data-00000-of-00001"
$TOOLS/h5-to-tensorflow -q --force "$T/src.h5" "$T/h2/out" 2>/dev/null; rc=$?
[ $rc -eq 1 ]; ok $? "h5-to-tensorflow --force onto a prefix whose data file is the source: exit 1 ($rc)"
ln "$T/src.h5" "$T/h3/checkpoint"
$TOOLS/h5-to-tensorflow -q "$T/src.h5" "$T/h3/out" 2>"$T/err"; rc=$?
[ $rc -eq 1 ] && grep -q "h3/checkpoint is the source file" "$T/err"
ok $? "h5-to-tensorflow into a directory whose checkpoint file is the source: exit 1 ($rc)"
[ "$(cksum <"$T/src.h5")" = "$hsum" ] && [ ! -e "$T/h3/out.index" ]; ok $? "the HDF5 source is unchanged, nothing written"
# a malformed `checkpoint` file: warned about and left alone; the bundle is published, exit 0
mkdir -p "$T/h4"
printf 'model_checkpoint_path: "a"\nthis is { not a checkpoint state\n' >"$T/h4/checkpoint"
csum=$(cksum <"$T/h4/checkpoint")
$TOOLS/h5-to-tensorflow -q "$T/src.h5" "$T/h4/out" 2>"$T/err"; rc=$?
[ $rc -eq 0 ]; ok $? "malformed checkpoint file: h5-to-tensorflow exits 0 ($rc: $(head -c 200 "$T/err"))"
grep -q "warning: .*h4/checkpoint.*left alone" "$T/err"; ok $? "it warns naming the checkpoint file"
[ "$(cksum <"$T/h4/checkpoint")" = "$csum" ] && $CKPT verify "$T/h4/out" >/dev/null
ok $? "the checkpoint file is untouched and the bundle is published and verifies"

# ---- issue 7, item 12 ----
echo 'not hdf5' >"$T/x.h5"
$CKPT ls "$T/x.h5" 2>"$T/err"; rc=$?
[ $rc -eq 1 ] && grep -q "x.h5: not an HDF5 file (no HDF5 signature) and not a TensorFlow checkpoint" "$T/err"
ok $? "ls of a non-HDF5 .h5 file says so ($(head -c 200 "$T/err"))"
# the summary counts every byte written, strings' too: equal to what ls counts in the output
mkdir -p "$T/h5"
$TOOLS/h5-to-tensorflow --no-checkpoint-file "$T/src.h5" "$T/h5/out" >"$T/sum"
got=$(sed -n 's/.*: [0-9]* tensors, \([0-9]*\) bytes.*/\1/p' "$T/sum")
want=$($CKPT ls --format tsv "$T/h5/out" | awk -F'\t' 'NR > 1 { s += $4 } END { print s }')
[ -n "$got" ] && [ "$got" = "$want" ]; ok $? "h5-to-tensorflow summary counts string bytes ($got = $want)"

# ---- issue 7, item 6: the default build is hardened (stack protector, PIE, RELRO, BIND_NOW) ----
if grep -q 'define CK_HARDENING_DISABLED 1' "$TOOLS/../config.h" 2>/dev/null; then
  n=$((n + 1)); echo "ok $n - # SKIP configured with --disable-hardening"
elif ! command -v readelf >/dev/null 2>&1; then
  n=$((n + 1)); echo "ok $n - # SKIP readelf (binutils) not installed"
else
  for b in "$TOOLS/ckpt" "$TOOLS/tensorflow-to-h5" "$TOOLS/h5-to-tensorflow" "$TOOLS/../daemon/ckptd"; do
    [ -f "$b" ] || continue
    readelf -s "$b" | grep -q '__stack_chk_fail'; ok $? "$b: has a stack protector (__stack_chk_fail)"
    readelf -h "$b" | grep -q 'Type: *DYN'; ok $? "$b: is PIE (ELF type DYN)"
    readelf -l "$b" | grep -q 'GNU_RELRO' && readelf -d "$b" | grep -qE 'BIND_NOW|FLAGS_1.* NOW'
    ok $? "$b: full RELRO (GNU_RELRO and BIND_NOW)"
  done
fi

# ckpt convert: any format to any other, with --verify, --strict, --shard-rule and --force
$CKPT synth "$T/c" --size 1M --tensors 6 --dtypes float32,bfloat16,int64,string >/dev/null 2>&1
$CKPT convert -q --verify "$T/c" "$T/c.safetensors" 2>"$T/err"; ok $? "convert --verify saver -> safetensors"
grep -q 'skipped (safetensors cannot hold them):.*(STRING)' "$T/err"; ok $? "the string tensor is listed as skipped, even with -q"
ls -a "$T" | grep -q 'ckptd-tmp'; [ $? -ne 0 ]; ok $? "no temporary is left after a verified conversion"
$CKPT convert -q --strict "$T/c" "$T/strict.pt" 2>"$T/err"; [ $? -eq 1 ]; ok $? "--strict refuses a tensor the target cannot hold"
grep -q 'DT_STRING.*--strict' "$T/err" && [ ! -e "$T/strict.pt" ]; ok $? "naming it, and nothing is written"
$CKPT convert -q --verify --shard-rule '*kernel*=1' --no-checkpoint-file "$T/c.safetensors" "$T/back" 2>"$T/err"
ok $? "convert --verify --shard-rule safetensors -> saver: $(head -c 200 "$T/err")"
[ -f "$T/back.data-00000-of-00002" ] && [ -f "$T/back.data-00001-of-00002" ]; ok $? "the shard rule made two shards"
$CKPT convert -q --to torch "$T/back" "$T/c.weights" 2>/dev/null && $CKPT diff "$T/c.weights" "$T/c.safetensors" >/dev/null
ok $? "--to torch writes torch whatever the name; ckpt diff finds it equal to the safetensors file"
$CKPT convert -q --to torch "$T/c.safetensors" "$T/c.weights" 2>"$T/err"; [ $? -eq 1 ]
ok $? "an existing output needs --force: $(head -c 100 "$T/err")"
$CKPT convert -q --force --to safetensors "$T/c.safetensors" "$T/c.safetensors" 2>"$T/err"; [ $? -eq 1 ]
ok $? "the source is never the output, even with --force: $(head -c 200 "$T/err")"
$CKPT convert -q "$T/c.safetensors" "$T/c2.safetensors" 2>"$T/err"; [ $? -eq 1 ]; ok $? "safetensors -> safetensors: $(head -c 100 "$T/err")"
$CKPT convert -q --to nonsense "$T/c" "$T/x" 2>/dev/null; [ $? -eq 2 ]; ok $? "--to with an unknown format is a usage error"
mkdir -p "$T/run.data-v2" && cp "$T/c.safetensors" "$T/run.data-v2/m.safetensors"
$CKPT ls "$T/run.data-v2/m.safetensors" 2>"$T/err" | grep -q '(safetensors)$'
ok $? "a directory named like a data file does not make its files TF bundles: $(head -c 100 "$T/err")"

# the systemd unit (built by make): valid to systemd-analyze, and locked down
if command -v systemd-analyze >/dev/null 2>&1 && [ -f systemd/ckptd.service ]; then
  mkdir -p "$T/unit"
  sed "s|[^ =]*/bin/ckptd|$(pwd)/daemon/ckptd|g" systemd/ckptd.service > "$T/unit/ckptd.service"
  # --man=no: the man pages it names are checked where they are installed (tests/test_deb.sh)
  systemd-analyze verify --man=no "$T/unit/ckptd.service" >"$T/verify" 2>&1; ok $? "systemd-analyze verify accepts ckptd.service $(head -c 200 "$T/verify")"
  exposure=$(systemd-analyze security --offline=true "$T/unit/ckptd.service" 2>/dev/null | sed -n 's/.*exposure level for ckptd.service: \([0-9.]*\).*/\1/p')
  awk -v e="${exposure:-10}" 'BEGIN { exit !(e <= 2.0) }'; ok $? "systemd-analyze security: exposure ${exposure:-unknown} (at most 2.0)"
else
  n=$((n + 1)); echo "ok $n - # SKIP systemd-analyze or the built unit is missing"
fi
echo "1..$n"
