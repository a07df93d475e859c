# Shared by the benchmark scripts: a throw-away zenedge config and a port wait.
# Expects $work (a temp dir) and $port; writes $work/zenedge.toml.

write_config() {
  cat >"$work/zenedge.toml" <<TOML
[site]
tenant_id = "bench"
hospital_id = "bench"
edge_id = "bench"
[store]
state_dir = "$work/state"
disk_reserve = "1GiB"
[mllp]
listen = "127.0.0.1:$port"
[http]
listen = "127.0.0.1:$((port + 1))"
[daemon]
log_level = "warn"
TOML
}

wait_port() {
  for _ in $(seq 100); do
    (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return
    sleep 0.05
  done
  echo "port $1 never opened" >&2
  exit 1
}
