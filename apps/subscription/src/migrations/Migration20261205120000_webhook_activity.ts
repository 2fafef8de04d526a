import { Migration } from '@mikro-orm/migrations';

export class Migration20261205120000_webhook_activity extends Migration {

  override name = 'Migration20261205120000_webhook_activity';

  override up(): void | Promise<void> {
    // No foreign key to webhooks: the history of a deleted webhook stays until retention removes it.
    this.addSql(`create table "webhook_activity" (
      "id" bigserial primary key,
      "workspace_id" varchar(64) not null,
      "webhook_id" varchar(64) not null,
      "webhook_name" text not null,
      "kind" text not null check ("kind" in ('created', 'edited', 'secret_rotated', 'auth_changed', 'deactivated', 'activated', 'disabled_by_breaker', 'disabled_by_plan', 'deliveries_recovered', 'deleted')),
      "actor_kind" text not null check ("actor_kind" in ('api_token', 'portal_session', 'operator', 'system')),
      "actor_name" text not null,
      "token_name" text not null,
      "details" jsonb not null default '{}',
      "created_at" timestamptz not null default now()
    );`);
    this.addSql(`create index "webhook_activity_workspace_id_id_index" on "webhook_activity" ("workspace_id", "id");`);
    this.addSql(`create index "webhook_activity_workspace_id_webhook_id_id_index" on "webhook_activity" ("workspace_id", "webhook_id", "id");`);
    this.addSql(`create index "webhook_activity_created_at_index" on "webhook_activity" ("created_at");`);
  }

  override down(): void | Promise<void> {
    this.addSql(`drop table if exists "webhook_activity";`);
  }

}
