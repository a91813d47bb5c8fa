// Builds dist/woocommerce.wasm: bundles src/ with its npm dependencies into one ES module
// (esbuild; the host interface stays an import), then makes it a component of the
// `channel-plugin` world with componentize-js. Only wasi io / clocks / random / stderr remain as
// imports besides the world's own, which is what the Daifa host links.

import { build } from 'esbuild';
import { componentize } from '@bytecodealliance/componentize-js';
import { execFileSync } from 'node:child_process';
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

// The host gives plugins no files, sockets or environment: a component that imports them builds
// but finds nothing there. Keep the component to what it needs (the -d flags above), checked here
// with jco.
const ALLOWED = /^(daifa:plugin\/(types|host)@0\.1\.0|wasi:(io\/(poll|error|streams)|clocks\/(monotonic-clock|wall-clock)|random\/random|cli\/stderr)@0\.2\.\d+)$/;
const wit = execFileSync(join(root, 'node_modules', '.bin', 'jco'), ['wit', out], { encoding: 'utf8' });
const imports = [...wit.matchAll(/^\s*import ([^;]+);/gm)].map((m) => m[1]);
const unexpected = imports.filter((name) => !ALLOWED.test(name));
if (unexpected.length > 0 || !/^\s*export daifa:plugin\/channel@0\.1\.0;/m.test(wit)) {
  console.error(`dist/woocommerce.wasm has unexpected imports or lacks the channel export:\n${wit}`);
  process.exit(1);
}
const seconds = ((Date.now() - started) / 1000).toFixed(1);
console.log(`dist/woocommerce.wasm: ${(component.length / 1048576).toFixed(1)} MiB in ${seconds} s`);
