#!/bin/sh
# Undoes a mothership join: stops the node components and their containers, and removes
# everything the join wrote (listed in /var/lib/mothership-node). The Node object stays in the
# cluster (a kubelet may not delete its own Node): `kubectl delete node NAME` removes it.
set -u
STATE=/var/lib/mothership-node
[ "$(id -u)" = 0 ] || { echo "mothership-node-leave: run as root" >&2; exit 1; }
[ -f "$STATE/installed" ] || { echo "mothership-node-leave: this machine has not joined (no $STATE/installed)" >&2; exit 1; }
say() { echo "mothership-node-leave: $*" >&2; }
node=$(cat "$STATE/node" 2>/dev/null || hostname)
init=$(cat "$STATE/init" 2>/dev/null || echo plain)
if [ "$(cat "$STATE/distribution" 2>/dev/null)" = k0s ]; then
  # k0s runs containerd and the kubelet itself, with its own socket and directories.
  SERVICES="k0s-worker"; SOCKET=/run/k0s/containerd.sock; DIRS="/var/lib/k0s /run/k0s"
else
  SERVICES="kubelet containerd"; SOCKET=/run/containerd/containerd.sock; DIRS="/var/lib/kubelet /run/containerd /var/lib/containerd"
fi
stop_service() {  # NAME: its unit, or its supervisor's process group, TERM then KILL
  if [ "$init" = systemd ]; then
    systemctl disable --now "mothership-$1.service" >/dev/null 2>&1 || true
    return 0
  fi
  pid=$(cat "/run/mothership-node/$1.pid" 2>/dev/null) || return 0
  kill -TERM "-$pid" 2>/dev/null || return 0
  i=0
  while kill -0 "-$pid" 2>/dev/null && [ "$i" -lt 20 ]; do sleep 0.5; i=$((i + 1)); done
  kill -KILL "-$pid" 2>/dev/null || true
}
kill_pods() {  # every container of every pod: through containerd while it runs, else by cgroup
  if command -v ctr >/dev/null 2>&1 && [ -S "$SOCKET" ]; then
    for t in $(ctr -a "$SOCKET" -n k8s.io tasks ls -q 2>/dev/null); do ctr -a "$SOCKET" -n k8s.io tasks kill -s SIGKILL "$t" >/dev/null 2>&1 || true; done
  fi
  for cg in /sys/fs/cgroup/kubepods /sys/fs/cgroup/kubepods.slice /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/*/kubepods.slice; do
    [ -d "$cg" ] || continue
    if [ -f "$cg/cgroup.kill" ]; then echo 1 > "$cg/cgroup.kill" 2>/dev/null || true; continue; fi
    find "$cg" -name cgroup.procs 2>/dev/null | while read -r procs; do
      while read -r pid; do kill -KILL "$pid" 2>/dev/null || true; done < "$procs"
    done
  done
}
for s in $SERVICES; do
  [ "$s" = containerd ] && { sleep 1; kill_pods; sleep 1; }
  stop_service "$s"
done
sleep 1
kill_pods
for pid in $(ps -eo pid=,args= 2>/dev/null | grep "containerd-shim-runc-v2 .*-address $SOCKET" | grep -v grep | sed 's/^ *\([0-9]*\) .*/\1/'); do
  kill -KILL "$pid" 2>/dev/null || true
done
for d in $DIRS /run/netns; do
  for m in $(awk -v d="$d" 'index($2, d) == 1 { print $2 }' /proc/mounts | sort -r); do
    umount -l "$m" 2>/dev/null || true
  done
done
for link in cni0 flannel.1 kube-bridge; do ip link del "$link" 2>/dev/null || true; done
while read -r path; do rm -rf "$path"; done < "$STATE/installed"
[ -d /etc/systemd/system ] && systemctl daemon-reload >/dev/null 2>&1 || true
rm -rf /run/mothership-node /etc/mothership-node /etc/containerd/certs.d "$STATE"
# Directories the join may have created: removed only when nothing else is left in them.
for d in /etc/kubernetes/pki /etc/kubernetes /etc/cni /etc/containerd /opt/cni/bin /opt/cni; do
  rmdir "$d" 2>/dev/null || true
done
say "done: the node components are stopped and the files of the join are removed"
say "the Node object stays in the cluster (a kubelet may not delete it): kubectl delete node $node"
