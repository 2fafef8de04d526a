// Small concurrency helpers of the delivery consumers; they know nothing of webhooks.

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Runs at most `slots` of the given operations at a time, in the order they were asked for. */
export function limiter(slots: number) {
  let running = 0;
  const waiting: (() => void)[] = [];
  return async <T>(operation: () => Promise<T>): Promise<T> => {
    if (running >= slots) await new Promise<void>((resolve) => waiting.push(resolve));
    running++;
    try {
      return await operation();
    } finally {
      running--;
      waiting.shift()?.();
    }
  };
}

/** Remembers the last `capacity` numbers added; the oldest goes first. */
export class RecentSet {
  private readonly items = new Set<number>();
  constructor(private readonly capacity: number) {}
  add(value: number): void {
    this.items.add(value);
    if (this.items.size > this.capacity) this.items.delete(this.items.values().next().value!);
  }
  has(value: number): boolean {
    return this.items.has(value);
  }
}
