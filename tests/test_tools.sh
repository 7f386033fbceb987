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
# the systemd unit (built by make): valid to systemd-analyze, and locked down
if command -v systemd-analyze >/dev/null 2>&1 && [ -f systemd/ckptd.service ]; then
  mkdir -p "$T/unit"
  sed "s|[^ =]*/bin/ckptd|$(pwd)/daemon/ckptd|g" systemd/ckptd.service > "$T/unit/ckptd.service"
  systemd-analyze verify "$T/unit/ckptd.service" >"$T/verify" 2>&1; ok $? "systemd-analyze verify accepts ckptd.service $(head -c 200 "$T/verify")"
  exposure=$(systemd-analyze security --offline=true "$T/unit/ckptd.service" 2>/dev/null | sed -n 's/.*exposure level for ckptd.service: \([0-9.]*\).*/\1/p')
  awk -v e="${exposure:-10}" 'BEGIN { exit !(e <= 2.0) }'; ok $? "systemd-analyze security: exposure ${exposure:-unknown} (at most 2.0)"
else
  n=$((n + 1)); echo "ok $n - # SKIP systemd-analyze or the built unit is missing"
fi
echo "1..$n"
