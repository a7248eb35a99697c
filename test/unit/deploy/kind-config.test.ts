// kind-config.yaml and its dual-stack variant: the cluster shape weir's kind
// workflow needs (no default CNI, explicit subnets, one control plane and two
// workers, kube-proxy in nftables mode, pinned node image). kind itself is not
// run here (it needs Docker); docs/kind.md says what was.
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { loadAllYaml } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';

const REPO = path.resolve(import.meta.dirname, '../../..');

interface KindCluster {
  kind: string;
  apiVersion: string;
  networking: { disableDefaultCNI?: boolean; ipFamily?: string; podSubnet?: string; serviceSubnet?: string; kubeProxyMode?: string; [k: string]: unknown };
  nodes: { role: string; image?: string; [k: string]: unknown }[];
  [k: string]: unknown;
}

const load = (file: string): KindCluster => {
  const docs = loadAllYaml(fs.readFileSync(path.join(REPO, file), 'utf8')) as KindCluster[];
  expect(docs).toHaveLength(1);
  return docs[0] as KindCluster;
};

// The fields of kind's v1alpha4 Cluster that these files may use (kind decodes strictly: a typo fails `kind create`).
const NETWORKING_FIELDS = ['ipFamily', 'apiServerPort', 'apiServerAddress', 'podSubnet', 'serviceSubnet', 'disableDefaultCNI', 'kubeProxyMode', 'dnsSearch'];
const NODE_FIELDS = ['role', 'image', 'labels', 'extraMounts', 'extraPortMappings', 'kubeadmConfigPatches', 'kubeadmConfigPatchesJSON6902'];
const CLUSTER_FIELDS = [
  'kind',
  'apiVersion',
  'name',
  'nodes',
  'networking',
  'featureGates',
  'runtimeConfig',
  'kubeadmConfigPatches',
  'kubeadmConfigPatchesJSON6902',
  'containerdConfigPatches',
  'containerdConfigPatchesJSON6902',
];

const cidr = (s: string): { family: 4 | 6; prefix: number } => {
  const [addr, len] = s.split('/');
  const family = net.isIP(addr ?? '');
  expect(family, s).not.toBe(0);
  return { family: family as 4 | 6, prefix: Number(len) };
};

function commonShape(c: KindCluster): void {
  expect(c.kind).toBe('Cluster');
  expect(c.apiVersion).toBe('kind.x-k8s.io/v1alpha4');
  for (const k of Object.keys(c)) expect(CLUSTER_FIELDS, `unknown field ${k}`).toContain(k);
  for (const k of Object.keys(c.networking)) expect(NETWORKING_FIELDS, `unknown field networking.${k}`).toContain(k);
  expect(c.networking.disableDefaultCNI).toBe(true);
  expect(c.networking.kubeProxyMode).toBe('nftables');
  // The shape of ../shared/seeds: one control plane, two workers.
  expect(c.nodes.map((n) => n.role)).toEqual(['control-plane', 'worker', 'worker']);
  for (const n of c.nodes) for (const k of Object.keys(n)) expect(NODE_FIELDS, `unknown field nodes[].${k}`).toContain(k);
  // One node image for all, pinned by tag and digest.
  const images = new Set(c.nodes.map((n) => n.image));
  expect(images.size).toBe(1);
  expect([...images][0]).toMatch(/^kindest\/node:v1\.\d+\.\d+@sha256:[0-9a-f]{64}$/);
}

describe('kind-config.yaml', () => {
  const c = load('kind-config.yaml');

  it('no default CNI, kube-proxy in nftables mode, one control plane and two workers, pinned node image', () => commonShape(c));

  it("states the pod and Service subnets (IPv4, the lab's too)", () => {
    expect(c.networking.ipFamily ?? 'ipv4').toBe('ipv4');
    expect(c.networking.podSubnet).toBe('10.244.0.0/16');
    expect(c.networking.serviceSubnet).toBe('10.96.0.0/16');
  });

  it('runs the Kubernetes minor release the project pins (scripts/k8s/go.mod)', () => {
    const pinned = /^require k8s\.io\/kubernetes v(\d+\.\d+)\./m.exec(fs.readFileSync(path.join(REPO, 'scripts/k8s/go.mod'), 'utf8'))?.[1];
    expect(pinned).toBeTruthy();
    expect(c.nodes[0]?.image).toContain(`kindest/node:v${pinned}.`);
  });
});

describe('kind-config-dualstack.yaml', () => {
  const c = load('kind-config-dualstack.yaml');
  const single = load('kind-config.yaml');

  it('has the same shape and node image as kind-config.yaml', () => {
    commonShape(c);
    expect(c.nodes).toEqual(single.nodes);
  });

  it('is dual-stack: IPv4 first (the same subnets as single-stack), then IPv6', () => {
    expect(c.networking.ipFamily).toBe('dual');
    for (const key of ['podSubnet', 'serviceSubnet'] as const) {
      const parts = (c.networking[key] ?? '').split(',');
      expect(
        parts.map((p) => cidr(p).family),
        key,
      ).toEqual([4, 6]);
      expect(parts[0], key).toBe(single.networking[key]);
    }
    // kube-controller-manager gives each node a /64 of it: room for the nodes.
    expect(cidr((c.networking.podSubnet ?? '').split(',')[1] as string).prefix).toBeLessThanOrEqual(64 - 2);
    // kube-apiserver accepts at most 20 bits of IPv6 Service range (/108 and longer).
    expect(cidr((c.networking.serviceSubnet ?? '').split(',')[1] as string).prefix).toBeGreaterThanOrEqual(108);
  });
});
