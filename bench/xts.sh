#!/bin/sh
# card-ebs encryption throughput as a fraction of OpenSSL's own AES-256-XTS
# on one core (goal >= 0.8).  Both run here, one after the other.
# usage: bench/xts.sh BUILD_DIR
BUILD=${1:-build}
SECS=${BENCH_SECONDS:-3}
ossl=$(openssl speed -evp aes-256-xts -bytes 4096 -seconds "$SECS" 2>/dev/null |
	awk 'tolower($1) == "aes-256-xts" { v = $2; sub(/k$/, "", v); print v * 1000 / 1e6 }')
out=$("$BUILD/bench/flint-xts-speed" "$SECS" 4096)
enc=$(echo "$out" | sed -n 's/xts_encrypt_mbps=//p')
dec=$(echo "$out" | sed -n 's/xts_decrypt_mbps=//p')
echo "BENCH openssl speed -evp aes-256-xts (4096-byte blocks, 1 core): ${ossl} MB/s"
echo "BENCH card-ebs XTS layer, 4096-byte sectors, 1 MiB I/O: encrypt ${enc} MB/s, decrypt ${dec} MB/s"
awk -v e="$enc" -v d="$dec" -v o="$ossl" 'BEGIN {
	if (o > 0) printf "RATIO card-ebs encryption / openssl: encrypt %.2f, decrypt %.2f (goal >= 0.8)\n", e / o, d / o
	else print "RATIO card-ebs encryption / openssl: nan (openssl speed failed)" }'
