// The lab's kind config: the base config's settings kept, the node count
// applied, each node mounting its weir paths from the machine.
import fs from 'node:fs';
import path from 'node:path';
import { loadAllYaml } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { kindPaths, labKindConfig, nodeRootDir, REPO, SHARED_NODE_PATHS } from '../../../lab/kind.ts';

const paths = kindPaths({ KIND_RUN: '/run/test-kind', KIND_CLUSTER: 'weir', HOME: '/root' });

describe('labKindConfig', () => {
  for (const file of ['kind-config.yaml', 'kind-config-dualstack.yaml']) {
    it(`${file}: N nodes named as kind names them, networking kept, extraMounts per node`, () => {
      const base = fs.readFileSync(path.join(REPO, file), 'utf8');
      const { yaml, names } = labKindConfig(base, paths, 4);
      expect(names).toEqual(['weir-control-plane', 'weir-worker', 'weir-worker2', 'weir-worker3']);
      const [doc] = loadAllYaml(yaml) as {
        networking: unknown;
        kubeadmConfigPatches: unknown;
        nodes: { role: string; image?: string; extraMounts: { hostPath: string; containerPath: string }[] }[];
      }[];
      const [orig] = loadAllYaml(base) as { networking: unknown; kubeadmConfigPatches: unknown }[];
      expect(doc?.networking).toEqual(orig?.networking);
      expect(doc?.kubeadmConfigPatches).toEqual(orig?.kubeadmConfigPatches);
      expect(doc?.nodes.map((n) => n.role)).toEqual(['control-plane', 'worker', 'worker', 'worker']);
      doc?.nodes.forEach((n, i) => {
        expect(n.image).toBeUndefined();
        expect(n.extraMounts).toEqual(
          SHARED_NODE_PATHS.map((rel) => ({ hostPath: path.join(nodeRootDir(paths, names[i] as string), rel), containerPath: `/${rel}` })),
        );
      });
    });
  }

  it('one node: the control plane alone', () => {
    const base = fs.readFileSync(path.join(REPO, 'kind-config.yaml'), 'utf8');
    expect(labKindConfig(base, paths, 1).names).toEqual(['weir-control-plane']);
  });

  it('refuses a config without a trailing nodes list', () => {
    expect(() => labKindConfig('kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\n', paths, 3)).toThrow(/no nodes/);
  });
});
