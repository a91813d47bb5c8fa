// Builds dist/woocommerce.wasm: bundles src/ with its npm dependencies into one ES module
// (esbuild; the host interface stays an import), then makes it a component of the
// `channel-plugin` world with componentize-js. Only wasi io / clocks / random / stderr remain as
// imports besides the world's own, which is what the Daifa host links.

import { build } from 'esbuild';
import { componentize } from '@bytecodealliance/componentize-js';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const bundle = join(root, 'dist', 'woocommerce.bundle.js');
const out = join(root, 'dist', 'woocommerce.wasm');
const started = Date.now();

await mkdir(join(root, 'dist'), { recursive: true });
await build({
  entryPoints: [join(root, 'src', 'index.js')],
  outfile: bundle,
  bundle: true,
  format: 'esm',
  platform: 'neutral',
  target: 'es2022',
  external: ['daifa:plugin/*'],
  legalComments: 'inline',
  logLevel: 'warning',
});

const { component } = await componentize({
  sourcePath: bundle,
  witPath: join(root, '..', '..', 'plugin-sdk', 'wit'),
  worldName: 'channel-plugin',
  disableFeatures: ['http', 'fetch-event', 'stdio'],
});
await writeFile(out, component);
const seconds = ((Date.now() - started) / 1000).toFixed(1);
console.log(`dist/woocommerce.wasm: ${(component.length / 1048576).toFixed(1)} MiB in ${seconds} s`);
