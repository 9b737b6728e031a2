import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { publish } from '@sagabox/core';
import { useDatabase } from '../support/test-pool.js';
import { waitFor } from '../support/wait-for.js';
import { CLI_PATH, runCli } from '../support/run-cli.js';
import { RABBITMQ_URL, useRabbitMq } from '../support/rabbitmq.js';

const { db, pool, count } = await useDatabase();
const p = pool(4);
const { rabbit, name, drain, depth } = useRabbitMq();

describe('sagabox relay --to amqp://', () => {
  it('relays outbox messages to a RabbitMQ exchange until SIGTERM', async () => {
    const exchange = name('cli');
    const queue = name('cli-q');
    await rabbit.exchangeDeclare({ exchange, type: 'topic', durable: true });
    await rabbit.queueDeclare({ queue, durable: true });
    await rabbit.queueBind({ queue, exchange, routingKey: 'cli.#' });
    const { ids } = await publish(p, [{ topic: 'cli.one', key: 'a', payload: 1 }, { topic: 'cli.two.deep', payload: 2 }]);
    const relay = spawn(process.execPath, [CLI_PATH, 'relay', '--to', RABBITMQ_URL, '--route', `cli.#=${exchange}`, '--log-level', 'warn', '--database-url', db.url], { stdio: 'ignore' });
    await waitFor('relay drained the outbox', async () => (await count('SELECT count(*) AS n FROM sagabox.outbox')) === 0);
    const exited = new Promise<number | null>((r) => relay.once('exit', (code) => r(code)));
    relay.kill('SIGTERM');
    expect(await exited).toBe(0);
    await waitFor('both messages in the queue', async () => (await depth(queue)) === 2);
    expect((await drain(queue)).map((m) => [m.messageId, m.routingKey, m.body])).toEqual([[ids[0], 'cli.one', 1], [ids[1], 'cli.two.deep', 2]]);
  });

  it('refuses a URL of no known broker, and --to with --target-database-url, as usage errors', async () => {
    const unknown = await runCli(['relay', '--to', 'kafka://127.0.0.1:9092', '--route', 'a.#=x', '--database-url', db.url]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/--to must be a nats:\/\/ or amqp:\/\/ URL, got kafka:\/\//);
    const both = await runCli(['relay', '--to', RABBITMQ_URL, '--target-database-url', db.url, '--route', 'a.#=x', '--database-url', db.url]);
    expect(both.code).toBe(2);
    expect(both.stderr).toMatch(/give --to or --target-database-url, not both/);
  });
});
