#!/bin/sh
# Runs in the kind node (weir-import-images.service, before the kubelet):
# imports the images scripts/kind/images preloaded under /kind/images into
# containerd's k8s.io namespace, so that kubeadm and the tests find them and
# nothing is pulled. Each NAME.tar comes with NAME.names, the references it
# holds; a tar is imported only when one of them is missing, so a restarted
# node skips the work. Layers are unpacked when a container first uses them.
set -eu
have=$(ctr --namespace=k8s.io images list --quiet)
for tar in /kind/images/*.tar; do
  [ -e "$tar" ] || continue
  missing=
  while read -r ref; do
    printf '%s\n' "$have" | grep -qxF "$ref" || missing=$ref
  done <"${tar%.tar}.names"
  [ -n "$missing" ] || continue
  echo "importing $tar"
  ctr --namespace=k8s.io images import --no-unpack "$tar"
done
