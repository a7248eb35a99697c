// The soak's churn, as data: a model of the objects the soak owns
// (namespaces, pods, NetworkPolicies) and a seeded generator of the next
// change to it. Pure: nothing here talks to a cluster (apply.ts turns an
// action into kubectl), so the sequence is a function of the seed and the
// config, and unit tests check it.
//
// Names are never reused (a counter), so an action never races the API's
// slow deletion of an older object of the same name (a namespace stays
// Terminating for seconds).
import type { LabelSelector, NetworkPolicyPeer, NetworkPolicyPort, NetworkPolicySpec } from '../../src/policy/types.ts';
import type { Rng } from './rng.ts';

export type Labels = Record<string, string>;

/** The label keys the soak writes; a relabel sets every one of them (a missing one is removed). */
export const POD_LABELS = { app: ['web', 'db', 'api', 'cache'], tier: ['front', 'back'] } as const;
export const NS_LABELS = { team: ['red', 'blue', 'green'], env: ['prod', 'dev'] } as const;
/** Every soak object carries this label: leftovers of an earlier run are found by it. */
export const SOAK_LABEL = 'weir-soak';
/** The ports every soak pod serves (TCP), named as the upstream e2e names them. */
export const PORTS = [80, 81] as const;
export const portName = (port: number): string => `serve-${port}-tcp`;

export interface ScenarioConfig {
  nodes: readonly string[];
  /** The namespace of the prober pods: never deleted, relabelled and given policies like the others. */
  probeNamespace: string;
  /** The prober pods (in probeNamespace): relabelled, never deleted. */
  probers: readonly { name: string; node: string }[];
  /** ipBlock peers to draw from (the cluster's pod CIDRs, with a node's range as an exception). */
  ipBlocks: readonly { cidr: string; except?: string[] }[];
  maxNamespaces: number;
  maxPods: number;
  maxPolicies: number;
}

export interface PodModel {
  ns: string;
  name: string;
  node: string;
  labels: Labels;
  prober: boolean;
}

export type Action =
  | { op: 'ns-create'; ns: string; labels: Labels }
  | { op: 'ns-delete'; ns: string }
  | { op: 'ns-relabel'; ns: string; labels: Labels }
  | { op: 'pod-create'; ns: string; name: string; node: string; labels: Labels }
  | { op: 'pod-delete'; ns: string; name: string; node: string }
  | { op: 'pod-relabel'; ns: string; name: string; labels: Labels }
  | { op: 'netpol-create' | 'netpol-update'; ns: string; name: string; spec: NetworkPolicySpec }
  | { op: 'netpol-delete'; ns: string; name: string };

export type Op = Action['op'];
export type ObjectKind = 'namespaces' | 'pods' | 'networkpolicies';

/** The API kind an action changes, and the object's key (namespace/name, or name). */
export function actionObject(a: Action): { kind: ObjectKind; key: string } {
  if (a.op.startsWith('ns-')) return { kind: 'namespaces', key: a.ns };
  const name = (a as { name: string }).name;
  return { kind: a.op.startsWith('pod-') ? 'pods' : 'networkpolicies', key: `${a.ns}/${name}` };
}

const key = (ns: string, name: string): string => `${ns}/${name}`;

export class Scenario {
  readonly namespaces = new Map<string, Labels>();
  readonly pods = new Map<string, PodModel>();
  readonly policies = new Map<string, NetworkPolicySpec>();
  #seq = 0;
  readonly #rng: Rng;
  readonly #cfg: ScenarioConfig;

  constructor(cfg: ScenarioConfig, rng: Rng) {
    this.#cfg = cfg;
    this.#rng = rng;
    this.namespaces.set(cfg.probeNamespace, {});
    for (const p of cfg.probers)
      this.pods.set(key(cfg.probeNamespace, p.name), { ns: cfg.probeNamespace, name: p.name, node: p.node, labels: this.#podLabels(), prober: true });
  }

  /** The labels the prober pods start with (created by the soak's setup, not by an action). */
  proberLabels(name: string): Labels {
    return this.pods.get(key(this.#cfg.probeNamespace, name))?.labels ?? {};
  }

  churnNamespaces(): string[] {
    return [...this.namespaces.keys()].filter((n) => n !== this.#cfg.probeNamespace);
  }

  churnPods(): PodModel[] {
    return [...this.pods.values()].filter((p) => !p.prober);
  }

  /** The next change, drawn with weights that keep each population near its bound. */
  next(): Action {
    const nss = this.churnNamespaces();
    const pods = this.churnPods();
    const fill = (n: number, max: number): number => (n < max ? 1 + (3 * (max - n)) / max : 0);
    const op = this.#rng.weighted<Op>({
      'ns-create': nss.length === 0 ? 100 : 10 * fill(nss.length, this.#cfg.maxNamespaces),
      'ns-delete': nss.length > 1 ? 2 : 0,
      'ns-relabel': 8,
      'pod-create': nss.length > 0 ? 14 * fill(pods.length, this.#cfg.maxPods) : 0,
      'pod-delete': pods.length > 0 ? (pods.length >= this.#cfg.maxPods ? 25 : 12) : 0,
      'pod-relabel': 15,
      'netpol-create': 8 * fill(this.policies.size, this.#cfg.maxPolicies),
      'netpol-update': this.policies.size > 0 ? 8 : 0,
      'netpol-delete': this.policies.size > 0 ? (this.policies.size >= this.#cfg.maxPolicies ? 12 : 5) : 0,
    });
    return this.#make(op);
  }

  #make(op: Op): Action {
    const r = this.#rng;
    switch (op) {
      case 'ns-create':
        return this.apply({ op, ns: `soak-n${++this.#seq}`, labels: this.#nsLabels() });
      case 'ns-delete':
        return this.apply({ op, ns: r.pick(this.churnNamespaces()) });
      case 'ns-relabel':
        return this.apply({ op, ns: r.pick([...this.namespaces.keys()]), labels: this.#nsLabels() });
      case 'pod-create':
        return this.createPodOn(r.pick(this.#cfg.nodes));
      case 'pod-delete': {
        const p = r.pick(this.churnPods());
        return this.apply({ op, ns: p.ns, name: p.name, node: p.node });
      }
      case 'pod-relabel': {
        const p = r.pick([...this.pods.values()]);
        return this.apply({ op, ns: p.ns, name: p.name, labels: this.#podLabels() });
      }
      case 'netpol-create':
        return this.apply({ op, ns: r.pick([...this.namespaces.keys()]), name: `np${++this.#seq}`, spec: this.#policySpec() });
      case 'netpol-update': {
        const [ns, name] = r.pick([...this.policies.keys()]).split('/') as [string, string];
        return this.apply({ op, ns, name, spec: this.#policySpec() });
      }
      case 'netpol-delete': {
        const [ns, name] = r.pick([...this.policies.keys()]).split('/') as [string, string];
        return this.apply({ op, ns, name });
      }
    }
  }

  /** A new pod on this node (the CNI faults need one there, now). */
  createPodOn(node: string): Action {
    const nss = this.churnNamespaces();
    if (nss.length === 0) throw new Error('no namespace to create a pod in');
    return this.apply({ op: 'pod-create', ns: this.#rng.pick(nss), name: `p${++this.#seq}`, node, labels: this.#podLabels() });
  }

  /** Deletes this pod of the model (the CNI faults choose one that runs). */
  deletePod(podKey: string): Action | undefined {
    const p = this.pods.get(podKey);
    if (!p || p.prober) return undefined;
    return this.apply({ op: 'pod-delete', ns: p.ns, name: p.name, node: p.node });
  }

  /** Records an action in the model; returns it. */
  apply<A extends Action>(a: A): A {
    switch (a.op) {
      case 'ns-create':
      case 'ns-relabel':
        this.namespaces.set(a.ns, a.labels);
        break;
      case 'ns-delete':
        this.namespaces.delete(a.ns);
        for (const [k, p] of this.pods) if (p.ns === a.ns) this.pods.delete(k);
        for (const k of this.policies.keys()) if (k.startsWith(`${a.ns}/`)) this.policies.delete(k);
        break;
      case 'pod-create':
        this.pods.set(key(a.ns, a.name), { ns: a.ns, name: a.name, node: a.node, labels: a.labels, prober: false });
        break;
      case 'pod-delete':
        this.pods.delete(key(a.ns, a.name));
        break;
      case 'pod-relabel': {
        const p = this.pods.get(key(a.ns, a.name));
        if (p) p.labels = a.labels;
        break;
      }
      case 'netpol-create':
      case 'netpol-update':
        this.policies.set(key(a.ns, a.name), a.spec);
        break;
      case 'netpol-delete':
        this.policies.delete(key(a.ns, a.name));
        break;
    }
    return a;
  }

  #podLabels(): Labels {
    const r = this.#rng;
    return { app: r.pick(POD_LABELS.app), ...(r.chance(0.7) ? { tier: r.pick(POD_LABELS.tier) } : {}) };
  }

  #nsLabels(): Labels {
    const r = this.#rng;
    return { team: r.pick(NS_LABELS.team), ...(r.chance(0.5) ? { env: r.pick(NS_LABELS.env) } : {}) };
  }

  #podSelector(): LabelSelector {
    const r = this.#rng;
    switch (r.int(0, 4)) {
      case 0:
        return {};
      case 1:
        return { matchLabels: { app: r.pick(POD_LABELS.app) } };
      case 2:
        return { matchExpressions: [{ key: 'tier', operator: 'In', values: [r.pick(POD_LABELS.tier)] }] };
      case 3:
        return { matchExpressions: [{ key: 'app', operator: 'NotIn', values: [r.pick(POD_LABELS.app), r.pick(POD_LABELS.app)] }] };
      default:
        return { matchLabels: { app: r.pick(POD_LABELS.app) }, matchExpressions: [{ key: 'tier', operator: r.pick(['Exists', 'DoesNotExist']) }] };
    }
  }

  #nsSelector(): LabelSelector {
    const r = this.#rng;
    switch (r.int(0, 3)) {
      case 0:
        return {};
      case 1:
        return { matchLabels: { team: r.pick(NS_LABELS.team) } };
      case 2:
        return { matchExpressions: [{ key: 'env', operator: 'Exists' }] };
      default:
        return { matchLabels: { 'kubernetes.io/metadata.name': r.pick([...this.namespaces.keys()]) } };
    }
  }

  #peer(): NetworkPolicyPeer {
    const r = this.#rng;
    const kind = r.weighted({ pod: 4, ns: 2, both: 3, ip: this.#cfg.ipBlocks.length > 0 ? 1 : 0 });
    if (kind === 'pod') return { podSelector: this.#podSelector() };
    if (kind === 'ns') return { namespaceSelector: this.#nsSelector() };
    if (kind === 'both') return { namespaceSelector: this.#nsSelector(), podSelector: this.#podSelector() };
    const b = r.pick(this.#cfg.ipBlocks);
    return { ipBlock: { cidr: b.cidr, ...(b.except && r.chance(0.5) ? { except: [...b.except] } : {}) } };
  }

  #ports(): NetworkPolicyPort[] | undefined {
    const r = this.#rng;
    switch (r.int(0, 6)) {
      case 0:
      case 1:
        return undefined;
      case 2:
        return [{ protocol: 'TCP', port: 80 }];
      case 3:
        return [{ port: 81 }];
      case 4:
        return [{ protocol: 'TCP', port: portName(81) }];
      case 5:
        return [{ protocol: 'TCP', port: 80, endPort: 81 }];
      default:
        // Never matches the TCP probes: a rule that allows nothing they send.
        return [{ protocol: 'UDP', port: 80 }];
    }
  }

  #rules<K extends 'from' | 'to'>(peerKey: K): Array<Record<K, NetworkPolicyPeer[]> & { ports?: NetworkPolicyPort[] }> {
    const r = this.#rng;
    // No rule at all (deny every connection of this direction) a fifth of the time.
    const n = { none: 0, one: 1, two: 2 }[r.weighted({ none: 2, one: 5, two: 3 })];
    return Array.from({ length: n }, () => {
      const ports = this.#ports();
      const peers = r.chance(0.15) ? undefined : Array.from({ length: r.int(1, 2) }, () => this.#peer());
      return { ...(peers ? { [peerKey]: peers } : {}), ...(ports ? { ports } : {}) } as Record<K, NetworkPolicyPeer[]> & { ports?: NetworkPolicyPort[] };
    });
  }

  #policySpec(): NetworkPolicySpec {
    const types = this.#rng.weighted({ Ingress: 5, Egress: 2, both: 3 });
    const ingress = types !== 'Egress';
    const egress = types !== 'Ingress';
    return {
      podSelector: this.#podSelector(),
      policyTypes: [...(ingress ? ['Ingress'] : []), ...(egress ? ['Egress'] : [])],
      ...(ingress ? { ingress: this.#rules('from') } : {}),
      ...(egress ? { egress: this.#rules('to') } : {}),
    };
  }
}
