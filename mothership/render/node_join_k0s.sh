# --- 2. k0s, and the node components a k0s built without them needs (k0s distribution) --------
[ -e /var/lib/k0s/kubelet.conf ] && fail "k0s already runs a worker on this machine (/var/lib/k0s/kubelet.conf exists); remove it first (k0s reset)" || true
if [ "$PREINSTALLED" = 1 ]; then
  K0S_FILE=$(command -v k0s) || fail "--preinstalled, but k0s is not on PATH"
else
  download "$(url "$K0S_URL")" "$WORK/k0s"
  chmod 0755 "$WORK/k0s"
  "$WORK/k0s" version > "$WORK/k0s-version" 2>"$WORK/err" || fail "the downloaded k0s does not run here: $(cat "$WORK/err")"
  K0S_FILE=$WORK/k0s
fi
# A k0s release carries containerd, runc and the kubelet inside; one built with the Go tag
# noembedbins (k0s's EMBEDDED_BINS_BUILDMODE=none) looks for them on PATH instead.
COMPONENTS=0
if grep -a -q noembedbins "$K0S_FILE"; then
  COMPONENTS=1
  say "this k0s was built without containerd, runc and the kubelet (noembedbins): they are installed beside it"
fi
if [ "$PREINSTALLED" = 1 ]; then
  missing=$(missing_components "$COMPONENTS")
  [ -z "$missing" ] || fail "--preinstalled, but these are missing:$missing"
else
  fetch_components "$COMPONENTS"
fi
begin_changes
if [ "$PREINSTALLED" = 0 ]; then
  install_bin "$WORK/k0s" "$BIN/k0s"
  install_components "$COMPONENTS"
fi
if [ "$PREINSTALLED" = 1 ]; then K0S=$K0S_FILE; else K0S=$BIN/k0s; fi

# --- 3. configuration --------------------------------------------------------------------------
write_file /etc/k0s/join-token 0600 "$JOIN_TOKEN
"
# k0s merges every containerd.d/*.toml that configures the CRI plugin into its own config.
if [ -n "$REGISTRY_MIRROR" ]; then
  write_file /etc/k0s/containerd.d/mothership-registry-mirror.toml 0644 'version = 2
[plugins."io.containerd.grpc.v1.cri".registry]
  config_path = "/etc/containerd/certs.d"
'
@MIRROR_FILES@
fi
if [ "$RESTRICT_OOM" = true ]; then
  write_file /etc/k0s/containerd.d/mothership-restrict-oom.toml 0644 'version = 2
[plugins."io.containerd.grpc.v1.cri"]
  restrict_oom_score_adj = true
'
fi
mkdir -p /etc/cni/net.d /var/log/mothership-node
for path in /var/lib/k0s /run/k0s /etc/k0s /etc/cni/net.d /usr/libexec/k0s /var/log/mothership-node; do record "$path"; done

set -- worker --token-file=/etc/k0s/join-token
[ -n "$NODE_LABELS" ] && set -- "$@" "--labels=$NODE_LABELS"
[ -n "$NODE_TAINTS" ] && set -- "$@" "--taints=$NODE_TAINTS"
KUBELET_ARGS=$KUBELET_EXTRA_ARGS
[ -n "$NODE_NAME" ] && KUBELET_ARGS="--hostname-override=$NODE_NAME${KUBELET_ARGS:+ }$KUBELET_ARGS"
[ -n "$KUBELET_ARGS" ] && set -- "$@" "--kubelet-extra-args=$KUBELET_ARGS"

# --- 4. the service ------------------------------------------------------------------------------
write_file "$LEAVE" 0755 "$LEAVE_SCRIPT"
echo "$INIT" > "$STATE/init"
echo k0s > "$STATE/distribution"
start_service k0s-worker "" "$K0S" "$@"
printf '%s\n' "$SERVER" > "$STATE/server"
printf '%s\n' "${NODE_NAME:-$(hostname)}" > "$STATE/node"
mv "$STATE/installed.tmp" "$STATE/installed"

# --- 5. wait for the kubelet's client certificate ---------------------------------------------
say "started the k0s worker ($INIT); waiting for its kubelet to join through TLS bootstrapping"
i=0
while [ ! -s /var/lib/k0s/kubelet.conf ]; do
  i=$((i + 1))
  if [ "$i" -gt 180 ]; then
    say "the k0s worker did not get a client certificate in 180 s; its log ends with:"
    service_log k0s-worker
    fail "join incomplete; inspect the k0s worker, or undo everything with $LEAVE"
  fi
  sleep 1
done
say "joined $CLUSTER as node ${NODE_NAME:-$(hostname)}; to leave: $LEAVE"
