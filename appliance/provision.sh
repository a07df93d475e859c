#!/usr/bin/env bash
# Provisions this edge box's identity: writes the tenant, hospital and edge ids into the
# zenedge configuration and makes the edge's private key and certificate signing request
# (CSR) for enrolment with the hub; with --server-name, also the key and CSR of the server
# identity its TLS listeners present ([tls]); and the master key patient data at rest is
# sealed under (store.master_key_file), unless it exists. Safe to run again: an existing key is never
# replaced, ids already set are never changed (the event log remembers them), a CSR is remade
# only when missing or made for another name.
set -euo pipefail

CONFIG=/etc/zenedge/zenedge.toml
TLS_DIR=/etc/zenedge/tls
MASTER_KEY=""
TENANT=""
HOSPITAL=""
EDGE=""
SERVER_NAME=""
SERVER_IPS=()

usage() {
    cat <<'EOF'
Usage: provision.sh --tenant ID --hospital ID --edge ID [--config FILE] [--tls-dir DIR]
                    [--master-key FILE] [--server-name DNS-NAME [--server-ip ADDRESS]...]

Sets the site identity of this zenedge edge box and prepares its hub enrolment:
  * writes tenant_id, hospital_id and edge_id into the [site] section of the config
    (placeholders are replaced; ids already set to other values are refused, because the
    event log on this box belongs to the site it was made for);
  * makes an EC P-256 private key, TLS_DIR/edge.key (0640, group zenedge), unless one exists:
    an existing key is never overwritten;
  * makes TLS_DIR/edge.csr, a certificate signing request with subject CN = edge id
    (O = tenant id, OU = hospital id), for the hub operator to sign;
  * with --server-name: makes the server identity of the TLS listeners (mllp.tls_listen,
    dicom.tls_listen, http.tls): an RSA 3072 key, TLS_DIR/server.key (0640, group zenedge),
    unless one exists, and TLS_DIR/server.csr with CN = DNS-NAME and the subject alternative
    names DNS:DNS-NAME and IP:ADDRESS for each --server-ip, for the hospital's CA to sign.
    RSA because DICOM modalities with DCMTK's default TLS profile need an RSA server key
    over TLS 1.2.
  * makes the master key patient data is sealed under (256 random bits as 64 hex digits,
    mode 0400, owned by the zenedge user) unless it exists: an existing master key is never
    replaced, since without it nothing sealed can be read. Keep a copy apart from the
    database backups.

IDs are 1-64 characters of A-Z a-z 0-9 . _ -

Options:
  --tenant ID      tenant id, as given by the hub operator
  --hospital ID    hospital id, as given by the hub operator
  --edge ID        this edge's id (also the CN of its client certificate)
  --config FILE    the configuration to edit (default /etc/zenedge/zenedge.toml)
  --tls-dir DIR    where edge.key and edge.csr go (default /etc/zenedge/tls)
  --master-key F   the master key file (default: store.master_key_file of the config, else
                   /etc/zenedge/master.key)
  --server-name N  the DNS name senders use to reach this box: make server.key and server.csr
  --server-ip A    an address senders use to reach this box (repeatable; with --server-name)
  -h, --help       this text

Then: send edge.csr to the hub operator; put the certificate they issue in TLS_DIR/edge.pem
and the hub's CA bundle in TLS_DIR/hub-ca.pem; set [sync] hub_url, ca_file, client_cert and
client_key; run `zenedge check-config FILE`; `systemctl restart zenedge`.
With --server-name: have the hospital's CA sign server.csr; put the certificate (then any
intermediates) in TLS_DIR/server.pem and the CA bundle of the senders' client certificates in
TLS_DIR/clients-ca.pem; set [tls] cert, key, client_ca and mllp.tls_listen / dicom.tls_listen;
check-config; `systemctl restart zenedge` (later renewals: `systemctl reload zenedge`).
EOF
}

die() {
    echo "provision.sh: $*" >&2
    exit 1
}

while [ $# -gt 0 ]; do
    case "$1" in
        --tenant) TENANT="${2:-}"; shift 2 ;;
        --hospital) HOSPITAL="${2:-}"; shift 2 ;;
        --edge) EDGE="${2:-}"; shift 2 ;;
        --config) CONFIG="${2:-}"; shift 2 ;;
        --tls-dir) TLS_DIR="${2:-}"; shift 2 ;;
        --master-key) MASTER_KEY="${2:-}"; shift 2 ;;
        --server-name) SERVER_NAME="${2:-}"; shift 2 ;;
        --server-ip) SERVER_IPS+=("${2:-}"); shift 2 ;;
        -h | --help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
done

valid_id() {
    [[ "$1" =~ ^[A-Za-z0-9._-]{1,64}$ ]]
}

for pair in "tenant:$TENANT" "hospital:$HOSPITAL" "edge:$EDGE"; do
    name="${pair%%:*}"
    value="${pair#*:}"
    [ -n "$value" ] || { usage >&2; die "--$name is required"; }
    valid_id "$value" || die "--$name '$value': must be 1-64 characters of A-Z a-z 0-9 . _ -"
done
if [ -n "$SERVER_NAME" ]; then
    [[ "$SERVER_NAME" =~ ^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$ ]] ||
        die "--server-name '$SERVER_NAME': not a DNS name"
fi
for ip in "${SERVER_IPS[@]}"; do
    [ -n "$SERVER_NAME" ] || die "--server-ip needs --server-name"
    [[ "$ip" =~ ^[0-9A-Fa-f:.]+$ ]] || die "--server-ip '$ip': not an IPv4 or IPv6 address"
done
[ -f "$CONFIG" ] || die "$CONFIG does not exist (is the zenedge package installed?)"
command -v openssl >/dev/null || die "openssl is needed (apt-get install openssl)"

# The value of KEY in the [site] section, without quotes ("" if absent).
site_value() {
    awk -v key="$1" '
        /^[[:space:]]*\[/ { in_site = ($0 ~ /^[[:space:]]*\[site\][[:space:]]*$/) }
        in_site && $0 ~ "^[[:space:]]*" key "[[:space:]]*=" {
            sub(/^[^=]*=[[:space:]]*"/, ""); sub(/".*$/, ""); print; exit
        }' "$CONFIG"
}

# Writes the three ids into [site]; refuses to change an id that is already set.
write_site() {
    local key value current changed=0
    for key in tenant_id hospital_id edge_id; do
        case "$key" in
            tenant_id) value="$TENANT" ;;
            hospital_id) value="$HOSPITAL" ;;
            edge_id) value="$EDGE" ;;
        esac
        current="$(site_value "$key")"
        if [ "$current" = "$value" ]; then
            continue
        fi
        if valid_id "$current"; then
            die "$CONFIG: site.$key is already \"$current\"; not changing it to \"$value\" (the event log belongs to that site; edit the file by hand if this box really moves)"
        fi
        changed=1
    done
    if [ "$changed" = 0 ]; then
        echo "$CONFIG: [site] already set (tenant $TENANT, hospital $HOSPITAL, edge $EDGE)"
        return
    fi
    local tmp
    tmp="$(mktemp)"
    awk -v t="$TENANT" -v h="$HOSPITAL" -v e="$EDGE" '
        /^[[:space:]]*\[/ { in_site = ($0 ~ /^[[:space:]]*\[site\][[:space:]]*$/) }
        in_site && /^[[:space:]]*tenant_id[[:space:]]*=/ { print "tenant_id = \"" t "\""; next }
        in_site && /^[[:space:]]*hospital_id[[:space:]]*=/ { print "hospital_id = \"" h "\""; next }
        in_site && /^[[:space:]]*edge_id[[:space:]]*=/ { print "edge_id = \"" e "\""; next }
        { print }' "$CONFIG" >"$tmp"
    # Rewritten in place: the file keeps its owner and mode (root:zenedge 0640).
    cat "$tmp" >"$CONFIG"
    rm -f "$tmp"
    echo "$CONFIG: [site] set to tenant $TENANT, hospital $HOSPITAL, edge $EDGE"
}

make_key() {
    local key="$TLS_DIR/edge.key"
    install -d -m 0750 "$TLS_DIR"
    if [ -e "$key" ]; then
        openssl pkey -in "$key" -noout 2>/dev/null || die "$key exists but is not a readable private key; not touching it"
        echo "$key: exists, kept"
        return
    fi
    (umask 0077 && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$key.tmp" 2>/dev/null)
    mv -n "$key.tmp" "$key"
    echo "$key: new EC P-256 key"
}

make_csr() {
    local key="$TLS_DIR/edge.key" csr="$TLS_DIR/edge.csr"
    if [ -f "$csr" ] && openssl req -in "$csr" -noout -subject -nameopt multiline 2>/dev/null |
        grep -qx "[[:space:]]*commonName[[:space:]]*= $EDGE"; then
        echo "$csr: exists for CN=$EDGE, kept"
        return
    fi
    openssl req -new -key "$key" -subj "/CN=$EDGE/O=$TENANT/OU=$HOSPITAL" -out "$csr.tmp" 2>/dev/null
    mv "$csr.tmp" "$csr"
    echo "$csr: certificate signing request for CN=$EDGE"
}

# The server identity of the TLS listeners: an RSA key (kept if present) and its CSR.
make_server() {
    local key="$TLS_DIR/server.key" csr="$TLS_DIR/server.csr" san="DNS:$SERVER_NAME" shown="DNS:$SERVER_NAME" ip
    for ip in "${SERVER_IPS[@]}"; do
        san="$san,IP:$ip"
        shown="$shown, IP Address:$ip"
    done
    if [ -e "$key" ]; then
        openssl pkey -in "$key" -noout 2>/dev/null || die "$key exists but is not a readable private key; not touching it"
        echo "$key: exists, kept"
    else
        (umask 0077 && openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:3072 -out "$key.tmp" 2>/dev/null)
        mv -n "$key.tmp" "$key"
        echo "$key: new RSA 3072 key"
    fi
    # Kept when it names exactly these (as `openssl req -text` prints them).
    if [ -f "$csr" ] && openssl req -in "$csr" -noout -text 2>/dev/null | sed 's/^ *//' | grep -qxF "$shown"; then
        echo "$csr: exists for $san, kept"
        return
    fi
    openssl req -new -key "$key" -subj "/CN=$SERVER_NAME/O=$TENANT/OU=$HOSPITAL" \
        -addext "subjectAltName=$san" -addext "extendedKeyUsage=serverAuth" -out "$csr.tmp" 2>/dev/null
    mv "$csr.tmp" "$csr"
    echo "$csr: certificate signing request for $san"
}

# The value of KEY in the [store] section, without quotes ("" if absent).
store_value() {
    awk -v key="$1" '
        /^[[:space:]]*\[/ { in_store = ($0 ~ /^[[:space:]]*\[store\][[:space:]]*$/) }
        in_store && $0 ~ "^[[:space:]]*" key "[[:space:]]*=" {
            sub(/^[^=]*=[[:space:]]*"/, ""); sub(/".*$/, ""); print; exit
        }' "$CONFIG"
}

# The master key of store.master_key_file: 64 hex digits, 0400, the daemon's user; kept if present.
make_master_key() {
    local key="${MASTER_KEY:-$(store_value master_key_file)}"
    key="${key:-/etc/zenedge/master.key}"
    if [ -e "$key" ]; then
        grep -qxE '[0-9a-fA-F]{64}' "$key" || die "$key exists but is not a master key (64 hex digits); not touching it"
        echo "$key: exists, kept"
        return
    fi
    install -d "$(dirname "$key")"
    (umask 0377 && od -An -vtx1 -N32 /dev/urandom | tr -d ' \n' >"$key.tmp" && echo >>"$key.tmp")
    if getent passwd zenedge >/dev/null && [ "$(id -u)" = 0 ]; then
        chown zenedge:zenedge "$key.tmp"
    fi
    chmod 0400 "$key.tmp"
    mv -n "$key.tmp" "$key"
    echo "$key: new master key (back it up apart from the database backups)"
}

# The daemon (group zenedge) reads the keys; nobody else does.
set_owner() {
    getent group zenedge >/dev/null || return 0
    [ "$(id -u)" = 0 ] || return 0
    local f
    chown root:zenedge "$TLS_DIR"
    chmod 0750 "$TLS_DIR"
    for f in edge server; do
        [ -f "$TLS_DIR/$f.key" ] || continue
        chown root:zenedge "$TLS_DIR/$f.key" "$TLS_DIR/$f.csr"
        chmod 0640 "$TLS_DIR/$f.key"
        chmod 0644 "$TLS_DIR/$f.csr"
    done
}

write_site
make_key
make_csr
[ -z "$SERVER_NAME" ] || make_server
set_owner
make_master_key
echo
if [ -n "$SERVER_NAME" ]; then
    echo "Next: send $TLS_DIR/edge.csr to the hub operator and $TLS_DIR/server.csr to the hospital's CA;"
    echo "then see provision.sh --help (\"Then:\")."
else
    echo "Next: send $TLS_DIR/edge.csr to the hub operator; then see provision.sh --help (\"Then:\")."
fi
