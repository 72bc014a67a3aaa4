# --- 2. the node components (kubernetes distribution) -----------------------------------------
if [ "$PREINSTALLED" = 1 ]; then
  missing=$(missing_components 1)
  [ -z "$missing" ] || fail "--preinstalled, but these are missing:$missing"
  KUBELET=$(command -v kubelet); CONTAINERD=$(command -v containerd); RUNC=$(command -v runc)
else
  fetch_components 1
  KUBELET=$BIN/kubelet; CONTAINERD=$BIN/containerd; RUNC=$BIN/runc
fi
begin_changes
[ "$PREINSTALLED" = 1 ] || install_components 1

# --- 3. configuration --------------------------------------------------------------------------
if [ "$INIT" = systemd ]; then CGROUP_DRIVER=systemd; SYSTEMD_CGROUP=true; else CGROUP_DRIVER=cgroupfs; SYSTEMD_CGROUP=false; fi
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
echo kubernetes > "$STATE/distribution"
# shellcheck disable=SC2086 # the argument strings split into words on purpose
start_service containerd "" $CONTAINERD $CONTAINERD_ARGS
# shellcheck disable=SC2086
start_service kubelet mothership-containerd.service $KUBELET $KUBELET_ARGS
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
    service_log kubelet
    fail "join incomplete; inspect the kubelet, or undo everything with $LEAVE"
  fi
  sleep 1
done
say "joined $CLUSTER as node ${NODE_NAME:-$(hostname)}; to leave: $LEAVE"
