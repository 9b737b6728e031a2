// Copies the repository's migrations/*.sql into packages/core/migrations so the
// published @sagabox/core carries them (see sagaboxMigrationsDir()). Inside the
// repository the root folder is used directly, so running this is only needed to pack.
import { copyFileSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const packageDir = join(dirname(fileURLToPath(import.meta.url)), '..');
const from = join(packageDir, '..', '..', 'migrations');
const to = join(packageDir, 'migrations');
rmSync(to, { recursive: true, force: true });
mkdirSync(to, { recursive: true });
for (const file of readdirSync(from).filter((f) => f.endsWith('.sql'))) {
  copyFileSync(join(from, file), join(to, file));
}
