# Shared by the benchmark scripts: a throw-away zenedge config, a port wait, the long runs' paths
# and the sync PKI.
# write_config expects $work (a temp dir) and $port; writes $work/zenedge.toml with MLLP on $mllp_port
# and DICOM on $dicom_port (both default to ports next to $port), HTTP on $port + 1; STORE_TOML=
# lines go into its [store] table.

write_config() {
  cat >"$work/zenedge.toml" <<TOML
[site]
tenant_id = "bench"
hospital_id = "bench"
edge_id = "bench"
[store]
state_dir = "$work/state"
disk_reserve = "1GiB"
${STORE_TOML:-}
[mllp]
listen = "127.0.0.1:${mllp_port:-$port}"
[dicom]
listen = "127.0.0.1:${dicom_port:-$((port + 2))}"
[http]
listen = "127.0.0.1:$((port + 1))"
# Load from one address: far above any offered rate (the per-address limit is not measured).
requests_per_second = 1000000
[daemon]
log_level = "warn"
TOML
}

# long_run_paths OUT: the long runs' inputs and results, as absolute paths: $bin (ZENEDGE_BIN_DIR,
# else target/release built here), $tools (BENCH_TOOLS, else ../shared/tools), $py (PEERS_VENV's
# python3, else python3) and $out (OUT, else a new temp dir, made if missing).
long_run_paths() {
  tools=${BENCH_TOOLS:-../shared/tools}
  py=${PEERS_VENV:-/tmp/zenedge-peers-venv}/bin/python3
  [ -x "$py" ] || py=python3
  if [ -z "${ZENEDGE_BIN_DIR:-}" ]; then
    cargo build --release --locked --bins >/dev/null
    bin=${CARGO_TARGET_DIR:-target}/release
  else
    bin=$ZENEDGE_BIN_DIR
  fi
  bin=$(cd "$bin" && pwd)
  tools=$(cd "$tools" && pwd)
  out=${1:-$(mktemp -d)}
  mkdir -p "$out"
  out=$(cd "$out" && pwd)
}

# hub_stored_through GET EDGE: the hub's stored_through for EDGE, GET being a function that
# fetches a hub path (curl -f); 0 when the hub never heard of the edge (404) or cannot be read.
hub_stored_through() {
  local json
  json=$("$1" "/v1/edges/$2") || { echo 0; return 0; }
  printf '%s' "$json" | sed -n 's/.*"stored_through":\([0-9]*\).*/\1/p'
}

# api_auth: the curl header that authenticates as the local operator (the token the daemon
# wrote to its state directory at start; this script runs as the daemon's user).
api_auth() {
  printf 'Authorization: Bearer %s' "$(cat "$work/state/local-api.token")"
}

wait_port() {
  for _ in $(seq 100); do
    (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return
    sleep 0.05
  done
  echo "port $1 never opened" >&2
  exit 1
}

# enable_sync WORK HUB_PORT CA_CN DAYS: a test CA, a hub certificate for localhost and an
# edge client certificate (CN bench) under WORK/pki (sets $pki), and a [sync] section pointing
# WORK/zenedge.toml at https://localhost:HUB_PORT with them.
enable_sync() {
  local work=$1 hub_port=$2 ca_cn=$3 days=$4
  pki=$work/pki
  mkdir -p "$pki"
  (
    cd "$pki"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days "$days" -subj "/CN=$ca_cn" \
      -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
      -keyout ca.key -out ca.pem 2>/dev/null
    leaf() { # name cn ext
      openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$2" -keyout "$1.key" -out "$1.csr" 2>/dev/null
      openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days "$days" -extfile <(printf '%s\n' "$3") \
        -out "$1.pem" 2>/dev/null
    }
    leaf hub localhost "subjectAltName=DNS:localhost,IP:127.0.0.1
extendedKeyUsage=serverAuth"
    leaf edge bench "subjectAltName=DNS:bench
extendedKeyUsage=clientAuth"
  )
  cat >>"$work/zenedge.toml" <<TOML
[sync]
hub_url = "https://localhost:$hub_port"
ca_file = "$pki/ca.pem"
client_cert = "$pki/edge.pem"
client_key = "$pki/edge.key"
TOML
}

# pg_start DIR PORT: a PostgreSQL server from the distribution's packages (the newest under
# /usr/lib/postgresql, or PG_BIN) with its data in DIR/pgdata, on 127.0.0.1:PORT, with the
# server's durable defaults (fsync, synchronous_commit on). As root it runs as the postgres
# user. Sets $pg_bin and $pg_run (the command prefix); pg_stop DIR stops it.
pg_start() {
  local dir=$1 port=$2
  pg_bin=${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}
  [ -x "$pg_bin/initdb" ] || { echo "PostgreSQL is not installed (apt-get install postgresql)" >&2; exit 1; }
  pg_run=()
  if [ "$(id -u)" = 0 ]; then
    pg_run=(runuser -u postgres --)
    chown postgres: "$dir"
  fi
  "${pg_run[@]}" "$pg_bin/initdb" -D "$dir/pgdata" --auth=trust -U postgres -E UTF8 --locale=C >/dev/null
  "${pg_run[@]}" "$pg_bin/pg_ctl" -D "$dir/pgdata" -l "$dir/pg.log" -w \
    -o "-c listen_addresses=127.0.0.1 -k $dir -p $port -c shared_buffers=512MB -c max_wal_size=4GB ${PG_OPTS:-}" start >/dev/null
}

pg_stop() {
  "${pg_run[@]}" "$pg_bin/pg_ctl" -D "$1/pgdata" -m fast -w stop >/dev/null 2>&1 || true
}

# pg_fresh_db PORT NAME: drops and creates database NAME.
pg_fresh_db() {
  "$pg_bin/psql" -X -q -h 127.0.0.1 -p "$1" -U postgres -d postgres -c "DROP DATABASE IF EXISTS $2" -c "CREATE DATABASE $2"
}

# ab_summary RESULTS: the median [min-max] of each figure for build A and build B, and B/A,
# from lines "TAG FIGURE VALUE" (TAG is A or B), as bench/ab.sh and bench/hub-ab.sh write them.
ab_summary() {
  python3 - "$1" <<'PY'
import collections, statistics, sys
runs = collections.defaultdict(list)
for line in open(sys.argv[1]):
    tag, figure, rate = line.split()
    runs[(figure, tag)].append(float(rate))
width = max([len(f) for f, _ in runs] + [6])
print(f"{'figure':{width}} {'A median [min-max]':>24} {'B median [min-max]':>24}  B/A")
for f in sorted({f for f, _ in runs}):
    a, b = runs[(f, "A")], runs[(f, "B")]
    cell = lambda r: f"{statistics.median(r):.0f} [{min(r):.0f}-{max(r):.0f}]"
    print(f"{f:{width}} {cell(a):>24} {cell(b):>24}  {statistics.median(b) / statistics.median(a):.2f}")
PY
}

# The read API's paths as the matching and access benchmarks request them ({study},
# {accession}, {patient} and {exam} are filled in by zenedge-load from the corpus).
read_api_paths=(
  '/api/v1/studies/{study}'
  '/api/v1/orders?accession={accession}'
  '/api/v1/studies?patient_id={patient}'
  '/api/v1/cases?patient_id={patient}'
  '/api/v1/matches?accession={accession}'
  '/api/v1/unmatched/orders?limit=50'
  '/api/v1/unmatched/studies?limit=50'
  '/api/v1/events?after={exam}&limit=100'
)
