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
stop_service() {  # NAME: its supervisor's process group, TERM then KILL
  pid=$(cat "/run/mothership-node/$1.pid" 2>/dev/null) || return 0
  kill -TERM "-$pid" 2>/dev/null || return 0
  i=0
  while kill -0 "-$pid" 2>/dev/null && [ "$i" -lt 20 ]; do sleep 0.5; i=$((i + 1)); done
  kill -KILL "-$pid" 2>/dev/null || true
}
if [ "$(cat "$STATE/init" 2>/dev/null)" = systemd ]; then
  systemctl disable --now mothership-kubelet.service >/dev/null 2>&1 || true
else
  stop_service kubelet
fi
sleep 1
if command -v ctr >/dev/null 2>&1 && [ -S /run/containerd/containerd.sock ]; then
  for t in $(ctr -n k8s.io tasks ls -q 2>/dev/null); do ctr -n k8s.io tasks kill -s SIGKILL "$t" >/dev/null 2>&1 || true; done
  sleep 1
  for t in $(ctr -n k8s.io tasks ls -q 2>/dev/null); do ctr -n k8s.io tasks delete -f "$t" >/dev/null 2>&1 || true; done
  for c in $(ctr -n k8s.io containers ls -q 2>/dev/null); do ctr -n k8s.io containers rm "$c" >/dev/null 2>&1 || true; done
fi
if [ "$(cat "$STATE/init" 2>/dev/null)" = systemd ]; then
  systemctl disable --now mothership-containerd.service >/dev/null 2>&1 || true
else
  stop_service containerd
fi
sleep 1
for pid in $(ps -eo pid=,args= 2>/dev/null | sed -n 's/^ *\([0-9]*\) .*containerd-shim-runc-v2 .*-address \/run\/containerd\/containerd.sock.*/\1/p'); do
  kill -KILL "$pid" 2>/dev/null || true
done
for m in $(sed -n 's/^[^ ]* \(\/var\/lib\/kubelet[^ ]*\|\/run\/containerd[^ ]*\|\/var\/lib\/containerd[^ ]*\|\/run\/netns[^ ]*\) .*/\1/p' /proc/mounts | sort -r); do
  umount -l "$m" 2>/dev/null || true
done
for link in cni0 flannel.1; do ip link del "$link" 2>/dev/null || true; done
while read -r path; do rm -rf "$path"; done < "$STATE/installed"
[ -d /etc/systemd/system ] && systemctl daemon-reload >/dev/null 2>&1 || true
rm -rf /run/mothership-node /etc/mothership-node /etc/containerd/certs.d "$STATE"
# Directories the join may have created: removed only when nothing else is left in them.
for d in /etc/kubernetes/pki /etc/kubernetes /etc/cni /etc/containerd /opt/cni/bin /opt/cni; do
  rmdir "$d" 2>/dev/null || true
done
say "done: the node components are stopped and the files of the join are removed"
say "the Node object stays in the cluster (a kubelet may not delete it): kubectl delete node $node"
