import { Migration } from '@mikro-orm/migrations';

export class Migration20261124213658_initial extends Migration {

  override name = 'Migration20261124213658_initial';

  override up(): void | Promise<void> {
    this.addSql(`create table "workspaces" ("id" varchar(64) not null, "name" varchar(200) not null, "plan" text not null, "notification_emails" text[] not null, "created_at" timestamptz not null, "updated_at" timestamptz not null, primary key ("id"));`);
    this.addSql(`alter table "workspaces" add constraint "workspaces_plan_check" check ("plan" in ('STARTER', 'GROWTH', 'ADVANCED', 'ENTERPRISE'));`);

    this.addSql(`create table "webhooks" ("id" varchar(64) not null, "workspace_id" varchar(64) not null, "name" varchar(200) not null, "url" text not null, "event_types" text[] not null, "headers" jsonb not null, "status" text not null, "disabled_reason" text null, "disabled_detail" text null, "disabled_at" timestamptz null, "last_error" text null, "secret_sealed" bytea not null, "previous_secret_sealed" bytea null, "previous_secret_expires_at" timestamptz null, "version" int not null default 1, "created_at" timestamptz not null, "updated_at" timestamptz not null, primary key ("id"));`);
    this.addSql(`create index "webhooks_workspace_id_id_index" on "webhooks" ("workspace_id", "id");`);
    this.addSql(`alter table "webhooks" add constraint "webhooks_workspace_id_name_unique" unique ("workspace_id", "name");`);
    this.addSql(`alter table "webhooks" add constraint "webhooks_status_check" check ("status" in ('active', 'disabled'));`);
    this.addSql(`alter table "webhooks" add constraint "webhooks_disabled_reason_check" check ("disabled_reason" in ('manual', 'plan', 'failure_threshold'));`);

    this.addSql(`alter table "webhooks" add constraint "webhooks_workspace_id_foreign" foreign key ("workspace_id") references "workspaces" ("id") on delete cascade;`);
  }

}
