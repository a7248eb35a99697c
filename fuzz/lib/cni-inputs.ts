// How a fuzzer input becomes one plugin invocation (environment + stdin),
// shared by the fuzz targets and by the kernel test that replays the corpus
// on the real executable.
//   cni-stdin: the first byte picks the verb, the rest is stdin, under a
//              valid environment;
//   cni-env:   each CNI_* variable absent, empty, plausible or arbitrary
//              text, over one of a few valid configs.
import { FuzzedDataProvider } from '@jazzer.js/core/dist/FuzzedDataProvider.js';
import { CNI_COMMANDS } from '../../src/cni/command.ts';

export interface CniCase {
  env: Record<string, string>;
  stdin: string;
}

const VALID_ENV = {
  CNI_CONTAINERID: 'c0ffee',
  CNI_NETNS: '/var/run/netns/fuzz',
  CNI_IFNAME: 'eth0',
  CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=pod',
  CNI_PATH: '/opt/cni/bin',
};

export function stdinCase(data: Buffer): CniCase | undefined {
  if (data.length === 0) return undefined;
  const command = CNI_COMMANDS[data[0]! % CNI_COMMANDS.length]!;
  return { env: { ...VALID_ENV, CNI_COMMAND: command }, stdin: data.subarray(1).toString('utf8') };
}

const PLAUSIBLE: Readonly<Record<string, readonly string[]>> = {
  CNI_COMMAND: CNI_COMMANDS,
  CNI_CONTAINERID: ['c0ffee', 'a'.repeat(64), 'x'.repeat(129), '-bad', '../../etc/x', 'c.1_2-3'],
  CNI_NETNS: ['/var/run/netns/fuzz', '/proc/1/ns/net', 'relative'],
  CNI_IFNAME: ['eth0', 'net1', 'a'.repeat(15), 'a'.repeat(16), '..', 'a/b', 'a b', 'é'],
  CNI_ARGS: [
    'IgnoreUnknown=1;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=pod;K8S_POD_UID=1-2',
    'K8S_POD_NAME=p',
    'IgnoreUnknown=maybe',
    'IgnoreUnknown=1;K8S_POD_NAME=a=b',
  ],
  CNI_PATH: ['/opt/cni/bin', '/a::/b', ':'],
};

const CONFIGS = [
  { cniVersion: '1.1.0', name: 'weir', type: 'weir', podCIDRs: ['10.244.1.0/24', 'fd00:10:244:1::/64'] },
  { cniVersion: '0.3.1', name: 'weir', type: 'weir', podCIDRs: ['10.244.1.0/30'] },
  {
    cniVersion: '1.0.0',
    name: 'weir',
    type: 'weir',
    podCIDRs: ['fd00::/120'],
    prevResult: { cniVersion: '1.0.0', interfaces: [{ name: 'eth0', sandbox: '/var/run/netns/fuzz' }], ips: [{ address: 'fd00::2/128', interface: 0 }] },
  },
].map((c) => JSON.stringify(c));

export function envCase(data: Buffer): CniCase {
  const p = new FuzzedDataProvider(data);
  const env: Record<string, string> = {};
  for (const [key, values] of Object.entries(PLAUSIBLE)) {
    const how = p.consumeIntegralInRange(0, 3);
    if (how === 1) env[key] = '';
    else if (how === 2) env[key] = p.pickValue([...values]);
    else if (how === 3) env[key] = p.consumeString(p.consumeIntegralInRange(0, 300));
  }
  return { env, stdin: p.pickValue(CONFIGS) };
}
