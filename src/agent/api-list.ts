// Lists from the Kubernetes API as plain JSON, authenticated by client-node's
// KubeConfig exactly as its Watch is. The typed clients (CoreV1Api…) turn
// every object into generated model classes and back: at 10k pods that was
// most of the first sync's time and garbage, and bundling them (every API
// group's models) cost the agent ~7 MB of code resident for nothing, since
// the cache keeps a slim copy of the wire JSON anyway (cache.ts). Wire JSON
// also keeps NetworkPolicy's `from` as `from` (the typed list says `_from`).
// Watching goes through client-node's Watch as is (apiListWatch).

import { fetch } from 'undici';
import { CniCode, WeirError } from '../errors.ts';
import { HttpMethod, type KubeConfig, RequestContext, type Watch } from './client-node.ts';
import type { Lister, ListPage, ListWatch } from './reflector.ts';

/** An API error with its HTTP status (410, 404, 403…), as the reflector and optional-api.ts read it (reflector.ts httpStatus). */
export class ApiStatusError extends WeirError {
  readonly code = 'WEIR_API_STATUS';
  // Agent-only, about the API server: TryAgainLater, by the rule at WeirError.cniCode.
  readonly cniCode = CniCode.TryAgainLater;
  readonly status: number;
  readonly body: string;
  constructor(method: string, url: string, code: number, body: string) {
    let reason = body.slice(0, 300);
    try {
      reason = (JSON.parse(body) as { message?: string }).message ?? reason;
    } catch {
      // not a Status object: keep the text
    }
    super(`${method} ${url}: HTTP ${code}: ${reason}`);
    this.status = code;
    this.body = body;
  }
}

/** A Lister of `path` (e.g. /api/v1/pods), paged with limit and continue. */
export function jsonLister<T>(kc: KubeConfig, path: string): Lister<T> {
  return async ({ limit, _continue }) => {
    const cluster = kc.getCurrentCluster();
    if (!cluster) throw new Error('no current cluster in the kubeconfig');
    const url = new URL(cluster.server + path);
    url.searchParams.set('limit', String(limit));
    if (_continue) url.searchParams.set('continue', _continue);
    const ctx = new RequestContext(url.toString(), HttpMethod.GET);
    await kc.applySecurityAuthentication(ctx);
    const res = await fetch(url, { method: 'GET', headers: { ...ctx.getHeaders(), accept: 'application/json' }, dispatcher: ctx.getDispatcher() as never });
    const text = await res.text();
    if (res.status !== 200) throw new ApiStatusError('GET', url.pathname, res.status, text);
    const list = JSON.parse(text) as { items?: T[]; metadata?: { resourceVersion?: string; continue?: string } };
    const page: ListPage<T> = { items: list.items ?? [], metadata: { resourceVersion: list.metadata?.resourceVersion ?? '' } };
    if (list.metadata?.continue) (page.metadata as { _continue?: string })._continue = list.metadata.continue;
    return page;
  };
}

/** The reflector's view of one kind on the API server: `list`, and client-node's Watch on `path`. */
export function apiListWatch<T>(watch: Watch, path: string, list: Lister<T>): ListWatch<T> {
  return {
    list,
    watch: (opts, onEvent, onDone) => watch.watch(path, opts, onEvent, onDone),
  };
}
