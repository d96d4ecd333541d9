#!/usr/bin/env bash
# make demo: make a CA and certificates (georep-slave certs), start a
# georep-slave on loopback serving mutual TLS to that one master identity,
# replicate a sample tree with georep-master --oneshot, show that the replica
# matches, then change the source and replicate again.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${GEOREP_BIN:-$PWD/bin}
DEMO=$(mktemp -d /tmp/georep-demo.XXXXXX)
SRC=$DEMO/source REPLICA=$DEMO/replica WORK=$DEMO/work
mkdir -p "$SRC" "$REPLICA"
cleanup() { [ -n "${SLAVE_PID:-}" ] && kill "$SLAVE_PID" 2>/dev/null; wait 2>/dev/null || true; }
trap cleanup EXIT

echo "== sample tree in $SRC"
mkdir -p "$SRC/docs/notes" "$SRC/src/pkg" "$SRC/empty-dir"
for i in $(seq 1 200); do head -c $((i * 97)) /dev/urandom > "$SRC/src/pkg/file$i.bin"; done
printf 'hello\n' > "$SRC/docs/readme.txt"
printf 'odd name\n' > "$SRC/docs/name with spaces"
printf 'newline\n' > "$SRC/docs/new"$'\n'"line"
ln "$SRC/docs/readme.txt" "$SRC/docs/notes/hardlink-to-readme"
ln -s ../docs/readme.txt "$SRC/src/link-to-readme"
ln -s /etc/hostname "$SRC/absolute-link"
mkfifo "$SRC/a-fifo"
chmod 4755 "$SRC/src/pkg/file1.bin"
touch -d '2001-02-03 04:05:06' "$SRC/docs/readme.txt"

TLS=$DEMO/tls
echo "== certificates in $TLS"
"$BIN/georep-slave" certs --dir "$TLS" --slave-name 127.0.0.1,localhost --master-name demo-master
MASTER_TLS=(--tls-cert "$TLS/master.crt" --tls-key "$TLS/master.key" --tls-ca "$TLS/ca.crt")

LOG=$DEMO/slave.log
"$BIN/georep-slave" --listen 127.0.0.1:0 --root "$REPLICA" \
  --tls-cert "$TLS/slave.crt" --tls-key "$TLS/slave.key" --tls-ca "$TLS/ca.crt" --allowed-masters demo-master 2>"$LOG" &
SLAVE_PID=$!
for _ in $(seq 1 100); do ADDR=$(sed -n 's/.*msg="slave serving" addr=\([^ ]*\).*/\1/p' "$LOG"); [ -n "$ADDR" ] && break; sleep 0.1; done
[ -n "$ADDR" ] || { cat "$LOG"; echo "slave did not start"; exit 1; }
echo "== slave serving $REPLICA on $ADDR (mutual TLS 1.3, allowed-masters: demo-master)"

echo "== georep-master --oneshot"
"$BIN/georep-master" --slave "$ADDR" --source "$SRC" --work-dir "$WORK" "${MASTER_TLS[@]}" --oneshot
compare() {
  # rsync in dry-run checksum mode lists every difference; none means a match.
  local diff
  diff=$(rsync -rlptgoDHn --checksum --itemize-changes --delete --exclude=/.georep "$SRC/" "$REPLICA/")
  if [ -z "$diff" ]; then echo "== replica matches the source ($(find "$SRC" | wc -l) names)"; else echo "$diff"; echo "== REPLICA DIFFERS"; exit 1; fi
}
compare

echo "== change the source: rename a directory, delete, overwrite, new hardlink"
mv "$SRC/src/pkg" "$SRC/src/renamed-pkg"
rm "$SRC/src/renamed-pkg/file2.bin"
printf 'changed\n' > "$SRC/docs/readme.txt"
ln "$SRC/src/renamed-pkg/file3.bin" "$SRC/file3-link"
"$BIN/georep-master" --slave "$ADDR" --source "$SRC" --work-dir "$WORK" "${MASTER_TLS[@]}" --oneshot
compare
echo "== crawl stats:"; cat "$WORK/stats"
echo "== demo files are in $DEMO"
