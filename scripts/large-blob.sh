#!/bin/bash
# A large blob through two local validators (release build): `provernet blob upload` in pieces
# to validator 0, its copy to validator 1, `provernet blob download` from validator 1; prints
# wall times and peak memory of each, and checks the bytes came back equal.
#   cargo build --release --bins && scripts/large-blob.sh [SIZE_MIB, default 2048]
set -euo pipefail
B=${B:-target/release/provernet}
MIB=${1:-2048}
D=$(mktemp -d /tmp/provernet-large-blob.XXXX)
trap 'pkill -f "$D/net/validator" || true; rm -rf "$D"' EXIT
$B genesis --validators 2 --host 127.0.0.1 --out "$D/net" --base-port 15100 --api-port 15180 >/dev/null
for v in 0 1; do
  $B validator --config "$D/net/validator-$v/validator.toml" >"$D/v$v.log" 2>&1 &
done
until curl -sf http://127.0.0.1:15181/v1/status >/dev/null; do sleep 0.5; done
head -c $((MIB << 20)) /dev/urandom >"$D/big.bin"
/usr/bin/time -v $B blob upload "$D/big.bin" --key "$D/net/faucet.json" \
  --api http://127.0.0.1:15180 --json >"$D/up.json" 2>"$D/up.time"
HASH=$(python3 -c "import json,sys;print(json.load(open(sys.argv[1]))['hash'])" "$D/up.json")
start=$(date +%s.%N)
until curl -sf "http://127.0.0.1:15181/v1/blobs/$HASH/uploads" | grep -q '"stored":true'; do
  sleep 0.2
done
copied=$(python3 -c "print(round($(date +%s.%N)-$start,1))")
/usr/bin/time -v $B blob download "$HASH" --out "$D/back.bin" --api http://127.0.0.1:15181 \
  --json >"$D/down.json" 2>"$D/down.time"
cmp "$D/big.bin" "$D/back.bin"
wall() { grep "Elapsed" "$1" | awk '{print $NF}'; }
rss() { grep "Maximum resident" "$1" | awk '{print int($NF/1024)}'; }
vrss() { grep VmHWM "/proc/$(pgrep -f "$D/net/validator-$1/")/status" | awk '{print int($2/1024)}'; }
echo "blob: $MIB MiB, $HASH"
echo "upload (in pieces, to validator 0): $(wall "$D/up.time"), client peak $(rss "$D/up.time") MiB"
echo "copy to validator 1: ${copied} s after the upload ended"
echo "download (from validator 1): $(wall "$D/down.time"), client peak $(rss "$D/down.time") MiB"
echo "validators' peak RSS: $(vrss 0) MiB and $(vrss 1) MiB; bytes identical"
