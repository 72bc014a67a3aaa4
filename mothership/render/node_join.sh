# The first part of every join script: arguments, the token's checks, helpers. The part of the
# Cluster's distribution follows (node_join_kubernetes.sh, node_join_k0s.sh); render_join_script()
# prepends the values (see node_join.py).
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

# --- helpers the distributions' parts use ----------------------------------------------------
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
record() { echo "$1" >> "$STATE/installed.tmp"; }
install_bin() { mkdir -p "$(dirname "$2")"; cp "$1" "$2.mothership-new"; chmod 0755 "$2.mothership-new"; mv -f "$2.mothership-new" "$2"; record "$2"; }
write_file() { mkdir -p "$(dirname "$1")"; printf '%s' "$3" > "$1"; chmod "$2" "$1"; record "$1"; }
begin_changes() {  # from here on the machine changes; every file written is recorded for $LEAVE
  mkdir -p "$STATE"
  : > "$STATE/installed.tmp"
}

# kubelet, containerd and its shim, runc (when $1 = 1) and the standard CNI plugins: all
# downloaded before anything is moved into place.
fetch_components() {
  if [ "$1" = 1 ]; then
    download "$(url "$KUBELET_URL")" "$WORK/kubelet"
    download "$(url "$CONTAINERD_URL")" "$WORK/containerd.tgz"
    download "$(url "$RUNC_URL")" "$WORK/runc"
    mkdir -p "$WORK/containerd"
    tar -xzf "$WORK/containerd.tgz" -C "$WORK/containerd" || fail "the containerd archive is damaged"
    for f in containerd containerd-shim-runc-v2; do
      [ -f "$WORK/containerd/bin/$f" ] || fail "$f is missing from the downloaded archive"
    done
  fi
  download "$(url "$CNI_URL")" "$WORK/cni.tgz"
  mkdir -p "$WORK/cni"
  tar -xzf "$WORK/cni.tgz" -C "$WORK/cni" || fail "the CNI plugins archive is damaged"
  for f in bridge host-local loopback portmap; do
    [ -f "$WORK/cni/$f" ] || fail "$f is missing from the downloaded CNI plugins archive"
  done
}
install_components() {  # what fetch_components $1 downloaded
  if [ "$1" = 1 ]; then
    install_bin "$WORK/kubelet" "$BIN/kubelet"
    for b in containerd containerd-shim-runc-v2 ctr; do
      [ -f "$WORK/containerd/bin/$b" ] && install_bin "$WORK/containerd/bin/$b" "$BIN/$b"
    done
    install_bin "$WORK/runc" "$BIN/runc"
  fi
  for p in "$WORK"/cni/*; do install_bin "$p" "/opt/cni/bin/$(basename "$p")"; done
}
missing_components() {  # the kubelet, containerd and runc (when $1 = 1) and CNI plugins not installed
  missing=""
  if [ "$1" = 1 ]; then
    for b in kubelet containerd containerd-shim-runc-v2 runc; do command -v "$b" >/dev/null 2>&1 || missing="$missing $b"; done
  fi
  for p in bridge host-local loopback portmap; do [ -x "/opt/cni/bin/$p" ] || missing="$missing /opt/cni/bin/$p"; done
  printf '%s' "$missing"
}

if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then INIT=systemd; else INIT=plain; fi
# Without CAP_SYS_RESOURCE (a container, a VM sandbox) the kubelet's oom_score_adj cannot be set.
cap=$(sed -n 's/^CapEff:[[:space:]]*//p' /proc/self/status)
if [ $(( 0x$cap >> 24 & 1 )) = 1 ]; then RESTRICT_OOM=false; else RESTRICT_OOM=true; fi

# start_service NAME AFTER COMMAND...: a systemd unit where systemd runs, else a small
# supervisor that restarts the command 2 s after it exits (the leave command stops it).
start_service() {
  name=$1; after=$2; shift 2
  if [ "$INIT" = systemd ]; then
    exec_line=""
    for a in "$@"; do
      case "$a" in *[[:space:]]*) a="\"$a\"" ;; esac
      exec_line="$exec_line${exec_line:+ }$a"
    done
    write_file "/etc/systemd/system/mothership-$name.service" 0644 "[Unit]
Description=mothership node: $name
After=network-online.target $after
[Service]
ExecStart=$exec_line
Restart=always
RestartSec=2
Delegate=yes
KillMode=process
LimitNOFILE=1048576
[Install]
WantedBy=multi-user.target
"
    systemctl daemon-reload
    systemctl enable --now "mothership-$name.service"
  else
    if [ ! -x "$BIN/mothership-node-service" ]; then
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
    fi
    mkdir -p /run/mothership-node /var/log/mothership-node
    setsid "$BIN/mothership-node-service" "$name" "$@" > /dev/null 2>&1 < /dev/null &
  fi
}
service_log() {  # NAME: the last lines of its log
  tail -n 20 "/var/log/mothership-node/$1.log" 2>/dev/null >&2 || journalctl -u "mothership-$1" -n 20 >&2 || true
}
