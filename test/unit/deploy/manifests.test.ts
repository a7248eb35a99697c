// deploy/weir.yaml, the one file a user applies: generated from
// deploy/parts/*.yaml and up to date (scripts/gen-manifests --check), the very
// file the lab installs, and shaped as a CNI's DaemonSet must be. Server-side
// validation against a real kube-apiserver is apiserver.test.ts.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type {
  V1ClusterRole,
  V1ClusterRoleBinding,
  V1Container,
  V1CustomResourceDefinition,
  V1DaemonSet,
  V1ServiceAccount,
  V1Volume,
} from '@kubernetes/client-node';
import { loadAllYaml } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import yargs from 'yargs';
import { weirManifests } from '../../../lab/manifests.ts';
import { agentOptions, toConfig } from '../../../src/agent/config.ts';

const REPO = path.resolve(import.meta.dirname, '../../..');
const MANIFEST = path.join(REPO, 'deploy/weir.yaml');
const VERSION = (JSON.parse(fs.readFileSync(path.join(REPO, 'package.json'), 'utf8')) as { version: string }).version;

interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
}

/** Splits a YAML stream into its documents' texts (at lines that are exactly `---`), dropping empty ones. */
function splitDocuments(text: string): string[] {
  return text
    .replace(/\r\n/g, '\n')
    .split(/^---[ \t]*$/m)
    .filter((d) => d.split('\n').some((l) => l.trim() !== '' && !l.trimStart().startsWith('#')));
}

const docs = (): KubeObject[] =>
  splitDocuments(fs.readFileSync(MANIFEST, 'utf8')).map((d) => {
    const parsed = loadAllYaml(d) as KubeObject[];
    expect(parsed).toHaveLength(1);
    return parsed[0] as KubeObject;
  });
const one = <T>(kind: string): T => {
  const found = docs().filter((d) => d.kind === kind);
  expect(
    found.map((d) => d.metadata.name),
    `exactly one ${kind}`,
  ).toHaveLength(1);
  return found[0] as T;
};
const daemonSet = (): V1DaemonSet => one<V1DaemonSet>('DaemonSet');
const podSpec = () => {
  const spec = daemonSet().spec?.template.spec;
  if (!spec) throw new Error('DaemonSet has no pod template');
  return spec;
};
const initContainer = (): V1Container => {
  const c = podSpec().initContainers ?? [];
  expect(c.map((x) => x.name)).toEqual(['install-cni']);
  return c[0] as V1Container;
};
const agentContainer = (): V1Container => {
  const c = podSpec().containers;
  expect(c.map((x) => x.name)).toEqual(['agent']);
  return c[0] as V1Container;
};

/** --flag=value from a container's command and args. */
const flag = (c: V1Container, name: string): string | undefined => {
  const argv = [...(c.command ?? []), ...(c.args ?? [])];
  const hit = argv.find((a) => a.startsWith(`--${name}=`));
  return hit?.slice(name.length + 3);
};

/** The host path behind a container path: the hostPath volume mounted exactly there. */
const hostPathAt = (c: V1Container, mountPath: string | undefined): string | undefined => {
  const m = (c.volumeMounts ?? []).find((v) => v.mountPath === mountPath);
  const vol = (podSpec().volumes ?? []).find((v: V1Volume) => v.name === m?.name);
  return vol?.hostPath?.path;
};

describe('deploy/weir.yaml is generated', () => {
  it('is up to date with deploy/parts (scripts/gen-manifests --check)', () => {
    const r = spawnSync(path.join(REPO, 'scripts/gen-manifests'), ['--check'], { cwd: REPO, encoding: 'utf8' });
    expect(`${r.stdout}${r.stderr}`, 'run scripts/gen-manifests').toContain('up to date');
    expect(r.status).toBe(0);
  });

  it('holds every part, in lexical order of file name, each once', () => {
    const parts = fs
      .readdirSync(path.join(REPO, 'deploy/parts'))
      .filter((n) => /\.ya?ml$/.test(n))
      .sort();
    const sources = [...fs.readFileSync(MANIFEST, 'utf8').matchAll(/^# Source: deploy\/parts\/(.+)$/gm)].map((m) => m[1]);
    expect(sources).toEqual(parts);
  });

  it("--check notices a stale or missing file, and the generator restores it (in a copy of the repo's deploy/)", () => {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'weir-gen-manifests-'));
    try {
      fs.mkdirSync(path.join(tmp, 'scripts'));
      for (const f of ['gen-manifests.mjs', 'gen-manifests-crds.mjs']) fs.copyFileSync(path.join(REPO, 'scripts', f), path.join(tmp, 'scripts', f));
      fs.cpSync(path.join(REPO, 'deploy'), path.join(tmp, 'deploy'), { recursive: true });
      const out = path.join(tmp, 'deploy/weir.yaml');
      const gen = (...args: string[]) => spawnSync(process.execPath, [path.join(tmp, 'scripts/gen-manifests.mjs'), ...args], { encoding: 'utf8' });
      expect(gen('--check').status).toBe(0);
      fs.appendFileSync(out, '# an edit by hand\n');
      let r = gen('--check');
      expect(r.status).toBe(1);
      expect(r.stderr).toContain('stale');
      fs.appendFileSync(path.join(tmp, 'deploy/parts/40-daemonset.yaml'), '# a new line in a part\n');
      expect(gen().status).toBe(0);
      expect(fs.readFileSync(out, 'utf8')).toContain('# a new line in a part');
      expect(gen('--check').status).toBe(0);
      fs.rmSync(out);
      r = gen('--check');
      expect(r.status).toBe(1);
      expect(r.stderr).toContain('missing');
      // The CRDs too: an edit by hand is stale, and the generator restores upstream's text.
      expect(gen().status).toBe(0);
      const crd = path.join(tmp, 'deploy/crds/clusternetworkpolicies.experimental.yaml');
      fs.writeFileSync(crd, fs.readFileSync(crd, 'utf8').replace('domainNames:', 'domainName:'));
      r = gen('--check');
      expect(r.status).toBe(1);
      expect(r.stderr).toContain('deploy/crds/clusternetworkpolicies.experimental.yaml is stale');
      expect(gen().status).toBe(0);
      expect(fs.readFileSync(crd, 'utf8')).toBe(fs.readFileSync(path.join(REPO, 'deploy/crds/clusternetworkpolicies.experimental.yaml'), 'utf8'));
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  });

  it('is the very file the lab installs', () => {
    expect(weirManifests(REPO).files).toEqual([MANIFEST]);
  });

  it('every document is a named object; namespaced ones are in kube-system, all labelled as weir', () => {
    const all = docs();
    expect(all.length).toBeGreaterThanOrEqual(4);
    for (const d of all) {
      expect(d.apiVersion, JSON.stringify(d.metadata)).toBeTruthy();
      expect(d.kind).toBeTruthy();
      expect(d.metadata.name).toBeTruthy();
      if (['ServiceAccount', 'DaemonSet', 'ConfigMap'].includes(d.kind)) expect(d.metadata.namespace, `${d.kind}/${d.metadata.name}`).toBe('kube-system');
      expect(d.metadata.labels?.['app.kubernetes.io/name'], `${d.kind}/${d.metadata.name}`).toBe('weir');
    }
  });

  it('applies in one pass: CRDs, RBAC and config come before the DaemonSet', () => {
    const kinds = docs().map((d) => d.kind);
    const ds = kinds.indexOf('DaemonSet');
    expect(ds).toBe(kinds.length - 1);
    for (const k of ['CustomResourceDefinition', 'ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'ConfigMap']) {
      const i = kinds.indexOf(k);
      if (i >= 0) expect(i, k).toBeLessThan(ds);
    }
  });
});

describe('the DaemonSet', () => {
  it('is node-critical, rolls one node at a time, and runs on every node', () => {
    const ds = daemonSet();
    expect(ds.metadata?.namespace).toBe('kube-system');
    expect(podSpec().priorityClassName).toBe('system-node-critical');
    expect(ds.spec?.updateStrategy?.type).toBe('RollingUpdate');
    expect(ds.spec?.updateStrategy?.rollingUpdate?.maxUnavailable).toBeDefined();
    // Every taint, NotReady and the control plane's included: until weir runs, every node is NotReady.
    expect(podSpec().tolerations).toContainEqual({ operator: 'Exists' });
    expect(podSpec().hostNetwork).toBe(true);
    const selector = ds.spec?.selector.matchLabels ?? {};
    expect(Object.keys(selector).length).toBeGreaterThan(0);
    for (const [k, v] of Object.entries(selector)) expect(ds.spec?.template.metadata?.labels?.[k]).toBe(v);
  });

  it('runs as the ServiceAccount that the ClusterRoleBinding binds to the ClusterRole', () => {
    const sa = one<V1ServiceAccount>('ServiceAccount');
    const crb = one<V1ClusterRoleBinding>('ClusterRoleBinding');
    const cr = one<V1ClusterRole>('ClusterRole');
    expect(podSpec().serviceAccountName).toBe(sa.metadata?.name);
    expect(crb.roleRef).toEqual({ apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: cr.metadata?.name });
    expect(crb.subjects).toEqual([{ kind: 'ServiceAccount', name: sa.metadata?.name, namespace: sa.metadata?.namespace }]);
  });

  it('the ClusterRole only reads: get, list and watch, on named resources', () => {
    const cr = one<V1ClusterRole>('ClusterRole');
    expect(cr.rules?.length).toBeGreaterThan(0);
    for (const r of cr.rules ?? []) {
      expect(
        r.verbs.every((v) => ['get', 'list', 'watch'].includes(v)),
        JSON.stringify(r),
      ).toBe(true);
      expect(r.resources ?? [], JSON.stringify(r)).not.toContain('*');
      expect(r.apiGroups ?? [], JSON.stringify(r)).not.toContain('*');
    }
    const can = (group: string, resource: string): boolean =>
      (cr.rules ?? []).some(
        (r) => (r.apiGroups ?? []).includes(group) && (r.resources ?? []).includes(resource) && ['get', 'list', 'watch'].every((v) => r.verbs.includes(v)),
      );
    // What the agent watches (src/agent/wiring/cluster.ts).
    for (const [g, res] of [
      ['', 'pods'],
      ['', 'namespaces'],
      ['', 'nodes'],
      ['networking.k8s.io', 'networkpolicies'],
      ['policy.networking.k8s.io', 'clusternetworkpolicies'],
    ] as const)
      expect(can(g, res), `${g}/${res}`).toBe(true);
    // ClusterNetworkPolicies: read only, and nothing else of their group (not their status, which implementations may write).
    const cnpRules = (cr.rules ?? []).filter((r) => (r.apiGroups ?? []).includes('policy.networking.k8s.io'));
    expect(cnpRules).toEqual([{ apiGroups: ['policy.networking.k8s.io'], resources: ['clusternetworkpolicies'], verbs: ['get', 'list', 'watch'] }]);
    // Their CRD, watched by name (src/agent/crd-watch.ts), and no other CRD.
    const crdRules = (cr.rules ?? []).filter((r) => (r.apiGroups ?? []).includes('apiextensions.k8s.io'));
    expect(crdRules).toEqual([
      {
        apiGroups: ['apiextensions.k8s.io'],
        resources: ['customresourcedefinitions'],
        resourceNames: ['clusternetworkpolicies.policy.networking.k8s.io'],
        verbs: ['get', 'list', 'watch'],
      },
    ]);
    // And every resource whose CRD this file installs.
    for (const crd of docs().filter((d) => d.kind === 'CustomResourceDefinition') as unknown as V1CustomResourceDefinition[]) {
      expect(can(crd.spec.group, crd.spec.names.plural), `${crd.spec.group}/${crd.spec.names.plural}`).toBe(true);
    }
  });

  it('every container runs the weir image of this release', () => {
    for (const c of [...(podSpec().initContainers ?? []), ...podSpec().containers]) {
      expect(c.image, c.name).toBe(`weir:${VERSION}`);
      expect(c.imagePullPolicy, c.name).toBe('IfNotPresent');
    }
  });

  it('capabilities: ALL dropped everywhere; NET_ADMIN the only one added, to the agent; nothing privileged', () => {
    const spec = podSpec();
    expect(spec.hostPID ?? false).toBe(false);
    expect(spec.hostIPC ?? false).toBe(false);
    for (const c of [...(spec.initContainers ?? []), ...spec.containers]) {
      const sc = c.securityContext ?? {};
      expect(sc.capabilities?.drop, c.name).toEqual(['ALL']);
      expect(sc.privileged ?? false, c.name).toBe(false);
      expect(sc.allowPrivilegeEscalation ?? false, c.name).toBe(false);
    }
    expect(initContainer().securityContext?.capabilities?.add ?? []).toEqual([]);
    expect(agentContainer().securityContext?.capabilities?.add).toEqual(['NET_ADMIN']);
  });

  it("the init step installs the plugin into the node's /opt/cni/bin from the image's /usr/local/lib/weir", () => {
    const c = initContainer();
    expect(c.command?.slice(0, 2)).toEqual(['/usr/local/bin/weir-agent', 'install-cni']);
    expect(flag(c, 'install-cni-from')).toBe('/usr/local/lib/weir');
    expect(hostPathAt(c, flag(c, 'cni-bin-dir'))).toBe('/opt/cni/bin');
  });

  it("the agent writes the conflist into the node's /etc/cni/net.d, and keeps its socket and IPAM records on the node", () => {
    const c = agentContainer();
    expect(c.command?.[0]).toBe('/usr/local/bin/weir-agent');
    expect(hostPathAt(c, flag(c, 'cni-conf-dir'))).toBe('/etc/cni/net.d');
    expect(hostPathAt(c, flag(c, 'run-dir'))).toBe('/run/weir');
    expect(hostPathAt(c, flag(c, 'data-dir'))).toBe('/var/lib/cni/weir');
  });

  /**
   * A container's environment as the kubelet gives it: literal values, the
   * node's name for spec.nodeName, and the API server's address from the
   * optional ConfigMap weir-api-endpoint (as a kind install writes it).
   */
  const containerEnv = (c: V1Container): Map<string, string> =>
    new Map(
      (c.env ?? []).map((e) => {
        if (e.value !== undefined) return [e.name, e.value];
        const cm = e.valueFrom?.configMapKeyRef;
        if (cm) {
          expect({ name: cm.name, optional: cm.optional }, `${c.name} env ${e.name}`).toEqual({ name: 'weir-api-endpoint', optional: true });
          return [e.name, cm.key === 'host' ? '172.18.0.2' : '6443'];
        }
        expect(e.valueFrom?.fieldRef?.fieldPath, `${c.name} env ${e.name}`).toBe('spec.nodeName');
        return [e.name, 'node-a'];
      }),
    );

  it("each container's command line and WEIR_* environment are ones weir-agent accepts (its own flag parser, strict)", async () => {
    // yargs' getOptions() is real but untyped.
    const known = new Set(Object.keys((agentOptions(yargs([])) as unknown as { getOptions(): { key: Record<string, unknown> } }).getOptions().key));
    for (const c of [initContainer(), agentContainer()]) {
      const env = containerEnv(c);
      for (const name of env.keys()) {
        if (!name.startsWith('WEIR_')) continue;
        const option = name.slice('WEIR_'.length).toLowerCase().replace(/_/g, '-');
        expect(known.has(option), `${c.name}: ${name} is no weir-agent flag (--${option})`).toBe(true);
      }
      const argv = [...(c.command ?? []), ...(c.args ?? [])].slice(1).map((a) => a.replace(/\$\((\w+)\)/g, (m, n: string) => env.get(n) ?? m));
      // The container's environment, as the agent sees it (NODE_NAME is a flag default; WEIR_* are flags).
      const saved = new Map([...env.keys()].map((k) => [k, process.env[k]]));
      for (const [k, v] of env) process.env[k] = v;
      try {
        const parsed = await agentOptions(yargs(argv))
          .command('install-cni', 'install the plugin')
          .strict()
          .exitProcess(false)
          .fail((msg, err) => {
            throw err ?? new Error(`${c.name}: ${msg}`);
          })
          .parseAsync();
        const cfg = toConfig(parsed as Record<string, unknown>);
        expect(cfg.nodeName, c.name).toBe('node-a');
        if (c.name === 'install-cni') expect(parsed._).toEqual(['install-cni']);
        else expect(parsed._).toEqual([]);
      } finally {
        for (const [k, v] of saved) {
          if (v === undefined) delete process.env[k];
          else process.env[k] = v;
        }
      }
    }
  });

  it('knows its node from the downward API', () => {
    for (const c of [initContainer(), agentContainer()]) {
      expect(c.env, c.name).toContainEqual({ name: 'NODE_NAME', valueFrom: { fieldRef: { fieldPath: 'spec.nodeName' } } });
    }
  });

  it("its probes ask the agent's health address", () => {
    const c = agentContainer();
    const port = Number(flag(c, 'health-address')?.split(':').pop());
    const named = (c.ports ?? []).find((p) => p.name === 'health');
    expect(named?.containerPort).toBe(port);
    expect(c.livenessProbe?.httpGet?.port).toBe('health');
    expect(c.readinessProbe?.httpGet?.port).toBe('health');
  });
});

describe('deploy/crds: the upstream ClusterNetworkPolicy CRDs, generated from the pinned Go module', () => {
  const CACHE = path.join(process.env['WEIR_CACHE'] || path.join(os.homedir(), '.cache/weir'), 'network-policy-api-v0.3.0');
  const crd = (channel: string): V1CustomResourceDefinition => {
    const parsed = loadAllYaml(fs.readFileSync(path.join(REPO, `deploy/crds/clusternetworkpolicies.${channel}.yaml`), 'utf8')) as V1CustomResourceDefinition[];
    expect(parsed).toHaveLength(1);
    return parsed[0] as V1CustomResourceDefinition;
  };

  it("each file is upstream's text unchanged after the header, whose sha256 and module sum it names", () => {
    for (const channel of ['standard', 'experimental']) {
      const text = fs.readFileSync(path.join(REPO, `deploy/crds/clusternetworkpolicies.${channel}.yaml`), 'utf8');
      const header = /^(?:#.*\n)+/.exec(text)?.[0] ?? '';
      const body = text.slice(header.length);
      expect(header).toContain(`sigs.k8s.io/network-policy-api@v0.3.0`);
      expect(header).toContain('module sum h1:RL6fVXiix9IW1pj0ImkW645m+EWmb3dBGCiW19bg5+k=');
      const sha = /sha256 ([0-9a-f]{64})/.exec(header)?.[1];
      expect(createHash('sha256').update(body).digest('hex')).toBe(sha);
      // The cache gen-manifests filled from the module holds the same bytes (--check above compares them too).
      if (fs.existsSync(path.join(CACHE, `${channel}.yaml`))) expect(fs.readFileSync(path.join(CACHE, `${channel}.yaml`), 'utf8')).toBe(body);
    }
  });

  it('serve v1beta1 (stored) and v1alpha2, cluster-scoped, in their channel; only the experimental one has domainNames, nodes and named ports', () => {
    for (const channel of ['standard', 'experimental']) {
      const c = crd(channel);
      expect(c.metadata?.name).toBe('clusternetworkpolicies.policy.networking.k8s.io');
      expect(c.metadata?.annotations?.['policy.networking.k8s.io/channel']).toBe(channel);
      expect(c.metadata?.annotations?.['policy.networking.k8s.io/bundle-version']).toBe('v0.3.0');
      expect(c.spec.scope).toBe('Cluster');
      expect(c.spec.versions.map((v) => [v.name, v.served, v.storage])).toEqual([
        ['v1alpha2', true, false],
        ['v1beta1', true, true],
      ]);
      const egressPeer = JSON.stringify(
        c.spec.versions.find((v) => v.name === 'v1beta1')?.schema?.openAPIV3Schema?.properties?.['spec']?.properties?.['egress'],
      );
      for (const field of ['domainNames', 'nodes', 'destinationNamedPort'])
        expect(egressPeer.includes(`"${field}"`), `${channel} ${field}`).toBe(channel === 'experimental');
    }
  });

  it('deploy/weir.yaml does not install them, and says how to', () => {
    expect(
      docs()
        .filter((d) => d.kind === 'CustomResourceDefinition')
        .map((d) => d.metadata.name),
    ).not.toContain('clusternetworkpolicies.policy.networking.k8s.io');
    expect(fs.readFileSync(MANIFEST, 'utf8')).toContain('kubectl apply --server-side -f deploy/crds/clusternetworkpolicies.experimental.yaml');
    expect(fs.readFileSync(path.join(REPO, 'deploy/crds/README.md'), 'utf8')).toMatch(/does not install/);
  });
});
