#!/usr/bin/env bash
# Deletes the kind cluster scripts/kind-up.sh made (KIND_CLUSTER, default
# weir), and with it everything in it. Succeeds when there is no such cluster.
# With podman it also removes what kind-up.sh made around the cluster: kind's
# podman network, the network namespace (and any process left in it), and the
# run state under /run/weir-kind. The image store under ~/.cache/weir/podman
# is a build cache and stays; `scripts/kind-down.sh --purge` removes it too.
#
#   scripts/kind-down.sh [--purge]
set -euo pipefail
cd "$(dirname "$0")/.."
kind_prog=kind-down
# shellcheck source=scripts/kind/lib.sh
. scripts/kind/lib.sh
cluster="${KIND_CLUSTER:-weir}"
purge=false
[ "${1:-}" = "--purge" ] && purge=true

kind_setup
if [ "$KIND_PROVIDER" != podman ]; then
  [ -n "$KIND_BIN" ] || kind_die "kind is not installed"
  if kind_run get clusters 2>/dev/null | grep -qx "$cluster"; then
    kind_run delete cluster --name "$cluster"
  else
    kind_say "no kind cluster named $cluster"
  fi
  exit 0
fi

if [ -e "/run/netns/$KIND_NETNS" ]; then
  if [ -x "$KIND_BIN" ] && kind_run get clusters 2>/dev/null | grep -qx "$cluster"; then
    # The node containers' ids, for their cgroups below.
    ids=$(in_kind_ns podman ps -a --no-trunc --filter "label=io.x-k8s.kind.cluster=$cluster" --format '{{.ID}}' 2>/dev/null || true)
    kind_run delete cluster --name "$cluster"
    # A node runs systemd, which makes cgroups inside its container's; with
    # cgroupfs, what is left of that tree once its processes are gone stays
    # behind. Only these containers' trees, deepest first, and only empty
    # cgroups (rmdir refuses any other); processes still exiting get a moment.
    for id in $ids; do
      for d in /sys/fs/cgroup/*/libpod_parent/libpod-"$id"; do
        for _ in 1 2 3 4 5 6 7 8 9 10; do
          [ -d "$d" ] || break
          find "$d" -depth -type d -exec rmdir {} + 2>/dev/null || true
          [ -d "$d" ] && sleep 0.5
        done
        [ -d "$d" ] && kind_say "could not remove $d (processes left in it?)"
      done
    done
  else
    kind_say "no kind cluster named $cluster"
  fi
  # Other clusters in the same namespace keep it; the last one takes it along.
  if [ -x "$KIND_BIN" ] && [ -n "$(kind_run get clusters 2>/dev/null)" ]; then
    kind_say "other kind clusters remain in $KIND_NETNS; leaving it"
    exit 0
  fi
  # kind leaves its network; removing it runs the CNI DEL that stops
  # dnsname's dnsmasq and deletes the bridge.
  in_kind_ns podman network rm -f kind >/dev/null 2>&1 || true
  pids=$(ip netns pids "$KIND_NETNS" 2>/dev/null || true)
  if [ -n "$pids" ]; then
    kind_say "stopping processes left in $KIND_NETNS: $(echo "$pids" | tr '\n' ' ')"
    # shellcheck disable=SC2086 # a list of pids
    kill $pids 2>/dev/null || true
    for _ in 1 2 3 4 5 6 7 8 9 10; do [ -z "$(ip netns pids "$KIND_NETNS" 2>/dev/null)" ] && break; sleep 0.5; done
    # shellcheck disable=SC2046 # a list of pids
    kill -9 $(ip netns pids "$KIND_NETNS" 2>/dev/null) 2>/dev/null || true
  fi
  # (gone already when a concurrent down got there first)
  ip netns del "$KIND_NETNS" 2>/dev/null || [ ! -e "/run/netns/$KIND_NETNS" ]
else
  kind_say "no namespace $KIND_NETNS: nothing of a cluster is left"
fi
# podman's run state (overlay mounts of containers, the store's lock and
# state files) lives under $KIND_RUN; unmount what podman left mounted there.
if [ -d "$KIND_RUN" ]; then
  podman unmount --all >/dev/null 2>&1 || true
  # Deepest first; awk, not grep: no match is not a failure.
  awk -v a="$KIND_RUN/" -v b="$WEIR_CACHE/podman/" 'index($2, a) == 1 || index($2, b) == 1 { print $2 }' /proc/self/mounts | sort -r |
    while read -r m; do umount -l "$m" 2>/dev/null || true; done
  rm -rf "$KIND_RUN"
fi
# podman's cgroupfs parent and its conmon group, once no container is left (rmdir
# refuses a cgroup that still has children).
for d in /sys/fs/cgroup/*/libpod_parent; do rmdir "$d/conmon" "$d" 2>/dev/null || true; done
if $purge; then
  kind_say "removing podman's image store for kind ($WEIR_CACHE/podman)"
  rm -rf "$WEIR_CACHE/podman"
fi
