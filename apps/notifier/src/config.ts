import { defineConfig, field, sharedFields } from '@webhooks/config';

export const notifierConfig = defineConfig({
  ...sharedFields,
  port: field.integer('NOTIFIER_HEALTH_PORT', 'gRPC health port of the notifier (0 picks a free one)', 50054, { min: 0, max: 65535 }),
});
