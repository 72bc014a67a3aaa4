# The body of the join script; render_join_script() prepends the values (see node_join.py).
set -eu
STATE=/var/lib/mothership-node
say() { echo "mothership-join: $*" >&2; }
fail() { echo "mothership-join: error: $*" >&2; exit 1; }

while [ $# -gt 0 ]; do
  case "$1" in
    --token-file) JOIN_TOKEN=$(cat "$2") || fail "cannot read --token-file $2"; shift 2 ;;
    --node-name) NODE_NAME=$2; shift 2 ;;
    --preinstalled) PREINSTALLED=1; shift ;;
    *) fail "unknown argument $1 (known: --token-file FILE, --node-name NAME, --preinstalled)" ;;
  esac
done

[ "$(id -u)" = 0 ] || fail "run this as root (it installs and starts the node components)"
if command -v curl >/dev/null 2>&1; then FETCH=curl
elif command -v wget >/dev/null 2>&1; then FETCH=wget
else fail "neither curl nor wget is installed; install one of them"; fi
for tool in base64 gunzip sha256sum tar sed; do
  command -v "$tool" >/dev/null 2>&1 || fail "'$tool' is not installed"
done
case "$(uname -m)" in
  x86_64|amd64) ARCH=amd64 ;; aarch64|arm64) ARCH=arm64 ;;
  *) fail "unsupported machine architecture $(uname -m) (amd64 and arm64 are)" ;;
esac
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
[ -e "$STATE/installed" ] && fail "this machine already joined a cluster; run $LEAVE first" || true

# --- 1. the token, before anything is installed --------------------------------------------
printf '%s' "$JOIN_TOKEN" | base64 -d 2>/dev/null | gunzip > "$WORK/bootstrap.conf" 2>/dev/null \
  || fail "the join token is malformed: it is not base64 of a gzipped kubeconfig; copy it again"
field() { sed -n "s/^ *$1: *['\"]\{0,1\}\([^'\"]*\)['\"]\{0,1\} *\$/\1/p" "$WORK/bootstrap.conf" | head -n 1; }
SERVER=$(field server); CA_DATA=$(field certificate-authority-data); TOKEN=$(field token)
[ -n "$SERVER" ] && [ -n "$CA_DATA" ] && [ -n "$TOKEN" ] \
  || fail "the join token is malformed: its kubeconfig lacks the server, the CA or the token"
printf '%s' "$CA_DATA" | base64 -d > "$WORK/ca.crt" 2>/dev/null \
  || fail "the join token is malformed: its CA is not base64"
sha=$(sha256sum "$WORK/ca.crt" | cut -d' ' -f1)
[ "$sha" = "$CA_SHA256" ] || fail "this token is for another cluster: its CA (sha256 $sha) is not the CA of $CLUSTER (sha256 $CA_SHA256); use a token of $CLUSTER"
if [ -n "$EXPIRES_AT" ] && [ "$(date +%s)" -ge "$EXPIRES_AT" ]; then
  fail "the join token expired at $EXPIRES_TEXT; ask for a new one (mothership token create ${CLUSTER#*/} --join-command)"
fi

api_check() {
  url="$SERVER/apis/certificates.k8s.io/v1/certificatesigningrequests?limit=1"
  if [ "$FETCH" = curl ]; then
    rc=0; code=$(curl -sS -o "$WORK/answer" -w '%{http_code}' --connect-timeout 10 --max-time 30 \
      --cacert "$WORK/ca.crt" -H "Authorization: Bearer $TOKEN" "$url" 2>"$WORK/err") || rc=$?
    case "$rc" in
      0) ;;
      35|51|58|60|77|83|90|91) code=tls ;;
      *) code=unreachable ;;
    esac
  else
    rc=0; wget -q -O "$WORK/answer" -T 30 --ca-certificate="$WORK/ca.crt" \
      --header="Authorization: Bearer $TOKEN" "$url" 2>"$WORK/err" || rc=$?
    case "$rc" in
      0) code=200 ;; 5) code=tls ;; 6) code=401 ;; 8) code=http ;; *) code=unreachable ;;
    esac
  fi
  case "$code" in
    200) ;;
    401) fail "the API server of $CLUSTER refused the token (401): it was revoked (its JoinTokenRequest deleted) or it expired; ask for a new one" ;;
    tls) fail "the API server at $SERVER does not present a certificate of this token's CA: the token is for another cluster, or something intercepts TLS ($(cat "$WORK/err"))" ;;
    unreachable) fail "cannot reach the API server of $CLUSTER at $SERVER ($(cat "$WORK/err")); this machine must be able to open TCP connections to it" ;;
    *) fail "the API server at $SERVER answered $code to the token check: $(head -c 300 "$WORK/answer" 2>/dev/null)" ;;
  esac
}
api_check
say "token accepted by $SERVER ($CLUSTER)"

# --- 2. the node components -----------------------------------------------------------------
download() {  # URL FILE
  say "downloading $1"
  if [ "$FETCH" = curl ]; then
    curl -fsSL --retry 3 --connect-timeout 15 -o "$2" "$1" 2>"$WORK/err" || fail "download of $1 failed: $(cat "$WORK/err")"
  else
    wget -q -T 60 -O "$2" "$1" 2>"$WORK/err" || fail "download of $1 failed: $(cat "$WORK/err")"
  fi
}
url() { eval "printf '%s' \"$1\""; }  # fills in ${ARCH}
BIN=/usr/local/bin
if [ "$PREINSTALLED" = 1 ]; then
  missing=""
  for b in kubelet containerd containerd-shim-runc-v2 runc; do command -v "$b" >/dev/null 2>&1 || missing="$missing $b"; done
  for p in bridge host-local loopback portmap; do [ -x "/opt/cni/bin/$p" ] || missing="$missing /opt/cni/bin/$p"; done
  [ -z "$missing" ] || fail "--preinstalled, but these are missing:$missing"
  KUBELET=$(command -v kubelet); CONTAINERD=$(command -v containerd); RUNC=$(command -v runc)
else
  download "$(url "$KUBELET_URL")" "$WORK/kubelet"
  download "$(url "$CONTAINERD_URL")" "$WORK/containerd.tgz"
  download "$(url "$RUNC_URL")" "$WORK/runc"
  download "$(url "$CNI_URL")" "$WORK/cni.tgz"
  mkdir -p "$WORK/containerd" "$WORK/cni"
  tar -xzf "$WORK/containerd.tgz" -C "$WORK/containerd" || fail "the containerd archive is damaged"
  tar -xzf "$WORK/cni.tgz" -C "$WORK/cni" || fail "the CNI plugins archive is damaged"
  for f in "$WORK/containerd/bin/containerd" "$WORK/containerd/bin/containerd-shim-runc-v2" "$WORK/cni/bridge" "$WORK/cni/host-local" "$WORK/cni/loopback" "$WORK/cni/portmap"; do
    [ -f "$f" ] || fail "$(basename "$f") is missing from the downloaded archive"
  done
  KUBELET=$BIN/kubelet; CONTAINERD=$BIN/containerd; RUNC=$BIN/runc
fi

# From here on the machine changes; every file written is recorded for the leave command.
mkdir -p "$STATE"
: > "$STATE/installed.tmp"
record() { echo "$1" >> "$STATE/installed.tmp"; }
install_bin() { mkdir -p "$(dirname "$2")"; cp "$1" "$2.mothership-new"; chmod 0755 "$2.mothership-new"; mv -f "$2.mothership-new" "$2"; record "$2"; }
write_file() { mkdir -p "$(dirname "$1")"; printf '%s' "$3" > "$1"; chmod "$2" "$1"; record "$1"; }
if [ "$PREINSTALLED" = 0 ]; then
  install_bin "$WORK/kubelet" "$BIN/kubelet"
  for b in containerd containerd-shim-runc-v2 ctr; do
    [ -f "$WORK/containerd/bin/$b" ] && install_bin "$WORK/containerd/bin/$b" "$BIN/$b"
  done
  install_bin "$WORK/runc" "$BIN/runc"
  for p in "$WORK"/cni/*; do install_bin "$p" "/opt/cni/bin/$(basename "$p")"; done
fi

# --- 3. configuration --------------------------------------------------------------------------
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then INIT=systemd; else INIT=plain; fi
if [ "$INIT" = systemd ]; then CGROUP_DRIVER=systemd; SYSTEMD_CGROUP=true; else CGROUP_DRIVER=cgroupfs; SYSTEMD_CGROUP=false; fi
# Without CAP_SYS_RESOURCE (a container, a VM sandbox) the kubelet's oom_score_adj cannot be set.
cap=$(sed -n 's/^CapEff:[[:space:]]*//p' /proc/self/status)
if [ $(( 0x$cap >> 24 & 1 )) = 1 ]; then RESTRICT_OOM=false; else RESTRICT_OOM=true; fi
RESOLV_CONF=/etc/resolv.conf
[ -f /run/systemd/resolve/resolv.conf ] && RESOLV_CONF=/run/systemd/resolve/resolv.conf
expand() { eval "cat <<MOTHERSHIP_EOF
$1
MOTHERSHIP_EOF"; }
write_file /etc/kubernetes/pki/ca.crt 0644 "$(cat "$WORK/ca.crt")
"
write_file /etc/kubernetes/bootstrap-kubelet.conf 0600 "$(cat "$WORK/bootstrap.conf")
"
write_file /var/lib/kubelet/config.yaml 0644 "$(expand "$KUBELET_CONFIG")
"
write_file /etc/mothership-node/containerd.toml 0644 "$(expand "$CONTAINERD_CONFIG")
"
if [ -n "$REGISTRY_MIRROR" ]; then
@MIRROR_FILES@
fi
mkdir -p /etc/cni/net.d /var/log/mothership-node
record /etc/kubernetes/kubelet.conf
record /var/lib/kubelet
record /var/lib/containerd
record /run/containerd
record /etc/cni/net.d
record /var/log/mothership-node

KUBELET_ARGS="--config=/var/lib/kubelet/config.yaml --bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf --kubeconfig=/etc/kubernetes/kubelet.conf --cert-dir=/var/lib/kubelet/pki"
[ -n "$NODE_NAME" ] && KUBELET_ARGS="$KUBELET_ARGS --hostname-override=$NODE_NAME"
[ -n "$NODE_LABELS" ] && KUBELET_ARGS="$KUBELET_ARGS --node-labels=$NODE_LABELS"
[ -n "$NODE_TAINTS" ] && KUBELET_ARGS="$KUBELET_ARGS --register-with-taints=$NODE_TAINTS"
[ -n "$KUBELET_EXTRA_ARGS" ] && KUBELET_ARGS="$KUBELET_ARGS $KUBELET_EXTRA_ARGS"
CONTAINERD_ARGS="--config /etc/mothership-node/containerd.toml"

# --- 4. services ---------------------------------------------------------------------------------
write_file "$LEAVE" 0755 "$LEAVE_SCRIPT"
echo "$INIT" > "$STATE/init"
if [ "$INIT" = systemd ]; then
  unit() {  # NAME EXEC AFTER
    write_file "/etc/systemd/system/mothership-$1.service" 0644 "[Unit]
Description=mothership node: $1
After=network-online.target $3
[Service]
ExecStart=$2
Restart=always
RestartSec=2
Delegate=yes
KillMode=process
LimitNOFILE=1048576
[Install]
WantedBy=multi-user.target
"
  }
  unit containerd "$CONTAINERD $CONTAINERD_ARGS" ""
  unit kubelet "$KUBELET $KUBELET_ARGS" mothership-containerd.service
  systemctl daemon-reload
  systemctl enable --now mothership-containerd.service mothership-kubelet.service
else
  write_file "$BIN/mothership-node-service" 0755 '#!/bin/sh
# Keeps one node component running (restarts it 2 s after it exits); mothership-node-leave stops it.
name=$1; shift
echo $$ > /run/mothership-node/$name.pid
while :; do
  "$@" >> /var/log/mothership-node/$name.log 2>&1 < /dev/null || true
  echo "mothership-node-service: $name exited, restarting in 2s" >> /var/log/mothership-node/$name.log
  sleep 2
done
'
  mkdir -p /run/mothership-node
  start() { name=$1; shift; setsid "$BIN/mothership-node-service" "$name" "$@" > /dev/null 2>&1 < /dev/null & }
  start containerd $CONTAINERD $CONTAINERD_ARGS
  start kubelet $KUBELET $KUBELET_ARGS
fi
printf '%s\n' "$SERVER" > "$STATE/server"
printf '%s\n' "${NODE_NAME:-$(hostname)}" > "$STATE/node"
mv "$STATE/installed.tmp" "$STATE/installed"

# --- 5. wait for the kubelet's client certificate ---------------------------------------------
say "started containerd and kubelet ($INIT); waiting for the kubelet to join through TLS bootstrapping"
i=0
while [ ! -s /etc/kubernetes/kubelet.conf ]; do
  i=$((i + 1))
  if [ "$i" -gt 180 ]; then
    say "the kubelet did not get a client certificate in 180 s; its log ends with:"
    tail -n 20 /var/log/mothership-node/kubelet.log 2>/dev/null >&2 || journalctl -u mothership-kubelet -n 20 >&2 || true
    fail "join incomplete; inspect the kubelet, or undo everything with $LEAVE"
  fi
  sleep 1
done
say "joined $CLUSTER as node ${NODE_NAME:-$(hostname)}; to leave: $LEAVE"
