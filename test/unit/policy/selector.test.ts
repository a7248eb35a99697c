import { describe, expect, it } from 'vitest';
import {
  compileOptionalSelector,
  compileSelector,
  EVERYTHING,
  formatSelector,
  type LabelSelector,
  matchesLabelSelector,
  NOTHING,
  PolicyError,
  selectorMatches,
} from '../../../src/policy/index.ts';
import { thrown } from './helpers.ts';

const web = { app: 'web', tier: 'front' };
const db = { app: 'db' };
const none = {};

// [selector, labels, expected] straight from the metav1.LabelSelector rules.
const table: [string, LabelSelector, Record<string, string> | undefined, boolean][] = [
  ['{} matches labels', {}, web, true],
  ['{} matches no labels', {}, none, true],
  ['{} matches undefined labels', {}, undefined, true],
  ['matchLabels equal', { matchLabels: { app: 'web' } }, web, true],
  ['matchLabels other value', { matchLabels: { app: 'web' } }, db, false],
  ['matchLabels absent key', { matchLabels: { app: 'web' } }, none, false],
  ['matchLabels all must hold', { matchLabels: { app: 'web', tier: 'back' } }, web, false],
  ['matchLabels empty map', { matchLabels: {} }, db, true],
  ['In hit', { matchExpressions: [{ key: 'app', operator: 'In', values: ['db', 'web'] }] }, web, true],
  ['In miss', { matchExpressions: [{ key: 'app', operator: 'In', values: ['db'] }] }, web, false],
  ['In absent key', { matchExpressions: [{ key: 'app', operator: 'In', values: ['db'] }] }, none, false],
  ['NotIn miss', { matchExpressions: [{ key: 'app', operator: 'NotIn', values: ['db'] }] }, web, true],
  ['NotIn hit', { matchExpressions: [{ key: 'app', operator: 'NotIn', values: ['db'] }] }, db, false],
  ['NotIn absent key matches', { matchExpressions: [{ key: 'app', operator: 'NotIn', values: ['db'] }] }, none, true],
  ['Exists present', { matchExpressions: [{ key: 'tier', operator: 'Exists' }] }, web, true],
  ['Exists absent', { matchExpressions: [{ key: 'tier', operator: 'Exists' }] }, db, false],
  ['Exists with empty value', { matchExpressions: [{ key: 'k', operator: 'Exists' }] }, { k: '' }, true],
  ['DoesNotExist absent', { matchExpressions: [{ key: 'tier', operator: 'DoesNotExist' }] }, db, true],
  ['DoesNotExist present', { matchExpressions: [{ key: 'tier', operator: 'DoesNotExist' }] }, web, false],
  ['Exists with values: []', { matchExpressions: [{ key: 'app', operator: 'Exists', values: [] }] }, db, true],
  ['In on the empty value', { matchExpressions: [{ key: 'k', operator: 'In', values: [''] }] }, { k: '' }, true],
  [
    'matchLabels AND matchExpressions both hold',
    { matchLabels: { app: 'web' }, matchExpressions: [{ key: 'tier', operator: 'In', values: ['front'] }] },
    web,
    true,
  ],
  ['matchLabels AND matchExpressions, one fails', { matchLabels: { app: 'web' }, matchExpressions: [{ key: 'tier', operator: 'DoesNotExist' }] }, web, false],
  [
    'expressions are ANDed',
    {
      matchExpressions: [
        { key: 'app', operator: 'Exists' },
        { key: 'app', operator: 'NotIn', values: ['web'] },
      ],
    },
    db,
    true,
  ],
  ['inherited properties are not labels', { matchExpressions: [{ key: 'constructor', operator: 'Exists' }] }, none, false],
  ['toString is not a label for In', { matchLabels: { toString: 'x' } }, none, false],
  ['case-sensitive values', { matchLabels: { app: 'Web' } }, web, false],
];

describe('label selector matching', () => {
  it.each(table)('%s', (_name, sel, labels, want) => {
    expect(selectorMatches(compileSelector(sel), labels)).toBe(want);
    expect(matchesLabelSelector(sel, labels)).toBe(want);
  });

  it('the compiled forms of {} and of a null selector mean all and nothing', () => {
    expect(selectorMatches(EVERYTHING, web)).toBe(true);
    expect(selectorMatches(NOTHING, web)).toBe(false);
    expect(selectorMatches(NOTHING, {})).toBe(false);
  });

  it('absence means what the caller says it means', () => {
    expect(compileOptionalSelector(undefined, 'everything')).toBe(EVERYTHING);
    expect(compileOptionalSelector(null, 'everything')).toBe(EVERYTHING);
    expect(compileOptionalSelector(undefined, 'nothing')).toBe(NOTHING);
    // a present but empty selector is never "nothing"
    expect(selectorMatches(compileOptionalSelector({}, 'nothing'), db)).toBe(true);
  });

  it('equal selectors get equal keys however they are spelled', () => {
    const a = compileSelector({ matchLabels: { app: 'web', tier: 'front' } });
    const b = compileSelector({
      matchExpressions: [
        { key: 'tier', operator: 'In', values: ['front'] },
        { key: 'app', operator: 'In', values: ['web'] },
      ],
    });
    expect(a.key).toBe(b.key);
    const c = compileSelector({ matchExpressions: [{ key: 'x', operator: 'In', values: ['b', 'a', 'b'] }] });
    const d = compileSelector({ matchExpressions: [{ key: 'x', operator: 'In', values: ['a', 'b'] }] });
    expect(c.key).toBe(d.key);
    expect(compileSelector({}).key).not.toBe(NOTHING.key);
  });

  it('formats like kubectl', () => {
    expect(
      formatSelector(
        compileSelector({
          matchLabels: { app: 'web' },
          matchExpressions: [
            { key: 'tier', operator: 'In', values: ['b', 'a'] },
            { key: 'legacy', operator: 'DoesNotExist' },
            { key: 'env', operator: 'NotIn', values: ['prod'] },
            { key: 'team', operator: 'Exists' },
          ],
        }),
      ),
    ).toBe('app=web,env notin (prod),!legacy,team,tier in (a,b)');
    expect(formatSelector(EVERYTHING)).toBe('<everything>');
    expect(formatSelector(NOTHING)).toBe('<nothing>');
  });
});

describe('invalid selectors are refused, never ignored', () => {
  const bad: [string, unknown, string][] = [
    ['In without values', { matchExpressions: [{ key: 'a', operator: 'In' }] }, 'sel.matchExpressions[0].values'],
    ['In with empty values', { matchExpressions: [{ key: 'a', operator: 'In', values: [] }] }, 'sel.matchExpressions[0].values'],
    ['NotIn with empty values', { matchExpressions: [{ key: 'a', operator: 'NotIn', values: [] }] }, 'sel.matchExpressions[0].values'],
    ['Exists with values', { matchExpressions: [{ key: 'a', operator: 'Exists', values: ['x'] }] }, 'sel.matchExpressions[0].values'],
    ['DoesNotExist with values', { matchExpressions: [{ key: 'a', operator: 'DoesNotExist', values: ['x'] }] }, 'sel.matchExpressions[0].values'],
    ['unknown operator', { matchExpressions: [{ key: 'a', operator: 'Gt', values: ['1'] }] }, 'sel.matchExpressions[0].operator'],
    ['operator in the wrong case', { matchExpressions: [{ key: 'a', operator: 'in', values: ['1'] }] }, 'sel.matchExpressions[0].operator'],
    ['missing key', { matchExpressions: [{ operator: 'Exists' }] }, 'sel.matchExpressions[0].key'],
    ['empty key', { matchExpressions: [{ key: '', operator: 'Exists' }] }, 'sel.matchExpressions[0].key'],
    ['non-string value', { matchExpressions: [{ key: 'a', operator: 'In', values: [1] }] }, 'sel.matchExpressions[0].values'],
    [
      'second expression bad',
      {
        matchExpressions: [
          { key: 'a', operator: 'Exists' },
          { key: 'b', operator: 'In' },
        ],
      },
      'sel.matchExpressions[1].values',
    ],
    ['matchExpressions not a list', { matchExpressions: { key: 'a' } }, 'sel.matchExpressions'],
    ['matchLabels not a map', { matchLabels: ['a'] }, 'sel.matchLabels'],
    ['matchLabels value not a string', { matchLabels: { a: 1 } }, 'sel.matchLabels["a"]'],
    ['not an object', 'app=web', 'sel'],
  ];
  it.each(bad)('%s', (_name, sel, field) => {
    const e = thrown(() => compileSelector(sel as LabelSelector, 'sel'));
    expect(e).toBeInstanceOf(PolicyError);
    expect(e.code).toBe('WEIR_POLICY_INVALID');
    expect(e.field).toBe(field);
    expect(e.message).toContain(field);
  });

  it('names the policy when given one', () => {
    const e = thrown(() => compileSelector({ matchExpressions: [{ key: 'a', operator: 'In' }] }, 'spec.podSelector', { namespace: 'x', name: 'p' }));
    expect(e.message).toMatch(/^NetworkPolicy x\/p: spec\.podSelector\.matchExpressions\[0\]\.values: /);
  });
});
