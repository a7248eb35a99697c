# shellcheck shell=bash
# shellcheck disable=SC2034 # sourced: the names are used by scripts/peers/*
# The peers weir is measured against (issue 16), each built from the Go
# module proxy at its pin by scripts/peers/build and installed by
# scripts/peers/up with its own upstream manifest, read from the module at
# the same pin. Changing a pin rebuilds that peer (binary and image).
#
# kube-network-policies: the NetworkPolicy agent kind users get beside
# kindnet (NFQUEUE). v0.8.0 is the newest the module proxy serves.
KNP_MODULE=sigs.k8s.io/kube-network-policies
KNP_VERSION=v0.8.0
# kube-router: routing (BGP), firewall (iptables + ipset) and its own CNI
# config (bridge + host-local). The issue pins v2.1.0; security flaws are
# reported for it, but it is the only version of the /v2 module the proxy
# serves here (`go list -m -versions` lists v2.1.0 alone; v2.2.0 and later
# answer 403 "not available"), so it stays until a newer one is served.
KUBE_ROUTER_MODULE=github.com/cloudnativelabs/kube-router/v2
KUBE_ROUTER_VERSION=v2.1.0
# 1: build kube-network-policies with its nftables `queue` rules as xtables'
# NFQUEUE target through nft_compat (scripts/peers/build says why: this
# machine's kernel has no nft_queue); the image's tag then ends in -xtqueue.
# 0: upstream's code unchanged, for kernels with CONFIG_NFT_QUEUE.
KNP_XT_QUEUE="${KNP_XT_QUEUE:-1}"
