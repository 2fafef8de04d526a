export type EnvSource = Readonly<Record<string, string | undefined>>;

/** One configuration value: how to read it from its variable, and its default. */
export interface Field<T> {
  readonly variable: string;
  readonly description: string;
  readonly parse: (raw: string) => T;
  /** Used when the variable is unset or empty; a field without one is required. */
  readonly fallback?: () => T;
}

export type ConfigOf<S extends Record<string, Field<unknown>>> = { readonly [K in keyof S]: S[K] extends Field<infer T> ? T : never };

export class ConfigError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(`invalid configuration:\n  - ${problems.join('\n  - ')}`);
    this.name = 'ConfigError';
  }
}

const durationUnits: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** "250ms", "30s", "3m", "24h", "7d" or a bare number of milliseconds, to milliseconds. */
export function parseDuration(raw: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(raw.trim());
  if (!match) throw new Error(`"${raw}" is not a duration (use e.g. 500ms, 30s, 3m, 24h)`);
  return Math.round(Number(match[1]) * durationUnits[match[2] ?? 'ms']!);
}

function make<T>(variable: string, description: string, parse: (raw: string) => T, fallback?: T | (() => T)): Field<T> {
  const fb = fallback === undefined ? undefined : typeof fallback === 'function' ? (fallback as () => T) : () => fallback;
  return { variable, description, parse, fallback: fb };
}

/** Builders for the kinds of value the apps read. */
export const field = {
  string: (variable: string, description: string, fallback?: string) => make(variable, description, (raw) => raw, fallback),

  integer: (variable: string, description: string, fallback?: number, range: { min?: number; max?: number } = {}) =>
    make(
      variable,
      description,
      (raw) => {
        if (!/^-?\d+$/.test(raw.trim())) throw new Error(`"${raw}" is not a whole number`);
        const value = Number(raw);
        if (range.min !== undefined && value < range.min) throw new Error(`${value} is below the minimum ${range.min}`);
        if (range.max !== undefined && value > range.max) throw new Error(`${value} is above the maximum ${range.max}`);
        return value;
      },
      fallback,
    ),

  /** Milliseconds, written with a unit. */
  duration: (variable: string, description: string, fallback?: string) =>
    make(variable, description, parseDuration, fallback === undefined ? undefined : () => parseDuration(fallback)),

  /** Comma-separated durations, e.g. "30s,60s,90s". */
  durations: (variable: string, description: string, fallback?: string) => {
    const parse = (raw: string) => {
      const values = raw.split(',').map((part) => parseDuration(part));
      if (values.length === 0) throw new Error('needs at least one duration');
      return values;
    };
    return make(variable, description, parse, fallback === undefined ? undefined : () => parse(fallback));
  },

  boolean: (variable: string, description: string, fallback?: boolean) =>
    make(
      variable,
      description,
      (raw) => {
        const value = raw.trim().toLowerCase();
        if (['1', 'true', 'yes', 'on'].includes(value)) return true;
        if (['0', 'false', 'no', 'off'].includes(value)) return false;
        throw new Error(`"${raw}" is not true or false`);
      },
      fallback,
    ),

  /** Comma-separated list; blanks dropped. */
  list: (variable: string, description: string, fallback?: readonly string[]) =>
    make(
      variable,
      description,
      (raw) =>
        raw
          .split(',')
          .map((item) => item.trim())
          .filter((item) => item.length > 0),
      fallback === undefined ? undefined : () => [...fallback],
    ),

  oneOf: <const T extends string>(variable: string, description: string, choices: readonly T[], fallback?: T) =>
    make(
      variable,
      description,
      (raw) => {
        if (!(choices as readonly string[]).includes(raw)) throw new Error(`"${raw}" is not one of ${choices.join(', ')}`);
        return raw as T;
      },
      fallback,
    ),

  /** A value with its own parser, e.g. a key or a structured list. */
  custom: <T>(variable: string, description: string, parse: (raw: string) => T, fallback?: () => T) =>
    make(variable, description, parse, fallback),
};

/**
 * Declares an app's configuration. `parse(env)` reads every field, collects every problem and throws one
 * ConfigError naming each variable; `describe()` lists the variables for documentation.
 */
export function defineConfig<S extends Record<string, Field<unknown>>>(schema: S) {
  return {
    schema,
    parse(env: EnvSource): ConfigOf<S> {
      const problems: string[] = [];
      const out: Record<string, unknown> = {};
      for (const [key, f] of Object.entries(schema)) {
        const raw = env[f.variable];
        try {
          if (raw === undefined || raw.trim() === '') {
            if (!f.fallback) throw new Error('is required');
            out[key] = f.fallback();
          } else {
            out[key] = f.parse(raw);
          }
        } catch (error) {
          problems.push(`${f.variable}: ${(error as Error).message}`);
        }
      }
      if (problems.length > 0) throw new ConfigError(problems);
      return out as ConfigOf<S>;
    },
    describe(): { variable: string; description: string }[] {
      return Object.values(schema).map((f) => ({ variable: f.variable, description: f.description }));
    },
  };
}
