// deploy/weir.yaml against a real kube-apiserver: the pinned release the lab
// runs (lab/controlplane, scripts/k8s/build), with kube-controller-manager so
// the DaemonSet controller acts on it. What a user's `kubectl apply -f
// deploy/weir.yaml` meets, checked: server-side dry run with strict field
// validation (an unknown or misspelt field fails), the real apply, a second
// apply that changes nothing, every CRD Established, RBAC as the agent's
// ServiceAccount sees it, and the DaemonSet's pod admitted for a node at
// system-node-critical priority.
//
// Needs root (a network namespace) and the pinned Kubernetes binaries (built
// on first use, minutes; scripts/test builds them first). Skipped otherwise.
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { useControlPlane } from '../helpers/controlplane.ts';
import { waitEstablished } from '../helpers/wait.ts';

const REPO = path.resolve(import.meta.dirname, '../..');
const MANIFEST = path.join(REPO, 'deploy/weir.yaml');
const SA = 'system:serviceaccount:kube-system:weir-agent';

describe('deploy/weir.yaml on a real kube-apiserver', () => {
  const fx = useControlPlane('deploy', { controllerManager: { clusterCIDR: '10.244.0.0/16', nodeCIDRMaskSize: 24 } });
  const kubectl = (args: string[], input?: string) => fx.cp.kubectl(args, input === undefined ? {} : { input });
  const kubectlOk = (args: string[], input?: string): string => {
    const r = kubectl(args, input);
    if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')}: exit ${r.code}\n${r.stderr}`);
    return r.stdout;
  };

  it('passes server-side validation, strict (dry run)', () => {
    const out = kubectlOk(['apply', '--dry-run=server', '--validate=strict', '-f', MANIFEST]);
    expect(out).toMatch(/daemonset\.apps\/weir (created|configured|unchanged) \(server dry run\)/);
  });

  it('strict validation is real: a misspelt field is refused', () => {
    const bad = `apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: weir-typo\n  namespace: kube-system\n  lables: {a: b}\n`;
    const r = kubectl(['apply', '--dry-run=server', '--validate=strict', '-f', '-'], bad);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/unknown field "metadata\.lables"/);
  });

  it('applies as a user applies it, and a second apply changes nothing', () => {
    const first = kubectlOk(['apply', '--validate=strict', '-f', MANIFEST]);
    for (const o of [
      'serviceaccount/weir-agent',
      'clusterrole.rbac.authorization.k8s.io/weir-agent',
      'clusterrolebinding.rbac.authorization.k8s.io/weir-agent',
      'daemonset.apps/weir',
    ])
      expect(first).toContain(`${o} created`);
    const second = kubectlOk(['apply', '--validate=strict', '-f', MANIFEST]);
    expect(
      second
        .trim()
        .split('\n')
        .every((l) => l.endsWith(' unchanged')),
      second,
    ).toBe(true);
  });

  it('every CRD it installs becomes Established', async () => {
    const crds = kubectlOk(['get', '-f', MANIFEST, '-o', 'jsonpath={range .items[?(@.kind=="CustomResourceDefinition")]}{.metadata.name}{"\\n"}{end}'])
      .split('\n')
      .filter(Boolean);
    // The manifest installs the HostFirewallPolicy CRD: an empty list would mean the query found nothing, not that all is well.
    expect(crds).toContain('hostfirewallpolicies.weir.dev');
    for (const name of crds) await waitEstablished(kubectlOk, `crd/${name}`);
  });

  it("the agent's ServiceAccount reads pods, namespaces, nodes and NetworkPolicies, and writes nothing", () => {
    const can = (verb: string, resource: string): string => {
      const r = kubectl(['auth', 'can-i', verb, resource, `--as=${SA}`]);
      return r.stdout.trim();
    };
    for (const res of ['pods', 'namespaces', 'nodes', 'networkpolicies.networking.k8s.io']) {
      for (const verb of ['get', 'list', 'watch']) expect(can(verb, res), `${verb} ${res}`).toBe('yes');
      for (const verb of ['create', 'update', 'patch', 'delete']) expect(can(verb, res), `${verb} ${res}`).toBe('no');
    }
    // The resources of the CRDs this file installs: read, never written.
    const crdResources = kubectlOk([
      'get',
      '-f',
      MANIFEST,
      '-o',
      'jsonpath={range .items[?(@.kind=="CustomResourceDefinition")]}{.spec.names.plural}.{.spec.group}{"\\n"}{end}',
    ])
      .split('\n')
      .filter(Boolean);
    for (const res of crdResources) {
      for (const verb of ['get', 'list', 'watch']) expect(can(verb, res), `${verb} ${res}`).toBe('yes');
      for (const verb of ['create', 'update', 'delete']) expect(can(verb, res), `${verb} ${res}`).toBe('no');
    }
    expect(can('get', 'secrets')).toBe('no');
    expect(can('list', 'configmaps')).toBe('no');
  });

  it('the upstream ClusterNetworkPolicy CRD (deploy/crds) applies as documented, becomes Established, and the agent may read its objects and not write them', async () => {
    const crd = path.join(REPO, 'deploy/crds/clusternetworkpolicies.experimental.yaml');
    kubectlOk(['apply', '--server-side', '--validate=strict', '-f', crd]);
    await waitEstablished(kubectlOk, 'crd/clusternetworkpolicies.policy.networking.k8s.io');
    const cnp = {
      apiVersion: 'policy.networking.k8s.io/v1beta1',
      kind: 'ClusterNetworkPolicy',
      metadata: { name: 'deploy-check' },
      spec: { tier: 'Admin', priority: 5, subject: { namespaces: {} }, egress: [{ action: 'Accept', to: [{ domainNames: ['*.example.com'] }] }] },
    };
    kubectlOk(['apply', '--validate=strict', '-f', '-'], JSON.stringify(cnp));
    // The experimental field is kept (not pruned), so the agent sees it.
    expect(JSON.parse(kubectlOk(['get', 'cnp', 'deploy-check', '-o', 'json'])).spec.egress[0].to[0].domainNames).toEqual(['*.example.com']);
    const can = (verb: string): string => kubectl(['auth', 'can-i', verb, 'clusternetworkpolicies.policy.networking.k8s.io', `--as=${SA}`]).stdout.trim();
    for (const v of ['get', 'list', 'watch']) expect(can(v), v).toBe('yes');
    for (const v of ['create', 'update', 'patch', 'delete']) expect(can(v), v).toBe('no');
  });

  it('the DaemonSet controller makes a pod for a node, admitted at system-node-critical priority', async () => {
    kubectlOk(['apply', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'Node', metadata: { name: 'deploy-node-a' } }));
    let pod:
      | { spec: { priority?: number; priorityClassName?: string; serviceAccountName?: string; hostNetwork?: boolean }; metadata: { name: string } }
      | undefined;
    const deadline = Date.now() + 60_000;
    while (!pod && Date.now() < deadline) {
      const list = JSON.parse(kubectlOk(['-n', 'kube-system', 'get', 'pods', '-l', 'app.kubernetes.io/name=weir', '-o', 'json'])) as {
        items: NonNullable<typeof pod>[];
      };
      pod = list.items[0];
      if (!pod) await sleep(500);
    }
    if (!pod) {
      const events = kubectl(['-n', 'kube-system', 'get', 'events', '-o', 'wide']).stdout;
      throw new Error(`no weir pod within 60 s; events:\n${events}\ncontroller-manager:\n${fx.cp.logTail('kube-controller-manager', 30)}`);
    }
    expect(pod.spec.priorityClassName).toBe('system-node-critical');
    expect(pod.spec.priority).toBe(2000001000);
    expect(pod.spec.serviceAccountName).toBe('weir-agent');
    expect(pod.spec.hostNetwork).toBe(true);
  });
});
