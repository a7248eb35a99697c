import { describe, expect, it } from 'vitest';
import { bigToJson, colorEnabled, fixedRow, formatAge, formatMs, okFail, paint, renderTable, visibleWidth } from '../../../src/weirctl/table.ts';

describe('renderTable', () => {
  it('aligns columns to the widest cell and leaves no trailing spaces', () => {
    const t = renderTable(
      ['POD', 'IP', 'NOTE'],
      [
        ['shop/web', '10.0.0.1', ''],
        ['a/b', '10.0.0.22', 'x'],
      ],
    );
    expect(t.split('\n')).toEqual(['POD       IP         NOTE', 'shop/web  10.0.0.1', 'a/b       10.0.0.22  x']);
  });

  it('continues multi-line cells on the following lines, aligned', () => {
    const t = renderTable(['A', 'B', 'C'], [['1', 'x\ny', 'z']], { indent: '  ' });
    expect(t.split('\n')).toEqual(['  A  B  C', '  1  x  z', '     y']);
  });

  it('measures coloured text by what shows', () => {
    const red = paint('FAIL', 'red', true);
    expect(red).not.toBe('FAIL');
    expect(visibleWidth(red)).toBe(4);
    const t = renderTable(
      ['S', 'N'],
      [
        [red, 'one'],
        ['OK', 'two'],
      ],
      { color: true },
    );
    // biome-ignore lint/suspicious/noControlCharactersInRegex: strips the ESC-led colour sequences the table adds.
    const lines = t.split('\n').map((l) => l.replace(/\u001b\[[0-9;]*m/g, ''));
    expect(lines).toEqual(['S     N', 'FAIL  one', 'OK    two']);
  });

  it('prints no escape codes without colour', () => {
    expect(renderTable(['A'], [[paint('x', 'green', false)]])).toBe('A\nx');
    expect(okFail(true, false)).toBe('OK');
    expect(okFail(false, false)).toBe('FAIL');
  });
});

describe('colorEnabled', () => {
  it('only on a terminal, and not with NO_COLOR or TERM=dumb', () => {
    expect(colorEnabled({ isTTY: true }, {})).toBe(true);
    expect(colorEnabled({ isTTY: false }, {})).toBe(false);
    expect(colorEnabled({}, {})).toBe(false);
    expect(colorEnabled({ isTTY: true }, { NO_COLOR: '' })).toBe(false);
    expect(colorEnabled({ isTTY: true }, { TERM: 'dumb' })).toBe(false);
  });
});

describe('small formatters', () => {
  it('formatAge', () => {
    expect(formatAge(0)).toBe('0s');
    expect(formatAge(59_999)).toBe('59s');
    expect(formatAge(5 * 60_000)).toBe('5m');
    expect(formatAge(3 * 3600_000 + 12 * 60_000)).toBe('3h12m');
    expect(formatAge(2 * 3600_000)).toBe('2h');
    expect(formatAge(4 * 86400_000 + 2 * 3600_000)).toBe('4d2h');
    expect(formatAge(-5)).toBe('0s');
  });
  it('formatMs', () => {
    expect(formatMs(0.42)).toBe('0.42 ms');
    expect(formatMs(12.34)).toBe('12.3 ms');
    expect(formatMs(250.4)).toBe('250 ms');
    expect(formatMs(1250)).toBe('1.25 s');
  });
  it('bigToJson keeps exact numbers and turns huge ones into text', () => {
    expect(bigToJson(254n)).toBe(254);
    expect(bigToJson(2n ** 64n)).toBe('18446744073709551616');
  });
  it('fixedRow pads all but the last cell', () => {
    expect(fixedRow(['a', 'bb', 'c'], [3, 3])).toBe('a    bb   c');
    expect(fixedRow(['toolong', 'x'], [3])).toBe('toolong  x');
  });
});
