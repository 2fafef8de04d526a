// Timestamps in raw SQL: the driver hands raw rows' timestamps back as formatted text, so raw queries
// select them as milliseconds since the epoch and turn them into dates here.

/** `expression` (a timestamptz) as milliseconds since the epoch. */
export const epochMs = (expression: string) => `(extract(epoch FROM ${expression}) * 1000)::float8`;

/** A date from such a column; null stays null. */
export const dateOf = (ms: number | string | null): Date | null => (ms === null ? null : new Date(Number(ms)));
