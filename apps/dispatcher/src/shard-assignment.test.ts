import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { assignShards } from './shard-assignment.js';

function counts(owners: string[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const owner of owners) out.set(owner, (out.get(owner) ?? 0) + 1);
  return out;
}

describe('assignShards', () => {
  it('gives every shard exactly one owner and spreads them evenly', () => {
    for (let replicas = 1; replicas <= 20; replicas++) {
      const ids = Array.from({ length: replicas }, (_, i) => `dispatcher-${i}-a1b2`);
      const owners = assignShards(16, ids);
      assert.equal(owners.length, 16);
      for (const owner of owners) assert.ok(ids.includes(owner));
      for (const [, n] of counts(owners)) assert.ok(n === Math.floor(16 / replicas) || n === Math.ceil(16 / replicas), `${replicas} replicas: one owns ${n}`);
      // With at most 16 replicas, every replica gets work.
      if (replicas <= 16) assert.equal(counts(owners).size, replicas);
    }
  });

  it('is the same whatever order the replicas are listed in', () => {
    const ids = ['c-9', 'a-1', 'b-5'];
    assert.deepEqual(assignShards(16, ids), assignShards(16, [...ids].reverse()));
  });

  it('moves few shards when a replica joins or leaves', () => {
    const three = ['pod-x1', 'pod-y2', 'pod-z3'];
    const before = assignShards(16, three);
    const joined = assignShards(16, [...three, 'pod-w4'], before);
    const moved = before.filter((owner, shard) => joined[shard] !== owner).length;
    // The newcomer takes its share (4 of 16) and nothing else moves.
    assert.equal(moved, 4);
    assert.equal(counts(joined).get('pod-w4'), 4);
    const left = assignShards(16, ['pod-x1', 'pod-y2'], before);
    const keptByOthers = before.filter((owner, shard) => owner !== 'pod-z3' && left[shard] === owner).length;
    const heldByOthers = before.filter((owner) => owner !== 'pod-z3').length;
    assert.equal(keptByOthers, heldByOthers, 'the replicas that stay keep every shard they had');
  });

  it('has no owners without replicas', () => {
    assert.deepEqual(assignShards(16, []), []);
  });
});
