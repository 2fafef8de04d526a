import { Migration } from '@mikro-orm/migrations';

export class Migration20261124224308_delivery_log extends Migration {

  override name = 'Migration20261124224308_delivery_log';

  override up(): void | Promise<void> {
    this.addSql(`create table "attempts" ("delivery_id" varchar(64) not null, "number" int not null, "start_time" timestamptz not null, "duration_ms" int not null, "status_code" int not null, "failure_reason" text not null, "response_excerpt" text not null, "request_headers" jsonb not null, "decision" text not null, "retry_at" timestamptz null, primary key ("delivery_id", "number"));`);
    this.addSql(`create index "attempts_start_time_index" on "attempts" ("start_time");`);

    this.addSql(`create table "deliveries" ("id" varchar(64) not null, "workspace_id" varchar(64) not null, "webhook_id" varchar(64) not null, "event_id" varchar(128) not null, "event_type" varchar(64) not null, "status" text not null, "drop_reason" text null, "attempt_count" int not null, "retry_of_delivery_id" varchar(64) null, "body" bytea null, "created_at" timestamptz not null, "updated_at" timestamptz not null, primary key ("id"));`);
    this.addSql(`create index "deliveries_workspace_id_created_at_id_index" on "deliveries" ("workspace_id", "created_at", "id");`);
    this.addSql(`create index "deliveries_workspace_id_webhook_id_created_at_id_index" on "deliveries" ("workspace_id", "webhook_id", "created_at", "id");`);
    this.addSql(`create index "deliveries_workspace_id_status_created_at_id_index" on "deliveries" ("workspace_id", "status", "created_at", "id");`);
    this.addSql(`create index "deliveries_workspace_id_event_type_created_at_id_index" on "deliveries" ("workspace_id", "event_type", "created_at", "id");`);
    this.addSql(`create index "deliveries_created_at_index" on "deliveries" ("created_at");`);

    this.addSql(`alter table "attempts" add constraint "attempts_decision_check" check ("decision" in ('succeeded', 'retry', 'dropped'));`);

    this.addSql(`alter table "deliveries" add constraint "deliveries_status_check" check ("status" in ('pending', 'retrying', 'succeeded', 'dropped'));`);
  }

  override down(): void | Promise<void> {
    this.addSql(`drop table if exists "attempts" cascade;`);
    this.addSql(`drop table if exists "deliveries" cascade;`);
  }

}
