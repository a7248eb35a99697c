// The agent imports client-node's kubeconfig, watch and request types from
// private module paths (src/agent/client-node.ts says why). This fails when a
// client-node release moves or renames them, before the agent would fail to
// start.
import { describe, expect, it } from 'vitest';
import { HttpMethod, KubeConfig, RequestContext, Watch } from '../../../src/agent/client-node.ts';

describe('client-node private paths', () => {
  it('still export what the agent uses', () => {
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: 'c', server: 'https://192.0.2.1:6443', skipTLSVerify: true }],
      users: [{ name: 'u', token: 't' }],
      contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
      currentContext: 'x',
    });
    expect(kc.getCurrentCluster()?.server).toBe('https://192.0.2.1:6443');
    expect(typeof new Watch(kc).watch).toBe('function');
    expect(HttpMethod.GET).toBe('GET');
    expect(new RequestContext('https://192.0.2.1:6443/api/v1/pods', HttpMethod.GET).getUrl()).toBe('https://192.0.2.1:6443/api/v1/pods');
  });
});
