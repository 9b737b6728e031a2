// fast-check itself, under a second name: vitest.shake.config.ts points 'fast-check'
// at test/support/fast-check-shake.ts, which wraps this.
declare module 'fast-check-real' {
  import fc from 'fast-check';
  export default fc;
}
