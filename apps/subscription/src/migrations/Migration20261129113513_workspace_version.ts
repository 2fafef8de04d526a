import { Migration } from '@mikro-orm/migrations';

export class Migration20261129113513_workspace_version extends Migration {

  override name = 'Migration20261129113513_workspace_version';

  override up(): void | Promise<void> {
    this.addSql(`alter table "workspaces" add "version" int not null default 1;`);
  }

  override down(): void | Promise<void> {
    this.addSql(`alter table "workspaces" drop column "version";`);
  }

}
