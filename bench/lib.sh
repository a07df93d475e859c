# Shared by the benchmark scripts: a throw-away zenedge config and a port wait.
# Expects $work (a temp dir) and $port; writes $work/zenedge.toml with MLLP on $mllp_port
# and DICOM on $dicom_port (both default to ports next to $port), HTTP on $port + 1.

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
listen = "127.0.0.1:${mllp_port:-$port}"
[dicom]
listen = "127.0.0.1:${dicom_port:-$((port + 2))}"
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
