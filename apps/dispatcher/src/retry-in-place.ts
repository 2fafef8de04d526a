// Repeats one write until it succeeds, keeping the task it belongs to alive meanwhile. Knows nothing of
// webhooks: the dispatcher uses it to store an attempt record whose decision is already made, so the
// attempt itself is never made again just because the log was slow.

export interface RetryInPlaceOptions {
  /** Called before every try and every pause (the JetStream message's working()). */
  readonly keepAlive: () => void;
  /** First pause after a failed try; doubled each time up to maxDelayMs. */
  readonly initialDelayMs: number;
  /** Never longer than a try's own timeout, so keepAlive is called well within the ack wait. */
  readonly maxDelayMs: number;
  /** Stop trying (e.g. the process is shutting down): the last error is thrown. */
  readonly givenUp: () => boolean;
  /** Called once after the first failed try, with its error. */
  readonly onFirstFailure?: (error: unknown) => void;
}

/** Resolves with the first successful try; rejects only when givenUp() turns true. */
export async function retryInPlace<T>(write: () => Promise<T>, options: RetryInPlaceOptions): Promise<{ value: T; failedTries: number }> {
  let delay = options.initialDelayMs;
  for (let failedTries = 0; ; failedTries++) {
    try {
      return { value: await write(), failedTries };
    } catch (error) {
      if (failedTries === 0) options.onFirstFailure?.(error);
      if (options.givenUp()) throw error;
      options.keepAlive();
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay = Math.min(options.maxDelayMs, delay * 2);
      options.keepAlive();
    }
  }
}
