// Watches one CustomResourceDefinition by name, so that the agent learns the
// moment an optional kind's CRD is Established (or deleted) instead of at the
// next retry of the kind's own list, whose back-off grows to
// WATCH_RETRY_MAX_MS (crd-gate.ts acts on what this reports). The list and
// the watch both carry `fieldSelector=metadata.name=NAME`: RBAC lets a rule
// restricted to that resourceName list and watch only with that selector,
// and the agent's ClusterRole grants no other CRD.

import { jsonLister } from './api-list.ts';
import type { KubeConfig, Watch } from './client-node.ts';
import { httpStatus, type ListWatch, Reflector, type ReflectorOptions } from './reflector.ts';

export const CRD_PATH = '/apis/apiextensions.k8s.io/v1/customresourcedefinitions';

/** The fields of a CustomResourceDefinition read here. */
export interface Crd {
  metadata?: { name?: string; resourceVersion?: string };
  status?: { conditions?: Array<{ type?: string; status?: string }> };
}

/** The API serves the CRD's kind once its Established condition is True (until the CRD object is gone). */
export const isEstablished = (crd: Crd | undefined): boolean => crd?.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True') ?? false;

/** The list and the watch of the CRD named `name`, and of no other. */
export function crdListWatch(kc: KubeConfig, watch: Watch, name: string): ListWatch<Crd> {
  const fieldSelector = `metadata.name=${name}`;
  return {
    list: jsonLister<Crd>(kc, `${CRD_PATH}?${new URLSearchParams({ fieldSelector })}`),
    watch: (opts, onEvent, onDone) => watch.watch(CRD_PATH, { ...opts, fieldSelector }, onEvent, onDone),
  };
}

export interface CrdWatchHandlers {
  /** Whether the CRD is Established: after the first list, then at each change. */
  served(established: boolean): void;
  /** Whether the agent may read the CRD: false at a 403, true at the next list or event after one. */
  readable(ok: boolean, err?: unknown): void;
  /** Any other failure, retried with the reflector's back-off. */
  error?(err: unknown, attempt: number): void;
}

/** A reflector of the one CRD that reports changes of its state, not its events. */
export function crdReflector(name: string, api: ListWatch<Crd>, on: CrdWatchHandlers, opts: ReflectorOptions = {}): Reflector<Crd> {
  let established: boolean | undefined;
  let forbidden = false;
  const seen = (crd: Crd | undefined): void => {
    if (forbidden) {
      forbidden = false;
      on.readable(true);
    }
    const now = isEstablished(crd);
    if (now === established) return;
    established = now;
    on.served(now);
  };
  return new Reflector<Crd>(
    `customresourcedefinition ${name}`,
    api,
    {
      replace: (items) => seen(items.find((c) => c.metadata?.name === name)),
      event: (type, crd) => {
        if (crd.metadata?.name === name) seen(type === 'DELETED' ? undefined : crd);
      },
      error: (err, attempt) => {
        if (httpStatus(err) !== 403) return on.error?.(err, attempt);
        if (forbidden) return;
        forbidden = true;
        on.readable(false, err);
      },
    },
    opts,
  );
}
