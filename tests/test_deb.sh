#!/bin/sh
# The Debian package as an operator meets it: built by dpkg-buildpackage from
# `git archive HEAD`, lintian-clean of errors, installed with apt-get; then the
# programs, man pages, the ckptd user and directories, the configuration (a conffile
# kept across a reinstall), the unit and a real conversion by the installed daemon;
# then purged. Also `make install` over an edited ckptd.ini (run from a build tree).
# It changes the system (installs and purges package ckptd): it needs root, and skips
# when ckptd is already installed. TAP output.
set -u
SRC=$(cd "$(dirname "$0")/.." && pwd)
n=0
ok() { n=$((n + 1)); if [ "$1" -eq 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fi; }
skip() { n=$((n + 1)); echo "ok $n - # SKIP $1"; }
# show FILE: the last lines of FILE as TAP comments
show() { tail -n "${2:-15}" "$1" | sed 's/^/# /'; }

if [ "$(id -u)" -ne 0 ]; then
  echo "1..0 # SKIP not root"
  exit 0
fi
for t in git dpkg-buildpackage dh dpkg-parsechangelog apt-get man setpriv; do
  if ! command -v "$t" >/dev/null 2>&1; then
    echo "1..0 # SKIP $t not installed (./quickstart test installs the Debian tools)"
    exit 0
  fi
done
GIT="git -c safe.directory=$SRC -C $SRC"
if ! $GIT rev-parse --verify -q HEAD >/dev/null 2>&1; then
  echo "1..0 # SKIP $SRC is not a git checkout (the package is built from git archive HEAD)"
  exit 0
fi
case $(dpkg-query -W -f='${Status}' ckptd 2>/dev/null) in
"" | *not-installed) ;;
*)
  echo "1..0 # SKIP package ckptd is already on this system: not replacing it"
  exit 0
  ;;
esac

T=$(mktemp -d "${TMPDIR:-/tmp}/ckptd-deb.XXXXXX")
chmod 755 "$T" # the ckptd user reads its configuration and tree below here
user_before=$(getent passwd ckptd >/dev/null && echo yes || echo no)
installed=0
cleanup() {
  [ $installed = 1 ] && dpkg --purge ckptd >/dev/null 2>&1
  # the package leaves its system user, as Debian does; the test leaves none it made
  if [ "$user_before" = no ] && getent passwd ckptd >/dev/null; then
    userdel ckptd 2>/dev/null
    getent group ckptd >/dev/null && groupdel ckptd 2>/dev/null
  fi
  rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- 1. build from the committed tree ----
V=$(dpkg-parsechangelog -l "$SRC/debian/changelog" -S Version)
mkdir -p "$T/b/ckptd-$V"
$GIT archive HEAD | tar -x -C "$T/b/ckptd-$V"
ok $? "git archive HEAD into ckptd-$V"
(cd "$T/b/ckptd-$V" && DEB_BUILD_OPTIONS="parallel=2" dpkg-buildpackage -us -uc -b) >"$T/build.log" 2>&1
rc=$?
ok $rc "dpkg-buildpackage -us -uc -b"
[ $rc -ne 0 ] && show "$T/build.log" 40
DEB=$(ls "$T"/b/ckptd_"$V"_*.deb 2>/dev/null | head -n 1)
[ -n "$DEB" ]; ok $? "ckptd_${V}_ARCH.deb built ($(basename "${DEB:-none}"))"
if [ -z "$DEB" ]; then
  echo "1..$n"
  exit 1
fi
if command -v lintian >/dev/null 2>&1; then
  lintian "$T"/b/ckptd_"$V"_*.changes >"$T/lintian.txt" 2>&1
  grep -v '^running with root' "$T/lintian.txt" | sed 's/^/# lintian: /'
  ! grep -q '^E:' "$T/lintian.txt"; ok $? "lintian: no errors ($(grep -c '^W:' "$T/lintian.txt") warnings)"
else
  skip "lintian not installed"
fi

# ---- 2. install ----
DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$DEB" </dev/null >"$T/apt.log" 2>&1
rc=$?
[ $rc -eq 0 ] && installed=1
ok $rc "apt-get install ./$(basename "$DEB")"
[ $rc -ne 0 ] && show "$T/apt.log"

out=$(ckptd --version 2>&1)
[ "$out" = "ckptd $V" ]; ok $? "ckptd --version says the package version ($out)"
for p in ckpt tensorflow-to-h5 h5-to-tensorflow; do
  "$p" --help 2>&1 | grep -q "^usage: $p"; ok $? "$p --help"
done

# ---- 3. man pages ----
for m in ckptd.8 ckptd.ini.5 ckpt.1 tensorflow-to-h5.1 h5-to-tensorflow.1; do
  f=/usr/share/man/man${m##*.}/$m.gz
  where=$(man -w "${m##*.}" "${m%.*}" 2>/dev/null)
  [ "$where" = "$f" ]; ok $? "man ${m##*.} ${m%.*} finds $f ($where)"
  warn=$(LC_ALL=C.UTF-8 MANROFFSEQ='' MANWIDTH=80 man --warnings -E UTF-8 -l -Tutf8 -Z "$f" 2>&1 >/dev/null)
  [ -z "$warn" ]; ok $? "man --warnings $m: no warnings"
  [ -n "$warn" ] && echo "$warn" | sed 's/^/# /'
done

# ---- 4. user, directories, configuration, unit ----
pw=$(getent passwd ckptd)
case $pw in
ckptd:x:*:*:ckptd\ checkpoint\ conversion\ daemon:/var/lib/ckptd:/usr/sbin/nologin) r=0 ;;
*) r=1 ;;
esac
ok $r "system user ckptd (sysusers.d): home /var/lib/ckptd, no login ($pw)"
uid=$(id -u ckptd 2>/dev/null || echo 65535)
[ "$uid" -lt 1000 ]; ok $? "ckptd is a system uid ($uid)"
for d in /var/lib/ckptd /run/ckptd; do
  st=$(stat -c '%U:%G %a' "$d" 2>&1)
  [ "$st" = "ckptd:ckptd 750" ]; ok $? "$d made by tmpfiles.d: $st"
done
[ -f /etc/ckptd/ckptd.ini ]; ok $? "/etc/ckptd/ckptd.ini installed"
dpkg-query -W -f='${Conffiles}\n' ckptd | grep -q '^ /etc/ckptd/ckptd.ini '
ok $? "/etc/ckptd/ckptd.ini is a conffile"

# The example's trees are /srv/models and /srv/exports: a missing one is a warning
# naming the file and line (ckptd watches it once it appears), not a failed start.
ckptd --check-config --config /etc/ckptd/ckptd.ini >"$T/cc.out" 2>&1
rc=$?
if [ -d /srv/models ] && [ -d /srv/exports ]; then
  [ $rc -eq 0 ] && grep -q '^watch training: /srv/models' "$T/cc.out"
  ok $? "--check-config of the shipped file: exit 0 where /srv/models and /srv/exports exist (exit $rc)"
else
  missing=/srv/models
  [ -d /srv/models ] && missing=/srv/exports
  [ $rc -eq 0 ] && grep -q "^/etc/ckptd/ckptd.ini:[0-9]*: \[watch .*\]: path $missing does not exist yet" "$T/cc.out"
  ok $? "--check-config of the shipped file: exit 0, a warning naming missing $missing with its line (exit $rc)"
fi
[ $rc -eq 0 ] || show "$T/cc.out" 5
# The same file with trees that exist is valid, read by the service user.
mkdir -p "$T/models/run1" "$T/exports" "$T/state"
chown -R ckptd:ckptd "$T/models" "$T/exports" "$T/state"
sed -e "s|^path = /srv/models|path = $T/models|" -e "s|^path = /srv/exports|path = $T/exports|" \
  -e "s|^state_dir = .*|state_dir = $T/state|" -e "s|^status_file = .*|status_file = $T/state/status.json|" \
  -e 's|^settle_seconds = .*|settle_seconds = 1|' -e 's|^rescan_seconds = .*|rescan_seconds = 1|' \
  /etc/ckptd/ckptd.ini >"$T/ok.ini"
setpriv --reuid=ckptd --regid=ckptd --init-groups -- ckptd --check-config --config "$T/ok.ini" >"$T/cc.out" 2>&1
rc=$?
[ $rc -eq 0 ] && grep -q "^watch training: $T/models (saver-to-h5, recursive)" "$T/cc.out"
ok $? "--check-config as user ckptd, the shipped file with existing trees: exit 0 (exit $rc)"
[ $rc -ne 0 ] && show "$T/cc.out" 5

# The installed daemon, as the service user, converts a checkpoint dropped in its tree.
ckpt synth "$T/models/run1/model.ckpt-100" --size 1M --tensors 8 >/dev/null 2>&1
chown -R ckptd:ckptd "$T/models"
setpriv --reuid=ckptd --regid=ckptd --init-groups -- ckptd --config "$T/ok.ini" >"$T/daemon.log" 2>&1 &
dpid=$!
i=0
while [ $i -lt 300 ] && [ ! -f "$T/models/run1/model.ckpt-100.h5" ]; do
  sleep 0.1
  i=$((i + 1))
done
kill -TERM $dpid 2>/dev/null
wait $dpid
rc=$?
ckpt diff "$T/models/run1/model.ckpt-100" "$T/models/run1/model.ckpt-100.h5" >/dev/null 2>&1 &&
  [ "$(stat -c %U "$T/models/run1/model.ckpt-100.h5")" = ckptd ]
ok $? "installed ckptd, as user ckptd, converted a new checkpoint to an equal .h5 ($((i / 10)) s)"
[ $rc -eq 0 ]; ok $? "SIGTERM stops it with exit 0 (exit $rc)"
[ -f "$T/models/run1/model.ckpt-100.h5" ] || show "$T/daemon.log"

U=/lib/systemd/system/ckptd.service
[ -f "$U" ] || U=/usr/lib/systemd/system/ckptd.service
grep -q '^ReadWritePaths=-/srv/models -/srv/exports$' "$U"; ok $? "$U: ReadWritePaths with '-' prefixes"
# debhelper's default: enabled on install (and started where systemd runs)
[ -L /etc/systemd/system/multi-user.target.wants/ckptd.service ]
ok $? "unit enabled on install (multi-user.target.wants/ckptd.service)"
if ! command -v systemd-analyze >/dev/null 2>&1; then
  skip "systemd-analyze not installed"
else
  systemd-analyze verify "$U" >"$T/sa.out" 2>&1
  rc=$?
  if [ $rc -eq 0 ] && [ ! -s "$T/sa.out" ]; then
    ok 0 "systemd-analyze verify $U: clean"
  elif grep -q 'ckptd' "$T/sa.out"; then
    ok 1 "systemd-analyze verify $U (exit $rc)"
    show "$T/sa.out"
  else
    skip "systemd-analyze verify cannot run here (exit $rc): $(head -n 1 "$T/sa.out")"
  fi
fi

# ---- 5. a reinstall keeps the operator's configuration ----
echo "; local edit $$" >>/etc/ckptd/ckptd.ini
DEBIAN_FRONTEND=noninteractive apt-get install -y --reinstall --no-install-recommends "$DEB" </dev/null >"$T/apt.log" 2>&1
ok $? "apt-get install --reinstall"
tail -n 1 /etc/ckptd/ckptd.ini | grep -qx "; local edit $$"; ok $? "the edited /etc/ckptd/ckptd.ini is kept"
[ -z "$(ls /etc/ckptd | grep -v '^ckptd.ini$')" ]; ok $? "no ckptd.ini.dpkg-* beside it ($(ls /etc/ckptd | tr '\n' ' '))"

# ---- 6. purge ----
DEBIAN_FRONTEND=noninteractive apt-get purge -y ckptd </dev/null >"$T/apt.log" 2>&1
rc=$?
[ $rc -eq 0 ] && installed=0
ok $rc "apt-get purge ckptd"
[ ! -e /usr/bin/ckptd ] && [ ! -e /etc/ckptd ] && [ ! -e "$U" ] && [ ! -e /var/lib/ckptd ] && [ ! -e /run/ckptd ]
ok $? "purge removes the programs, /etc/ckptd, the unit, /var/lib/ckptd and /run/ckptd"
[ ! -L /etc/systemd/system/multi-user.target.wants/ckptd.service ]; ok $? "purge removes the unit's enablement"
getent passwd ckptd >/dev/null; ok $? "the ckptd user stays after purge (Debian leaves system users)"

# ---- 7. make install never overwrites an edited ckptd.ini (from a build tree) ----
if [ -f Makefile ] && grep -q '^PACKAGE = ckptd' Makefile; then
  D=$T/stage
  make -s install DESTDIR="$D" >"$T/mi.log" 2>&1
  ok $? "make install DESTDIR=..."
  ini=$(find "$D" -path '*/ckptd/ckptd.ini')
  echo "; local edit" >>"$ini"
  make install DESTDIR="$D" >"$T/mi.log" 2>&1
  ok $? "make install again over an edited ckptd.ini"
  tail -n 1 "$ini" | grep -qx '; local edit' && [ -f "$ini.dist" ] && grep -q '^kept the existing' "$T/mi.log"
  ok $? "the edited ckptd.ini is kept, the example installed as ckptd.ini.dist, and said"
  make -s uninstall DESTDIR="$D" >"$T/mi.log" 2>&1
  [ "$(find "$D" -type f)" = "$ini" ]; ok $? "make uninstall removes everything but the edited ckptd.ini"
else
  skip "not run from a configured build tree (make install checks)"
fi
echo "1..$n"
