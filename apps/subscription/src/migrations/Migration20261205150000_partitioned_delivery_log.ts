import { Migration } from '@mikro-orm/migrations';

/**
 * The delivery log partitioned by day, and an event's body stored once (delivery-log/partitions.ts has the
 * rules). Existing rows are kept: the old tables are renamed, their rows copied into the partitions of
 * their days, their bodies copied once per event, and the old tables dropped, all in the migration's
 * transaction. The copy takes about as long as writing the log once; a log of tens of millions of rows
 * needs a maintenance window.
 */
export class Migration20261205150000_partitioned_delivery_log extends Migration {

  override name = 'Migration20261205150000_partitioned_delivery_log';

  override up(): void | Promise<void> {
    // The old tables step aside; their primary keys' indexes are renamed so the new ones can take the names.
    this.addSql(`alter table "deliveries" rename to "deliveries_unpartitioned";`);
    this.addSql(`alter table "deliveries_unpartitioned" rename constraint "deliveries_pkey" to "deliveries_unpartitioned_pkey";`);
    this.addSql(`alter table "attempts" rename to "attempts_unpartitioned";`);
    this.addSql(`alter table "attempts_unpartitioned" rename constraint "attempts_pkey" to "attempts_unpartitioned_pkey";`);

    this.addSql(`create table "deliveries" ("id" varchar(64) not null, "workspace_id" varchar(64) not null, "webhook_id" varchar(64) not null, "event_id" varchar(128) not null, "event_type" varchar(64) not null, "status" text not null check ("status" in ('pending', 'retrying', 'succeeded', 'dropped')), "drop_reason" text null, "attempt_count" int not null, "retry_of_delivery_id" varchar(64) null, "created_at" timestamptz not null, "updated_at" timestamptz not null, primary key ("id", "created_at")) partition by range ("created_at");`);
    // created_at: the delivery's, so a delivery's attempts are in the same day's partition as the delivery.
    this.addSql(`create table "attempts" ("delivery_id" varchar(64) not null, "number" int not null, "created_at" timestamptz not null, "start_time" timestamptz not null, "duration_ms" int not null, "status_code" int not null, "failure_reason" text not null, "response_excerpt" text not null, "request_headers" jsonb not null, "decision" text not null check ("decision" in ('succeeded', 'retry', 'dropped')), "retry_at" timestamptz null, primary key ("delivery_id", "number", "created_at")) partition by range ("created_at");`);
    this.addSql(`create table "event_bodies" ("workspace_id" varchar(64) not null, "event_id" varchar(128) not null, "created_at" timestamptz not null, "body" bytea not null, primary key ("workspace_id", "event_id", "created_at")) partition by range ("created_at");`);

    // Makes the partitions of the given UTC days that do not exist yet, for the three tables, under one
    // advisory lock so replicas making the same day at once do not collide in the catalog.
    this.addSql(`create function log_ensure_partitions(days date[]) returns void language plpgsql as $$
declare
  day date;
  log_table text;
begin
  perform pg_advisory_xact_lock(hashtext('webhooks.log_partitions'));
  foreach day in array days loop
    foreach log_table in array array['deliveries', 'attempts', 'event_bodies'] loop
      execute format('create table if not exists %I partition of %I for values from (%L) to (%L)',
        log_table || '_p' || to_char(day, 'YYYYMMDD'), log_table,
        day::timestamp at time zone 'UTC', (day + 1)::timestamp at time zone 'UTC');
    end loop;
  end loop;
end $$;`);

    this.addSql(`select log_ensure_partitions(array(
      select distinct (created_at at time zone 'UTC')::date from "deliveries_unpartitioned"
      union select (now() at time zone 'UTC')::date + n from generate_series(0, 2) n));`);
    this.addSql(`insert into "deliveries" ("id", "workspace_id", "webhook_id", "event_id", "event_type", "status", "drop_reason", "attempt_count", "retry_of_delivery_id", "created_at", "updated_at")
      select "id", "workspace_id", "webhook_id", "event_id", "event_type", "status", "drop_reason", "attempt_count", "retry_of_delivery_id", "created_at", "updated_at" from "deliveries_unpartitioned";`);
    // An attempt whose delivery row is missing (none should be) is kept too, in the day it started.
    this.addSql(`select log_ensure_partitions(array(
      select distinct (a.start_time at time zone 'UTC')::date from "attempts_unpartitioned" a
       where not exists (select 1 from "deliveries_unpartitioned" d where d.id = a.delivery_id)));`);
    this.addSql(`insert into "attempts" ("delivery_id", "number", "created_at", "start_time", "duration_ms", "status_code", "failure_reason", "response_excerpt", "request_headers", "decision", "retry_at")
      select a."delivery_id", a."number", coalesce(d."created_at", a."start_time"), a."start_time", a."duration_ms", a."status_code", a."failure_reason", a."response_excerpt", a."request_headers", a."decision", a."retry_at"
        from "attempts_unpartitioned" a left join "deliveries_unpartitioned" d on d."id" = a."delivery_id";`);
    this.addSql(`insert into "event_bodies" ("workspace_id", "event_id", "created_at", "body")
      select distinct on ("workspace_id", "event_id", "created_at") "workspace_id", "event_id", "created_at", "body"
        from "deliveries_unpartitioned" where "body" is not null;`);
    this.addSql(`drop table "attempts_unpartitioned";`);
    this.addSql(`drop table "deliveries_unpartitioned";`);

    this.addSql(`create index "deliveries_workspace_id_created_at_id_index" on "deliveries" ("workspace_id", "created_at", "id");`);
    this.addSql(`create index "deliveries_workspace_id_webhook_id_created_at_id_index" on "deliveries" ("workspace_id", "webhook_id", "created_at", "id");`);
    this.addSql(`create index "deliveries_workspace_id_status_created_at_id_index" on "deliveries" ("workspace_id", "status", "created_at", "id");`);
    this.addSql(`create index "deliveries_workspace_id_event_type_created_at_id_index" on "deliveries" ("workspace_id", "event_type", "created_at", "id");`);
    // RecoverDeliveries asks whether a delivery was sent again already.
    this.addSql(`create index "deliveries_retry_of_delivery_id_index" on "deliveries" ("retry_of_delivery_id") where "retry_of_delivery_id" is not null;`);
    this.addSql(`create index "attempts_start_time_index" on "attempts" ("start_time");`);
  }

  override down(): void | Promise<void> {
    throw new Error('the partitioned delivery log cannot be migrated down; restore a backup taken before the migration');
  }

}
