import { Migration } from '@mikro-orm/migrations';

export class Migration20261201090000_endpoint_options extends Migration {

  override name = 'Migration20261201090000_endpoint_options';

  override up(): void | Promise<void> {
    this.addSql(`alter table "webhooks" add "rate_limit" int null, add "auth_kind" text check ("auth_kind" in ('basic', 'oauth', 'mtls')) null, add "auth_sealed" bytea null;`);
  }

  override down(): void | Promise<void> {
    this.addSql(`alter table "webhooks" drop column "rate_limit", drop column "auth_kind", drop column "auth_sealed";`);
  }

}
