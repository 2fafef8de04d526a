// Builds the portal's page into dist/public, which the portal server serves. Everything is bundled:
// nothing is fetched from another origin at run time, and no inline script is emitted (the CSP forbids it).
import { fileURLToPath } from 'node:url';
import react from '@vitejs/plugin-react';
import { defineConfig } from 'vite';

export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  plugins: [react()],
  build: {
    outDir: fileURLToPath(new URL('../dist/public', import.meta.url)),
    emptyOutDir: true,
    // The module preload polyfill would be inlined; every supported browser preloads modules natively.
    modulePreload: { polyfill: false },
    assetsInlineLimit: 0,
    sourcemap: true,
  },
});
