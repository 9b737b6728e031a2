import fc from 'fast-check-real';

// Every property's runs times SAGABOX_SHAKE (default 10), for `npm run test:shake`.
const factor = Number(process.env.SAGABOX_SHAKE ?? 10);
const shaken: typeof fc = Object.create(fc) as typeof fc;
Object.defineProperty(shaken, 'assert', {
  value: ((property: Parameters<typeof fc.assert>[0], params?: Parameters<typeof fc.assert>[1]) =>
    fc.assert(property, { ...params, numRuns: (params?.numRuns ?? 100) * factor })) as typeof fc.assert,
});
export default shaken;
