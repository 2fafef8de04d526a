// Typed configuration from environment variables: each app declares one schema, parses it once at start,
// and gets every problem reported together, naming the variable.
export { defineConfig, ConfigError, parseDuration, field } from './schema.js';
export type { Field, ConfigOf, EnvSource } from './schema.js';
export { withProfileDefaults, localProfileDefaults, localDevToken } from './profile.js';
export { sharedFields, urlPolicyFields } from './shared.js';
