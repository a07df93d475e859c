#!/usr/bin/env bash
# Fast checks of the packaging files (seconds; no package is built):
#   * packaging/zenedge.toml has the same sections and keys as config.example.toml;
#   * check-config refuses it unconfigured (exit 78, naming the placeholder) and accepts it
#     once appliance/provision.sh has set the site ids (hub key and CSR, and the TLS
#     listeners' RSA server key and CSR, made in a temp dir; a second run keeps them);
#   * the unit passes `systemd-analyze verify` and its exposure is at most 2.0;
#   * the shell and python scripts parse (and pass shellcheck, when installed); the nftables
#     template passes `nft -c` (as root, with nft).
# Tools that are missing are reported and their check skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

fail() {
    echo "packaging/check.sh: FAILED: $*" >&2
    exit 1
}
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# Sections and keys, as "section.key" lines (comments and values ignored).
keys() {
    awk '/^\[/ { section = $0; gsub(/[][]/, "", section) }
         /^[A-Za-z0-9_]+[[:space:]]*=/ { key = $1; sub(/=.*/, "", key); print section "." key }' "$1" | sort
}
if ! diff <(keys config.example.toml) <(keys packaging/zenedge.toml) >"$tmp/keys.diff"; then
    cat "$tmp/keys.diff"
    fail "packaging/zenedge.toml and config.example.toml have different keys (< example, > packaged)"
fi
echo "packaged config: same keys as config.example.toml"

cargo build --locked --quiet --bin zenedge
zenedge="$PWD/target/debug/zenedge"
set +e
out="$("$zenedge" check-config packaging/zenedge.toml 2>&1)"
rc=$?
set -e
[ "$rc" = 78 ] || fail "check-config on the unconfigured packaged config exited $rc, expected 78"
grep -q 'site.tenant_id: "CHANGE ME"' <<<"$out" || fail "check-config does not name the placeholder: $out"
cp packaging/zenedge.toml "$tmp/zenedge.toml"
if command -v openssl >/dev/null; then
    appliance/provision.sh --tenant tenant-1 --hospital hospital-1 --edge edge-1 \
        --server-name edge-1.hospital.example --server-ip 10.0.0.5 \
        --config "$tmp/zenedge.toml" --tls-dir "$tmp/tls" --master-key "$tmp/master.key" >/dev/null
    openssl req -in "$tmp/tls/edge.csr" -noout -verify 2>/dev/null || fail "provision.sh made an invalid CSR"
    openssl req -in "$tmp/tls/server.csr" -noout -verify 2>/dev/null || fail "provision.sh made an invalid server CSR"
    openssl req -in "$tmp/tls/server.csr" -noout -text | grep -q "DNS:edge-1.hospital.example, IP Address:10.0.0.5" ||
        fail "the server CSR does not name the server"
    openssl pkey -in "$tmp/tls/server.key" -noout -text 2>/dev/null | grep -q "3072 bit" ||
        fail "provision.sh did not make an RSA 3072 server key"
    [ "$(stat -c %a "$tmp/master.key")" = 400 ] && grep -qxE '[0-9a-f]{64}' "$tmp/master.key" ||
        fail "provision.sh did not make a master key of 64 hex digits, mode 0400"
    # Run again: the keys are kept, and so is the CSR that names the same server.
    before="$(sha256sum "$tmp/tls/server.key" "$tmp/tls/server.csr" "$tmp/master.key")"
    appliance/provision.sh --tenant tenant-1 --hospital hospital-1 --edge edge-1 \
        --server-name edge-1.hospital.example --server-ip 10.0.0.5 \
        --config "$tmp/zenedge.toml" --tls-dir "$tmp/tls" --master-key "$tmp/master.key" >/dev/null
    [ "$before" = "$(sha256sum "$tmp/tls/server.key" "$tmp/tls/server.csr" "$tmp/master.key")" ] ||
        fail "provision.sh run again changed the server key, its CSR or the master key"
else
    echo "openssl is not installed: provision.sh not run; site ids set with sed"
    sed -i 's/"CHANGE ME"/"site-1"/' "$tmp/zenedge.toml"
fi
"$zenedge" check-config "$tmp/zenedge.toml" >/dev/null || fail "the provisioned packaged config does not pass check-config"
echo "packaged config: refused until configured, accepted after provision.sh"

for f in packaging/debian/postinst packaging/debian/prerm packaging/debian/postrm; do
    sh -n "$f" || fail "$f does not parse"
done
for f in packaging/*.sh packaging/test/lib.sh appliance/provision.sh; do
    bash -n "$f" || fail "$f does not parse"
done
for f in packaging/test/*.py; do
    python3 -c 'import ast, sys; ast.parse(open(sys.argv[1]).read(), sys.argv[1])' "$f" || fail "$f does not parse"
done
# Warnings and errors; not the info-level notes (e.g. SC2016 on deliberately single-quoted
# dpkg-query formats).
if command -v shellcheck >/dev/null; then
    shellcheck -S warning -x packaging/debian/postinst packaging/debian/prerm packaging/debian/postrm \
        packaging/*.sh packaging/test/lib.sh appliance/provision.sh || fail "shellcheck"
fi

if command -v systemd-analyze >/dev/null; then
    sed "s|/usr/bin/zenedge|$zenedge|g" systemd/zenedge.service >"$tmp/zenedge.service"
    systemd-analyze verify "$tmp/zenedge.service" || fail "systemd-analyze verify systemd/zenedge.service"
    exposure="$(systemd-analyze security --offline=true systemd/zenedge.service 2>/dev/null |
        sed -n 's/.*Overall exposure level for zenedge.service: \([0-9.]*\).*/\1/p')"
    [ -n "$exposure" ] || fail "systemd-analyze security printed no exposure level"
    awk -v e="$exposure" 'BEGIN { exit !(e <= 2.0) }' || fail "the unit's exposure is $exposure, above 2.0"
    echo "unit: systemd-analyze verify ok, exposure $exposure (at most 2.0)"
else
    echo "systemd-analyze is not installed: the unit is not checked"
fi

if command -v nft >/dev/null && [ "$(id -u)" = 0 ]; then
    nft -c -f appliance/nftables.conf.template || fail "nft -c appliance/nftables.conf.template"
    echo "nftables template: nft -c ok"
else
    echo "nft is not installed or not root: the nftables template is not checked"
fi
