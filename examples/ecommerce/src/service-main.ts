// Entry point of one service process: `node dist/service-main.js <service>`, forked by
// the demo's supervisor with its configuration in SAGABOX_DEMO_CONFIG (JSON). It sends
// { type: 'ready' } over IPC once its workers and relay run, and stops cleanly on
// SIGTERM. Chaos kills it with SIGKILL instead, and nothing it committed is lost.
import pino from 'pino';
import type { Logger } from '@sagabox/core';
import { SERVICE_NAMES, type RunningService, type ServiceConfig, type ServiceName } from './services/service-config.js';
import { startInventoryService } from './services/inventory-service.js';
import { startOrdersService } from './services/orders-service.js';
import { startPaymentsService } from './services/payments-service.js';
import { startShippingService } from './services/shipping-service.js';

const starters: Record<ServiceName, (config: ServiceConfig, logger: Logger) => Promise<RunningService>> = {
  orders: startOrdersService,
  inventory: startInventoryService,
  payments: startPaymentsService,
  shipping: startShippingService,
};

const name = process.argv[2] as ServiceName;
if (!SERVICE_NAMES.includes(name)) {
  process.stderr.write(`usage: service-main.js <${SERVICE_NAMES.join('|')}>\n`);
  process.exit(2);
}
const config = JSON.parse(process.env.SAGABOX_DEMO_CONFIG ?? 'null') as ServiceConfig | null;
if (config === null) {
  process.stderr.write('SAGABOX_DEMO_CONFIG is not set; run the demo through main.js\n');
  process.exit(2);
}
const logFile = process.env.SAGABOX_DEMO_LOG_FILE;
const logger = pino(
  { level: process.env.SAGABOX_DEMO_LOG_LEVEL ?? 'info', base: { service: name, pid: process.pid } },
  logFile ? pino.destination({ dest: logFile, append: true, mkdir: true }) : pino.destination(2),
);

const service = await starters[name](config, logger);
logger.info({}, `${name} service started`);
process.send?.({ type: 'ready' });

let stopping = false;
const stop = async (): Promise<void> => {
  if (stopping) return;
  stopping = true;
  try {
    await service.stop();
    logger.info({}, `${name} service stopped`);
    process.exit(0);
  } catch (err) {
    logger.error({ err }, `${name} service did not stop cleanly`);
    process.exit(1);
  }
};
process.on('SIGTERM', () => void stop());
process.on('SIGINT', () => void stop());
// The supervisor going away (its IPC channel closing) stops the service too.
process.on('disconnect', () => void stop());
