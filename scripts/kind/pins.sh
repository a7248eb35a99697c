# shellcheck shell=bash
# Versions of what scripts/kind/tools and scripts/kind/images build, beside
# those of scripts/kind/lib.sh (kind) and scripts/k8s/go.mod (Kubernetes).
# etcd, coredns and pause are the versions
# `kubeadm config images list --kubernetes-version $K8S_VERSION` prints;
# scripts/kind/images stops when kubeadm asks for others.
ETCD_VERSION=v3.6.6        # also the require line of scripts/kind/etcd/go.mod
COREDNS_VERSION=v1.13.1
PAUSE_VERSION=3.10.1
CRICTL_VERSION=v1.36.0     # kind v0.33.0's base image ships this one
# The Debian release of the node image and of the libraries in the small
# images (kube-proxy's iptables/nft/conntrack, curl).
DEBIAN_SUITE=bookworm
DEBIAN_MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
DEBIAN_SECURITY_MIRROR="${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}"
# The client image scripts/e2e-kind.sh runs (`curl` is its entrypoint, as
# upstream's).
CURL_IMAGE=docker.io/curlimages/curl:8.11.1
