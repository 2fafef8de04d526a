// Which replica should own which delivery shard, as a pure function of the live replicas' ids, so every
// replica computes the same answer from the same membership without talking to the others. Each shard
// goes to the replica that ranks it highest (rendezvous hashing) unless that replica already has its fair
// share (ceil(shards / replicas)); then to the next in the shard's ranking. A replica joining or leaving
// moves few shards: most keep the owner they had.

function fnv1a(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  // A final mix, so ids that differ only in their last characters still rank shards differently.
  hash ^= hash >>> 16;
  hash = Math.imul(hash, 0x85ebca6b);
  hash ^= hash >>> 13;
  return hash >>> 0;
}

/** The replicas in the order shard `shard` prefers them (highest score first; ties by id). */
export function preference(shard: number, replicas: readonly string[]): string[] {
  return [...replicas]
    .map((id) => ({ id, score: fnv1a(`${id}/${shard}`) }))
    .sort((a, b) => b.score - a.score || (a.id < b.id ? -1 : 1))
    .map((entry) => entry.id);
}

/**
 * The desired owner of each shard (index = shard), or an empty array when no replica is alive. Shards
 * are spread exactly evenly (each replica gets floor or ceil of shards / replicas). `current` holds each
 * shard's present owner where there is one: a live owner keeps its shard while it is within its share,
 * so a membership change moves only what it must.
 */
export function assignShards(shardCount: number, replicas: readonly string[], current: readonly (string | undefined)[] = []): string[] {
  const live = [...new Set(replicas)].sort();
  if (live.length === 0) return [];
  const base = Math.floor(shardCount / live.length);
  let extra = shardCount % live.length;
  const load = new Map(live.map((id) => [id, 0]));
  const canTake = (id: string) => load.get(id)! < base || (load.get(id)! === base && extra > 0);
  const take = (id: string) => {
    if (load.get(id)! === base) extra--;
    load.set(id, load.get(id)! + 1);
  };
  const owners: (string | undefined)[] = new Array(shardCount).fill(undefined);
  // Present owners keep their shards first, each shard in the order of its preference for them.
  for (let shard = 0; shard < shardCount; shard++) {
    const owner = current[shard];
    if (owner !== undefined && load.has(owner) && canTake(owner)) {
      take(owner);
      owners[shard] = owner;
    }
  }
  for (let shard = 0; shard < shardCount; shard++) {
    if (owners[shard] !== undefined) continue;
    const owner = preference(shard, live).find(canTake)!;
    take(owner);
    owners[shard] = owner;
  }
  return owners as string[];
}
