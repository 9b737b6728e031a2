import { execFile } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, expect, it } from 'vitest';
import { createTestDatabase } from '@sagabox/testing';

const db = await createTestDatabase();
const file = fileURLToPath(new URL('./.tmp-saga-readme-example.mjs', import.meta.url));
afterAll(async () => {
  rmSync(file, { force: true });
  await db.drop();
});

it("runs the README's saga example as it is written", async () => {
  const readme = readFileSync(fileURLToPath(new URL('../README.md', import.meta.url)), 'utf8');
  const section = readme.slice(readme.indexOf('## Sagas'));
  const code = /```js\n([\s\S]*?)```/.exec(section)?.[1];
  expect(code).toBeDefined();
  writeFileSync(file, code!);
  const stdout = await new Promise<string>((resolve, reject) =>
    execFile(process.execPath, [file], { env: { ...process.env, DATABASE_URL: db.url }, timeout: 40_000 }, (err, out, errOut) =>
      err ? reject(new Error(`${err.message}\n${errOut}`)) : resolve(out)),
  );
  expect(stdout).toContain('saga completed $saga:started reserve:command_sent reserve:completed confirm:completed $saga:completed');
});
