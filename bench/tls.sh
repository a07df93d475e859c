#!/usr/bin/env bash
# TLS against plaintext on the intake ports, behind BENCHMARKS.md: the same daemon build with
# both listeners, each run on a fresh state directory, the TLS and plain runs of every workload
# back to back (their order swapped every repeat) so they share the machine's noise.
#   * MLLP orders at 1 and 32 connections (zenedge-load mllp, with --tls-ca/--tls-cert for TLS):
#     msgs/s and ACK p99, connections opened before the measured phase;
#   * connections opened and closed one at a time and 8 at a time (zenedge-load handshakes):
#     the cost of a full TLS handshake, apart from the messages;
#   * C-STORE of the tiny and large sets over 1 and 4 associations (DCMTK storescu through
#     dicom_load.py, `+tls` with a client certificate for TLS; DCMTK's default profile).
# Certificates: RSA 3072 server key (what provision.sh makes), EC P-256 client keys and CA.
# Prints the load average before and after, every run, and median [min-max] tables.
#
# usage: bench/tls.sh [SECONDS=5] [REPEATS=5]
# Needs ../shared/tools (dicom_load.py, gen_corpus.py), DCMTK and openssl, like bench/dicom.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-5}
repeats=${2:-5}
tools=${BENCH_TOOLS:-../shared/tools}
venv=${PEERS_VENV:-/tmp/zenedge-peers-venv}
corpus=${BENCH_CORPUS:-/tmp/zenedge-bench-corpus}
cargo build --release --locked --bins >/dev/null
bin=${CARGO_TARGET_DIR:-target}/release
[ -d "$corpus/dicom/tiny" ] || "$venv/bin/python3" "$tools/gen_corpus.py" "$corpus" --studies 8 --series 2 \
  --instances 25 --tiny 1000 --tiny-per-study 20 >/dev/null
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
results=$work/results
port=$((20000 + RANDOM % 20000))
dicom_port=$((port + 2)) mllp_tls=$((port + 3)) dicom_tls=$((port + 4))
# shellcheck source=bench/lib.sh
. bench/lib.sh

pki=$work/pki
mkdir -p "$pki"
(
  cd "$pki"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 365 -subj "/CN=bench CA" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
    -keyout ca.key -out ca.pem 2>/dev/null
  openssl req -newkey rsa:3072 -nodes -subj "/CN=localhost" -keyout server.key -out server.csr 2>/dev/null
  openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 365 -out server.pem \
    -extfile <(printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n') 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=bench-client" \
    -keyout client.key -out client.csr 2>/dev/null
  openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 365 -out client.pem \
    -extfile <(printf 'subjectAltName=DNS:bench-client\nextendedKeyUsage=clientAuth\n') 2>/dev/null
)
tls_client=(--tls-ca "$pki/ca.pem" --tls-cert "$pki/client.pem" --tls-key "$pki/client.key")

start() { # a daemon on a fresh state directory, plain and TLS listeners both
  rm -rf "$work/state"
  write_config
  sed -i -e "s|^\[mllp\]$|[mllp]\ntls_listen = \"127.0.0.1:$mllp_tls\"|" \
    -e "s|^\[dicom\]$|[dicom]\ntls_listen = \"127.0.0.1:$dicom_tls\"|" "$work/zenedge.toml"
  cat >>"$work/zenedge.toml" <<TOML
[tls]
cert = "$pki/server.pem"
key = "$pki/server.key"
client_ca = "$pki/ca.pem"
TOML
  "$bin/zenedge" serve --config "$work/zenedge.toml" &
  pid=$!
  wait_port "$port"; wait_port "$mllp_tls"; wait_port "$dicom_tls"
  for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$((port + 1))/readyz" >/dev/null && return
    sleep 0.05
  done
  echo "the daemon never became ready" >&2
  exit 1
}

stop() { kill "$pid"; wait "$pid" 2>/dev/null || true; }

mllp() { # mode connections
  local extra=()
  [ "$1" = tls ] && extra=(--addr "127.0.0.1:$mllp_tls" "${tls_client[@]}") || extra=(--addr "127.0.0.1:$port")
  "$bin/zenedge-load" mllp --duration "${secs}s" --warmup 1s -c "$2" --json "${extra[@]}" |
    python3 -c "import json,sys; d=json.load(sys.stdin); print('$1 mllp-c$2', d['msgs_per_s'], d['latency_ms']['p99'], d['connect_ms']['p50'], d['acked'] - d['acked_by_code']['AA'] - d['acked_by_code']['CA'] + d['warmup_failed'] + d['errors']['timeouts'] + d['errors']['disconnects'] + d['errors']['bad_frames'])"
}

handshakes() { # mode concurrency
  local extra=()
  [ "$1" = tls ] && extra=(--addr "127.0.0.1:$mllp_tls" "${tls_client[@]}") || extra=(--addr "127.0.0.1:$port")
  "$bin/zenedge-load" handshakes --count 500 --concurrency "$2" --threads 2 --json "${extra[@]}" |
    python3 -c "import json,sys; d=json.load(sys.stdin); print('$1 connect-x$2', d['per_s'], d['latency_ms']['p99'], d['latency_ms']['p50'], d['failed'])"
}

cstore() { # mode set associations
  local extra=()
  [ "$1" = tls ] && extra=(127.0.0.1 "$dicom_tls") || extra=(127.0.0.1 "$dicom_port")
  local opts=()
  [ "$1" = tls ] && opts=(-- +tls "$pki/client.key" "$pki/client.pem" +cf "$pki/ca.pem")
  python3 "$tools/dicom_load.py" "${extra[@]}" "$corpus/dicom/$2" -j "$3" --aec ZENEDGE --json "${opts[@]}" |
    python3 -c "import json,sys; d=json.load(sys.stdin); print('$1 $2-j$3', d['instances_per_s'], d['MB_per_s'], 0, d['failure'] + d['unanswered'])"
}

echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq "$repeats"); do
  modes=(plain tls)
  [ $((r % 2)) = 0 ] && modes=(tls plain)
  for workload in "mllp 1" "mllp 32" "handshakes 1" "handshakes 8" \
    "cstore tiny 1" "cstore tiny 4" "cstore large 1" "cstore large 4"; do
    for mode in "${modes[@]}"; do
      # shellcheck disable=SC2086 # the workload's words are its function and arguments
      set -- $workload
      start
      "$1" "$mode" "${@:2}"
      stop
    done
  done
done | tee "$results"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"

python3 - "$results" <<'PY'
import collections, statistics, sys
runs = collections.defaultdict(list)
for line in open(sys.argv[1]):
    mode, workload, rate, second, third, failed = line.split()
    runs[(workload, mode)].append((float(rate), float(second), float(third), int(float(failed))))
def cell(rows, i, fmt):
    values = [r[i] for r in rows]
    return f"{statistics.median(values):{fmt}} [{min(values):{fmt}}-{max(values):{fmt}}]"
# The ratio is taken per pair (the TLS and plain runs of one repeat, back to back), then its
# median: the load of a shared machine drifts between repeats more than within a pair.
print("| workload | plain | TLS | TLS/plain (paired) | plain p99 ms | TLS p99 ms |")
print("| --- | ---: | ---: | ---: | ---: | ---: |")
workloads = list(dict.fromkeys(w for w, _ in runs))
for w in [w for w in workloads if not w.startswith("connect")]:
    p, t = runs[(w, "plain")], runs[(w, "tls")]
    ratios = [(b[0] / a[0], 0, 0, 0) for a, b in zip(p, t)]
    p99 = lambda rows: cell(rows, 1, ".2f") if w.startswith("mllp") else "–"
    print(f"| {w} | {cell(p, 0, ',.0f')} | {cell(t, 0, ',.0f')} | {cell(ratios, 0, '.2f')} | {p99(p)} | {p99(t)} |")
print()
for w in [w for w in workloads if w.startswith("mllp")]:
    print(f"{w}: connect (and handshake) p50 ms of the run's connections: plain {cell(runs[(w, 'plain')], 2, '.2f')}, "
          f"TLS {cell(runs[(w, 'tls')], 2, '.2f')}")
# A plain connect is the kernel's work alone: its rate measures how fast the client can
# connect and close, so only its latency is shown beside the TLS handshakes.
for w in [w for w in workloads if w.startswith("connect")]:
    p, t = runs[(w, "plain")], runs[(w, "tls")]
    print(f"{w}: TLS handshakes/s {cell(t, 0, ',.0f')}, p50 ms {cell(t, 2, '.2f')}, p99 ms {cell(t, 1, '.2f')}; "
          f"plain connect p50 ms {cell(p, 2, '.3f')}")
failed = {k: sum(r[3] for r in v) for k, v in runs.items() if sum(r[3] for r in v)}
print("\nruns with failures (NACKed messages, failed connections, instances not stored):", failed or "none")
PY
