import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  CONFLIST_CNI_VERSION,
  DEFAULT_CONFLIST_NAME,
  FileIoError,
  installFile,
  removeConflist,
  renderConflist,
  writeFileAtomic,
} from '../../../src/agent/cniconf.ts';
import { parseNetConf } from '../../../src/cni/config.ts';
import { CniCode, InvalidConfigError, IoError } from '../../../src/errors.ts';

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'weir-cniconf-'));
});
afterEach(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

const modeOf = (p: string): number => fs.statSync(p).mode & 0o7777;
const entries = (): string[] => fs.readdirSync(dir).sort();

describe('renderConflist', () => {
  it('renders weir then portmap, at cniVersion 1.0.0', () => {
    const text = renderConflist({
      podCIDRs: ['10.244.1.0/24', 'fd00:10:244:1::/64'],
      mtu: 1450,
      dataDir: '/var/lib/cni/weir',
      agentSocket: '/run/weir/agent.sock',
    });
    expect(text).toBe(
      [
        '{',
        '  "cniVersion": "1.0.0",',
        '  "name": "weir",',
        '  "plugins": [',
        '    {',
        '      "type": "weir",',
        '      "podCIDRs": [',
        '        "10.244.1.0/24",',
        '        "fd00:10:244:1::/64"',
        '      ],',
        '      "mtu": 1450,',
        '      "dataDir": "/var/lib/cni/weir",',
        '      "agentSocket": "/run/weir/agent.sock"',
        '    },',
        '    {',
        '      "type": "portmap",',
        '      "capabilities": {',
        '        "portMappings": true',
        '      },',
        '      "snat": true',
        '    }',
        '  ]',
        '}',
        '',
      ].join('\n'),
    );
    expect(CONFLIST_CNI_VERSION).toBe('1.0.0');
    // No cniVersions list: libcni >= 1.2 would pick 1.1.0 from it, which portmap 1.1.1 refuses.
    expect(JSON.parse(text)).not.toHaveProperty('cniVersions');
  });

  it('leaves optional keys out and honours networkName', () => {
    const doc = JSON.parse(renderConflist({ networkName: 'pods', podCIDRs: ['10.244.1.0/24'] }));
    expect(doc.name).toBe('pods');
    expect(doc.plugins[0]).toEqual({ type: 'weir', podCIDRs: ['10.244.1.0/24'] });
    expect(Object.keys(doc)).toEqual(['cniVersion', 'name', 'plugins']);
  });

  it('is deterministic whatever the option order, and canonicalises CIDRs', () => {
    const a = renderConflist({ podCIDRs: ['10.244.1.0/24', 'FD00:10:244:1:0:0:0:0/64'], mtu: 1400, dataDir: '/d', agentSocket: '/s' });
    const b = renderConflist({ agentSocket: '/s', dataDir: '/d', mtu: 1400, podCIDRs: ['10.244.1.0/24', 'fd00:10:244:1::/64'] });
    expect(a).toBe(b);
    expect(a.endsWith('}\n')).toBe(true);
    expect(JSON.parse(a).plugins[0].podCIDRs).toEqual(['10.244.1.0/24', 'fd00:10:244:1::/64']);
  });

  it('produces a weir entry that the plugin parses (as libcni hands it down)', () => {
    const doc = JSON.parse(renderConflist({ podCIDRs: ['10.244.1.0/24', 'fd00::/64'], mtu: 1450 }));
    const conf = parseNetConf(JSON.stringify({ cniVersion: doc.cniVersion, name: doc.name, ...doc.plugins[0] }));
    expect(conf.cniVersion).toBe('1.0.0');
    expect(conf.podCIDRs.map((c) => `${c.address}/${c.prefix}`)).toEqual(['10.244.1.0/24', 'fd00::/64']);
    expect(conf.mtu).toBe(1450);
  });

  it('refuses what the plugin would refuse', () => {
    for (const opts of [
      { podCIDRs: [] },
      { podCIDRs: ['10.244.1.5/24'] },
      { podCIDRs: ['10.244.1.0/24', '10.245.0.0/24'] },
      { podCIDRs: ['nonsense'] },
      { podCIDRs: ['10.244.1.0/24'], mtu: 10 },
      { podCIDRs: ['10.244.1.0/24'], dataDir: 'relative' },
      { podCIDRs: ['10.244.1.0/24'], networkName: 'bad/name' },
      { podCIDRs: ['10.244.1.0/24'], agentSocket: 'agent.sock' },
    ]) {
      expect(() => renderConflist(opts), JSON.stringify(opts)).toThrow(InvalidConfigError);
    }
  });
});

describe('writeFileAtomic', () => {
  it('creates the file with the mode and content, leaving no temp file', () => {
    const p = path.join(dir, DEFAULT_CONFLIST_NAME);
    expect(writeFileAtomic(p, 'one\n')).toBe(true);
    expect(fs.readFileSync(p, 'utf8')).toBe('one\n');
    expect(modeOf(p)).toBe(0o644);
    expect(entries()).toEqual([DEFAULT_CONFLIST_NAME]);
  });

  it('skips the write when the content is the same', () => {
    const p = path.join(dir, 'x.conflist');
    writeFileAtomic(p, 'same');
    const ino = fs.statSync(p).ino;
    const mtime = fs.statSync(p).mtimeMs;
    expect(writeFileAtomic(p, 'same')).toBe(false);
    expect(writeFileAtomic(p, Buffer.from('same'))).toBe(false);
    // Not rewritten: the same inode (a rename would have brought a new one).
    expect(fs.statSync(p).ino).toBe(ino);
    expect(fs.statSync(p).mtimeMs).toBe(mtime);
    expect(entries()).toEqual(['x.conflist']);
  });

  it('replaces the file (a new inode, never written in place) when the content differs', () => {
    const p = path.join(dir, 'x.conflist');
    writeFileAtomic(p, 'old content');
    const ino = fs.statSync(p).ino;
    expect(writeFileAtomic(p, 'new')).toBe(true);
    expect(fs.readFileSync(p, 'utf8')).toBe('new');
    expect(fs.statSync(p).ino).not.toBe(ino);
    // Same length, different bytes.
    expect(writeFileAtomic(p, 'wen')).toBe(true);
    expect(fs.readFileSync(p, 'utf8')).toBe('wen');
    expect(entries()).toEqual(['x.conflist']);
  });

  it('sets the mode exactly, whatever the umask, and fixes a wrong mode', () => {
    const p = path.join(dir, 'secret');
    const old = process.umask(0o077);
    try {
      expect(writeFileAtomic(p, 'a', 0o640)).toBe(true);
      expect(modeOf(p)).toBe(0o640);
      expect(writeFileAtomic(p, 'a', 0o600)).toBe(true);
      expect(modeOf(p)).toBe(0o600);
      expect(writeFileAtomic(p, 'a', 0o600)).toBe(false);
    } finally {
      process.umask(old);
    }
  });

  it('writes large content completely', () => {
    const p = path.join(dir, 'big');
    const data = Buffer.alloc(3 * 1024 * 1024 + 7, 0xab);
    expect(writeFileAtomic(p, data)).toBe(true);
    expect(fs.readFileSync(p).equals(data)).toBe(true);
    expect(writeFileAtomic(p, data)).toBe(false);
  });

  it('reports failures as IoError with the path and errno, leaving no temp file', () => {
    const missing = path.join(dir, 'no-such-dir', 'x.conflist');
    const err = (() => {
      try {
        writeFileAtomic(missing, 'x');
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(IoError);
    expect(err).toBeInstanceOf(FileIoError);
    const fe = err as FileIoError;
    expect(fe.cniCode).toBe(CniCode.IoFailure);
    expect(fe.errnoCode).toBe('ENOENT');
    expect(fe.errno).toBe(2);
    expect(fe.path).toContain(path.join(dir, 'no-such-dir'));
    expect(fe.message).toContain('ENOENT');

    // The target is a directory: the rename fails, the temp file is cleaned up.
    fs.mkdirSync(path.join(dir, 'taken'));
    fs.writeFileSync(path.join(dir, 'taken', 'f'), '');
    expect(() => writeFileAtomic(path.join(dir, 'taken'), 'x')).toThrow(FileIoError);
    expect(entries()).toEqual(['taken']);
  });
});

describe('installFile', () => {
  const sha = (p: string): string => createHash('sha256').update(fs.readFileSync(p)).digest('hex');

  it('installs with mode 0755, skips an identical target, replaces a changed one', () => {
    const srcDir = fs.mkdtempSync(path.join(dir, 'src-'));
    const bin = fs.mkdtempSync(path.join(dir, 'bin-'));
    const src = path.join(srcDir, 'weir');
    fs.writeFileSync(src, '#!/bin/sh\necho v1\n', { mode: 0o600 });

    expect(installFile(src, bin, 'weir')).toBe(true);
    const dst = path.join(bin, 'weir');
    expect(modeOf(dst)).toBe(0o755);
    expect(sha(dst)).toBe(sha(src));
    expect(fs.readdirSync(bin)).toEqual(['weir']);

    const ino = fs.statSync(dst).ino;
    expect(installFile(src, bin, 'weir')).toBe(false);
    expect(fs.statSync(dst).ino).toBe(ino);

    // Same size, different bytes: the hash catches it.
    fs.writeFileSync(src, '#!/bin/sh\necho v2\n');
    expect(installFile(src, bin, 'weir')).toBe(true);
    expect(fs.readFileSync(dst, 'utf8')).toContain('v2');
    expect(fs.statSync(dst).ino).not.toBe(ino);
    expect(modeOf(dst)).toBe(0o755);

    // A wrong mode on an identical file is repaired.
    fs.chmodSync(dst, 0o644);
    expect(installFile(src, bin, 'weir')).toBe(true);
    expect(modeOf(dst)).toBe(0o755);

    // koffi.node goes beside it under its own name.
    const addon = path.join(srcDir, 'koffi.node');
    fs.writeFileSync(addon, Buffer.alloc(2 * 1024 * 1024 + 3, 7));
    expect(installFile(addon, bin, 'koffi.node')).toBe(true);
    expect(sha(path.join(bin, 'koffi.node'))).toBe(sha(addon));
    expect(installFile(addon, bin, 'koffi.node')).toBe(false);
    expect(fs.readdirSync(bin).sort()).toEqual(['koffi.node', 'weir']);
  });

  it('replaces a binary that is open (being executed) instead of writing into it', () => {
    const bin = fs.mkdtempSync(path.join(dir, 'bin-'));
    const src = path.join(dir, 'weir-new');
    fs.writeFileSync(src, 'new binary');
    const dst = path.join(bin, 'weir');
    fs.writeFileSync(dst, 'old binary');
    const fd = fs.openSync(dst, 'r');
    try {
      expect(installFile(src, bin, 'weir')).toBe(true);
      // The open file still reads the old bytes: it was unlinked, not overwritten.
      expect(fs.readFileSync(fd, 'utf8')).toBe('old binary');
    } finally {
      fs.closeSync(fd);
    }
    expect(fs.readFileSync(dst, 'utf8')).toBe('new binary');
  });

  it('refuses bad names and reports a missing source as FileIoError', () => {
    const src = path.join(dir, 'weir');
    fs.writeFileSync(src, 'x');
    for (const name of ['', '.', '..', 'a/b']) expect(() => installFile(src, dir, name)).toThrow(InvalidConfigError);
    expect(() => installFile(path.join(dir, 'missing'), dir, 'weir2')).toThrow(FileIoError);
    expect(() => installFile(dir, path.join(dir, 'x'), 'weir2')).toThrow(FileIoError);
    expect(() => installFile(src, path.join(dir, 'no-such-dir'), 'weir2')).toThrow(/ENOENT/);
  });
});

describe('removeConflist', () => {
  it('removes the file and leftover temp files; a missing file is fine', () => {
    const p = path.join(dir, DEFAULT_CONFLIST_NAME);
    writeFileAtomic(p, renderConflist({ podCIDRs: ['10.244.1.0/24'] }));
    // What a crash between create and rename leaves behind.
    fs.writeFileSync(path.join(dir, `.${DEFAULT_CONFLIST_NAME}.tmp-1-deadbeef`), 'partial');
    fs.writeFileSync(path.join(dir, '99-other.conflist'), '{}');
    expect(removeConflist(dir, DEFAULT_CONFLIST_NAME)).toBe(true);
    expect(entries()).toEqual(['99-other.conflist']);
    expect(removeConflist(dir, DEFAULT_CONFLIST_NAME)).toBe(false);
    expect(removeConflist(path.join(dir, 'gone'), DEFAULT_CONFLIST_NAME)).toBe(false);
    expect(() => removeConflist(dir, '../x')).toThrow(InvalidConfigError);
  });
});
