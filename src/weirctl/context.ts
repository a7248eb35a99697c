// What every weirctl command shares: the global flags, the agent's local API
// (GET only), the node's conflist and the plugin's IPAM store. Errors that
// end the command are CtlError with the exit code to use; an unreachable
// agent is exit 2 with a message naming the socket and --socket.
import fs from 'node:fs';
import { AgentUnavailableError, agentCall } from '../agent-api/client.ts';
import type { AgentStatus, EndpointsReply, StateReply } from '../agent-api/types.ts';
import { DEFAULT_DATA_DIR } from '../cni/config.ts';
import { CniCode, WeirError } from '../errors.ts';
import { DiskStore } from '../ipam/disk-store.ts';
import type { AllocationRecord } from '../ipam/store.ts';
import { ConflistError, type LoadedConflist, loadConflist } from './conflist.ts';

export type { AgentStatus, DropRecord, DropsReply, EndpointsReply, StateReply } from '../agent-api/types.ts';

export const DEFAULTS = {
  socket: '/run/weir/agent.sock',
  dataDir: DEFAULT_DATA_DIR,
  cniConfDir: '/etc/cni/net.d',
  cniBinDir: '/opt/cni/bin',
  network: 'weir',
} as const;

export type OutputFormat = 'table' | 'json';

export interface GlobalOptions {
  socket: string;
  /** Undefined: the conflist's dataDir, else /var/lib/cni/weir. */
  dataDir: string | undefined;
  cniConfDir: string;
  network: string;
  output: OutputFormat;
  color: boolean;
}

/** What a command hands back to main: JSON for -o json, text for people, and the exit code. */
export interface CommandResult {
  json: unknown;
  text: string;
  exitCode?: number;
}

/** An error that ends a weirctl command, with the exit code to use. */
export class CtlError extends WeirError {
  readonly code: string = 'WEIR_CTL';
  readonly cniCode = CniCode.Internal;
  readonly exitCode: number;
  constructor(message: string, exitCode = 1) {
    super(message);
    this.exitCode = exitCode;
  }
}

/** Exit code 2: the agent's socket is missing or nobody answers on it. */
export class AgentUnreachableError extends CtlError {
  override readonly code = 'WEIR_AGENT_UNREACHABLE';
  constructor(socket: string, why: string) {
    super(`cannot reach weir-agent at ${socket}: ${why}; is weir-agent running on this node? (point --socket at its socket)`, 2);
  }
}

export interface GetOptions {
  timeoutMs?: number;
  /** Statuses handed back instead of thrown (e.g. 503 from /readyz or /drops). */
  accept?: readonly number[];
}

export class Context {
  readonly opts: GlobalOptions;
  #conflist: LoadedConflist | undefined | null = null;

  constructor(opts: GlobalOptions) {
    this.opts = opts;
  }

  /** GET `path` on the agent's socket; JSON body and status. */
  async call(path: string, o: GetOptions = {}): Promise<{ status: number; json: unknown; text: string }> {
    let r: Awaited<ReturnType<typeof agentCall>>;
    try {
      r = await agentCall(this.opts.socket, 'GET', path, undefined, o.timeoutMs ?? 5000);
    } catch (e) {
      if (e instanceof AgentUnavailableError) {
        const why = fs.existsSync(this.opts.socket) ? e.message.replace(/^cannot reach the agent at \S+: /, '') : 'the socket does not exist';
        throw new AgentUnreachableError(this.opts.socket, why);
      }
      throw e;
    }
    if (r.status >= 400 && !(o.accept ?? []).includes(r.status)) {
      const msg = (r.json as { error?: string } | undefined)?.error ?? r.text.trim();
      throw new CtlError(`weir-agent answered ${path} with ${r.status}: ${msg}`);
    }
    return r;
  }

  async get<T>(path: string, o: GetOptions = {}): Promise<T> {
    return (await this.call(path, o)).json as T;
  }

  status(): Promise<AgentStatus> {
    return this.get<AgentStatus>('/status');
  }

  async state(): Promise<StateReply> {
    // Learned domain addresses come as [name, addresses] pairs (agents that learn them).
    const r = await this.get<Omit<StateReply, 'domainAddresses'> & { domainAddresses?: [string, string[]][] }>('/state', { timeoutMs: 15_000 });
    const { domainAddresses, ...rest } = r;
    return Array.isArray(domainAddresses) ? { ...rest, domainAddresses: new Map(domainAddresses) } : rest;
  }

  endpoints(): Promise<EndpointsReply> {
    return this.get<EndpointsReply>('/endpoints');
  }

  /** The conflist defining --network in --cni-conf-dir, or undefined; throws ConflistError when it is broken. */
  conflist(): LoadedConflist | undefined {
    if (this.#conflist === null) this.#conflist = loadConflist(this.opts.cniConfDir, this.opts.network);
    return this.#conflist;
  }

  /** The conflist, or a CtlError saying where it was looked for. */
  requireConflist(): LoadedConflist {
    let c: LoadedConflist | undefined;
    try {
      c = this.conflist();
    } catch (e) {
      if (e instanceof ConflistError) throw new CtlError(e.message);
      throw e;
    }
    if (!c) throw new CtlError(`no CNI configuration for network "${this.opts.network}" in ${this.opts.cniConfDir} (see --cni-conf-dir and --network)`);
    return c;
  }

  /** --data-dir, else the conflist's dataDir, else the plugin's default. */
  dataDir(): string {
    if (this.opts.dataDir !== undefined) return this.opts.dataDir;
    try {
      return this.conflist()?.conf.dataDir ?? DEFAULTS.dataDir;
    } catch {
      return DEFAULTS.dataDir;
    }
  }

  store(): DiskStore {
    return new DiskStore(this.dataDir(), this.opts.network);
  }

  /** The IPAM records of the network (empty when the store directory does not exist yet; nothing is created). */
  records(): AllocationRecord[] {
    const store = this.store();
    if (!fs.existsSync(store.dir)) return [];
    return store.withLock(() => store.list());
  }
}
