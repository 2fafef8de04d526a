import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError, defineConfig, field, parseDuration } from './index.js';

describe('parseDuration', () => {
  it('reads every unit and bare milliseconds', () => {
    assert.equal(parseDuration('250ms'), 250);
    assert.equal(parseDuration('30s'), 30_000);
    assert.equal(parseDuration('3m'), 180_000);
    assert.equal(parseDuration('24h'), 86_400_000);
    assert.equal(parseDuration('1.5s'), 1_500);
    assert.equal(parseDuration('40'), 40);
  });
  it('refuses what is not a duration', () => {
    assert.throws(() => parseDuration('soon'), /not a duration/);
    assert.throws(() => parseDuration('-5s'), /not a duration/);
  });
});

describe('defineConfig', () => {
  const config = defineConfig({
    port: field.integer('PORT', 'gRPC port', 50051, { min: 0, max: 65535 }),
    deadline: field.duration('DEADLINE', 'attempt deadline', '5s'),
    retries: field.durations('RETRIES', 'retry delays', '30s,60s,90s'),
    tokens: field.list('TOKENS', 'tokens'),
    profile: field.oneOf('PROFILE', 'profile', ['local', 'production'], 'local'),
    verbose: field.boolean('VERBOSE', 'verbose', false),
  });

  it('applies the defaults', () => {
    const parsed = config.parse({ TOKENS: 'a' });
    assert.deepEqual(parsed, { port: 50051, deadline: 5000, retries: [30_000, 60_000, 90_000], tokens: ['a'], profile: 'local', verbose: false });
  });

  it('reads the variables', () => {
    const parsed = config.parse({ PORT: '0', DEADLINE: '50ms', RETRIES: '30ms, 60ms', TOKENS: 'a, b,', PROFILE: 'production', VERBOSE: 'yes' });
    assert.deepEqual(parsed, { port: 0, deadline: 50, retries: [30, 60], tokens: ['a', 'b'], profile: 'production', verbose: true });
  });

  it('reports every bad variable at once, by name', () => {
    try {
      config.parse({ PORT: '70000', DEADLINE: 'x', PROFILE: 'staging', VERBOSE: 'maybe' });
      assert.fail('parse should have thrown');
    } catch (error) {
      assert.ok(error instanceof ConfigError);
      assert.equal(error.problems.length, 5);
      assert.match(error.message, /PORT: 70000 is above the maximum 65535/);
      assert.match(error.message, /DEADLINE: "x" is not a duration/);
      assert.match(error.message, /TOKENS: is required/);
      assert.match(error.message, /PROFILE: "staging" is not one of local, production/);
      assert.match(error.message, /VERBOSE: "maybe" is not true or false/);
    }
  });
});

import { localDevToken, withProfileDefaults } from './index.js';

describe('profiles', () => {
  it('fills the local defaults under what is set', () => {
    const env = withProfileDefaults({ API_TOKENS: 'mine-12345' });
    assert.equal(env.API_TOKENS, 'mine-12345');
    assert.equal(env.ALLOW_HTTP_ENDPOINTS, 'true');
    assert.ok(env.SECRET_ENCRYPTION_KEY);
    assert.equal(withProfileDefaults({}).API_TOKENS, localDevToken);
  });

  it('adds nothing in production, so missing secrets are reported', () => {
    const env = withProfileDefaults({ PROFILE: 'production' });
    assert.equal(env.API_TOKENS, undefined);
    assert.equal(env.SECRET_ENCRYPTION_KEY, undefined);
    const config = defineConfig({ key: field.string('SECRET_ENCRYPTION_KEY', 'key') });
    assert.throws(() => config.parse(env), /SECRET_ENCRYPTION_KEY: is required/);
  });
});
