// Committed migrations, in order. Create new ones with `npm run migration:create -- <name>` and add them
// at the end; never edit one that has shipped.
import { Migration20261124213658_initial } from './Migration20261124213658_initial.js';
import { Migration20261124224308_delivery_log } from './Migration20261124224308_delivery_log.js';
import { Migration20261129113513_workspace_version } from './Migration20261129113513_workspace_version.js';
import { Migration20261201090000_endpoint_options } from './Migration20261201090000_endpoint_options.js';
import { Migration20261205120000_webhook_activity } from './Migration20261205120000_webhook_activity.js';
import { Migration20261205150000_partitioned_delivery_log } from './Migration20261205150000_partitioned_delivery_log.js';

export const migrations = [Migration20261124213658_initial, Migration20261124224308_delivery_log, Migration20261129113513_workspace_version, Migration20261201090000_endpoint_options, Migration20261205120000_webhook_activity, Migration20261205150000_partitioned_delivery_log];
