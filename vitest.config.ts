import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts', 'src/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // Integration tests mount file systems and start a registry: keep files from racing for loop devices.
    fileParallelism: true,
    pool: 'forks',
  },
});
