import { describe, expect, it } from 'vitest';
import { type CniEnvSource, isValidContainerId, isValidIfname, parseCniArgs, parseCniEnv, validateContainerId } from '../../../src/cni/env.ts';
import { failure } from './helpers.ts';

const ID = '3f6940ab5ab43bc522569d15b23f8c1bbde1d7678b080398506924fc01d72755';
const full: CniEnvSource = {
  CNI_COMMAND: 'ADD',
  CNI_CONTAINERID: ID,
  CNI_NETNS: '/var/run/netns/cni-1234',
  CNI_IFNAME: 'eth0',
  CNI_PATH: '/opt/cni/bin:/usr/libexec/cni',
  CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0',
};
const env = (over: CniEnvSource): CniEnvSource => ({ ...full, ...over });

describe('CNI_COMMAND', () => {
  it('is required', () => {
    const f = failure(() => parseCniEnv(env({ CNI_COMMAND: undefined })));
    expect(f.code).toBe(4);
    expect(f.msg).toContain('CNI_COMMAND');
    expect(failure(() => parseCniEnv(env({ CNI_COMMAND: '' }))).code).toBe(4);
  });

  it.each(['add', 'FOO', 'INIT', 'ADD '])('refuses unknown %j with code 4', (c) => {
    const f = failure(() => parseCniEnv(env({ CNI_COMMAND: c })));
    expect(f.code).toBe(4);
    expect(f.msg).toContain('CNI_COMMAND');
  });
});

describe('required variables per command', () => {
  const cases: [string, string[]][] = [
    ['ADD', ['CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME']],
    ['CHECK', ['CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME']],
    ['DEL', ['CNI_CONTAINERID', 'CNI_IFNAME']],
    ['GC', ['CNI_PATH']],
  ];
  for (const [command, required] of cases) {
    for (const v of required) {
      it(`${command} without ${v} fails with code 4 naming it`, () => {
        for (const value of [undefined, '']) {
          const f = failure(() => parseCniEnv(env({ CNI_COMMAND: command, [v]: value })));
          expect(f.code).toBe(4);
          expect(f.msg).toBe(`required env variables [${v}] missing`);
        }
      });
    }
  }

  it('lists every missing variable at once', () => {
    const f = failure(() => parseCniEnv({ CNI_COMMAND: 'ADD' }));
    expect(f.msg).toBe('required env variables [CNI_CONTAINERID,CNI_NETNS,CNI_IFNAME] missing');
  });

  it('ADD returns the validated attachment', () => {
    expect(parseCniEnv(full)).toEqual({
      command: 'ADD',
      containerId: ID,
      netns: '/var/run/netns/cni-1234',
      ifname: 'eth0',
      path: ['/opt/cni/bin', '/usr/libexec/cni'],
      args: {
        ignoreUnknown: true,
        pairs: new Map([
          ['IgnoreUnknown', '1'],
          ['K8S_POD_NAMESPACE', 'default'],
          ['K8S_POD_NAME', 'web-0'],
        ]),
        k8s: { namespace: 'default', name: 'web-0' },
      },
    });
  });

  it('ADD and CHECK do not need CNI_PATH or CNI_ARGS', () => {
    for (const command of ['ADD', 'CHECK']) {
      const e = parseCniEnv(env({ CNI_COMMAND: command, CNI_PATH: undefined, CNI_ARGS: undefined }));
      expect(e).toMatchObject({ command, path: [], args: { ignoreUnknown: false, k8s: {} } });
    }
  });

  it('DEL accepts a missing or empty CNI_NETNS', () => {
    for (const netns of [undefined, '']) {
      const e = parseCniEnv(env({ CNI_COMMAND: 'DEL', CNI_NETNS: netns }));
      expect(e.command).toBe('DEL');
      expect(e).toHaveProperty('netns', undefined);
    }
    expect(parseCniEnv(env({ CNI_COMMAND: 'DEL' }))).toHaveProperty('netns', '/var/run/netns/cni-1234');
  });

  it('DEL still validates a CNI_NETNS it is given', () => {
    expect(failure(() => parseCniEnv(env({ CNI_COMMAND: 'DEL', CNI_NETNS: 'relative/ns' }))).code).toBe(4);
  });

  it('STATUS and VERSION need nothing but the command', () => {
    expect(parseCniEnv({ CNI_COMMAND: 'STATUS' })).toEqual({ command: 'STATUS', path: [] });
    expect(parseCniEnv({ CNI_COMMAND: 'VERSION' })).toEqual({ command: 'VERSION' });
  });

  it('GC, STATUS and VERSION ignore attachment variables, even hostile ones', () => {
    const hostile = { CNI_CONTAINERID: '../../etc/x', CNI_IFNAME: 'a/b', CNI_NETNS: 'x', CNI_ARGS: 'bogus' };
    expect(parseCniEnv({ CNI_COMMAND: 'GC', CNI_PATH: '/opt/cni/bin', ...hostile })).toEqual({ command: 'GC', path: ['/opt/cni/bin'] });
    expect(parseCniEnv({ CNI_COMMAND: 'STATUS', ...hostile })).toEqual({ command: 'STATUS', path: [] });
    expect(parseCniEnv({ CNI_COMMAND: 'VERSION', ...hostile })).toEqual({ command: 'VERSION' });
  });
});

describe('CNI_CONTAINERID', () => {
  it.each(['../../etc/x', 'a/b', '.hidden', '-rf', '_x', 'a b', 'a\nb', 'a;b', 'é', 'x'.repeat(300), 'a'.repeat(129)])('refuses %j with code 4', (id) => {
    for (const command of ['ADD', 'DEL', 'CHECK']) {
      const f = failure(() => parseCniEnv(env({ CNI_COMMAND: command, CNI_CONTAINERID: id })));
      expect(f.code).toBe(4);
      expect(f.msg).toContain('CNI_CONTAINERID');
    }
  });

  it.each([ID, 'a', '0', 'pod_1.2-x', 'A'.repeat(128)])('accepts %j', (id) => {
    expect(validateContainerId(id)).toBe(id);
    expect(isValidContainerId(id)).toBe(true);
  });
});

describe('CNI_IFNAME', () => {
  it.each(['.', '..', 'eth/0', 'eth:0', 'eth 0', 'eth\t0', 'a'.repeat(16), 'ééééééééé', 'eth\u00a00'])('refuses %j with code 4', (name) => {
    expect(isValidIfname(name)).toBe(false);
    const f = failure(() => parseCniEnv(env({ CNI_IFNAME: name })));
    expect(f.code).toBe(4);
    expect(f.msg).toContain('CNI_IFNAME');
  });

  it.each(['eth0', 'a', 'net1.100', 'x'.repeat(15), '...', 'éé'])('accepts %j', (name) => {
    expect(isValidIfname(name)).toBe(true);
    expect(parseCniEnv(env({ CNI_IFNAME: name }))).toHaveProperty('ifname', name);
  });
});

describe('CNI_NETNS', () => {
  it.each(['netns', 'proc/1/ns/net', './x', '~/ns'])('refuses relative %j', (ns) => {
    const f = failure(() => parseCniEnv(env({ CNI_NETNS: ns })));
    expect(f.code).toBe(4);
    expect(f.msg).toContain('CNI_NETNS');
  });
});

describe('CNI_ARGS', () => {
  it("parses containerd's exact string", () => {
    const raw =
      'IgnoreUnknown=1;K8S_POD_NAMESPACE=kube-system;K8S_POD_NAME=coredns-7db6d8ff4d-x2x9q;K8S_POD_INFRA_CONTAINER_ID=' +
      ID +
      ';K8S_POD_UID=0b6d2a3e-6c1f-4b8e-9a7a-2f7c1d2e3f40';
    expect(parseCniArgs(raw)).toEqual({
      ignoreUnknown: true,
      pairs: new Map([
        ['IgnoreUnknown', '1'],
        ['K8S_POD_NAMESPACE', 'kube-system'],
        ['K8S_POD_NAME', 'coredns-7db6d8ff4d-x2x9q'],
        ['K8S_POD_INFRA_CONTAINER_ID', ID],
        ['K8S_POD_UID', '0b6d2a3e-6c1f-4b8e-9a7a-2f7c1d2e3f40'],
      ]),
      k8s: { namespace: 'kube-system', name: 'coredns-7db6d8ff4d-x2x9q', infraContainerId: ID, uid: '0b6d2a3e-6c1f-4b8e-9a7a-2f7c1d2e3f40' },
    });
  });

  it('is empty when unset', () => {
    expect(parseCniArgs(undefined)).toEqual({ ignoreUnknown: false, pairs: new Map(), k8s: {} });
    expect(parseCniArgs('')).toEqual({ ignoreUnknown: false, pairs: new Map(), k8s: {} });
  });

  it('refuses unknown keys unless IgnoreUnknown is true', () => {
    const f = failure(() => parseCniArgs('K8S_POD_NAME=a;FOO=bar'));
    expect(f.code).toBe(4);
    expect(f.msg).toContain('FOO');
    expect(failure(() => parseCniArgs('IgnoreUnknown=0;FOO=bar')).code).toBe(4);
    expect(parseCniArgs('IgnoreUnknown=true;FOO=bar').k8s).toEqual({});
    expect(parseCniArgs('FOO=bar;IgnoreUnknown=TRUE').pairs.get('FOO')).toBe('bar');
  });

  it.each(['IgnoreUnknown=yes', 'IgnoreUnknown=', 'FOO', 'A=B=C', 'IgnoreUnknown=1;', ';IgnoreUnknown=1', '=x', 'IgnoreUnknown=1;;K8S_POD_NAME=a'])(
    'refuses malformed %j',
    (raw) => {
      const f = failure(() => parseCniArgs(raw));
      expect(f.code).toBe(4);
      expect(f.msg).toContain('CNI_ARGS');
    },
  );

  it.each([
    ['K8S_POD_NAMESPACE', '../etc'],
    ['K8S_POD_NAMESPACE', 'Default'],
    ['K8S_POD_NAMESPACE', 'a.b'],
    ['K8S_POD_NAMESPACE', 'x'.repeat(64)],
    ['K8S_POD_NAME', 'a/b'],
    ['K8S_POD_NAME', '-web'],
    ['K8S_POD_NAME', 'web..0'],
    ['K8S_POD_NAME', 'x'.repeat(254)],
    ['K8S_POD_UID', '../x'],
    ['K8S_POD_INFRA_CONTAINER_ID', '../../etc/x'],
    ['K8S_POD_INFRA_CONTAINER_ID', 'a'.repeat(129)],
  ])('refuses %s=%j', (key, value) => {
    const f = failure(() => parseCniArgs(`IgnoreUnknown=1;${key}=${value}`));
    expect(f.code).toBe(4);
    expect(f.msg).toContain(key);
  });

  it('accepts the longest valid names and dotted pod names', () => {
    const ns = 'n'.repeat(63);
    const name = `${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(61)}`;
    expect(name.length).toBe(253);
    expect(parseCniArgs(`K8S_POD_NAMESPACE=${ns};K8S_POD_NAME=${name}`).k8s).toEqual({ namespace: ns, name });
  });

  it('treats an empty K8S value as absent and lets the last repeat win', () => {
    expect(parseCniArgs('K8S_POD_UID=').k8s).toEqual({});
    expect(parseCniArgs('K8S_POD_NAME=a;K8S_POD_NAME=b').k8s).toEqual({ name: 'b' });
  });

  it('refuses bad CNI_ARGS from the environment with code 4', () => {
    expect(failure(() => parseCniEnv(env({ CNI_ARGS: 'K8S_POD_NAME=a;X=1' }))).code).toBe(4);
  });
});
