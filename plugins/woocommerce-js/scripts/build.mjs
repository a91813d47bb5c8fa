// Builds dist/woocommerce.wasm: bundles src/ into one ES module (esbuild; the host interface
// stays an import, at the version of ../../plugin-sdk/wit), then makes it a component of the
// `channel-plugin` world with componentize-js. Only wasi io / clocks / random / stderr remain as
// imports besides the world's own.

import { build } from 'esbuild';
import { componentize } from '@bytecodealliance/componentize-js';
import { execFileSync } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const witDir = join(root, '..', '..', 'plugin-sdk', 'wit');
const bundle = join(root, 'dist', 'woocommerce.bundle.js');
const out = join(root, 'dist', 'woocommerce.wasm');
const started = Date.now();

// The WIT version the component is built against: the package's, which the manifest must name.
const worlds = await readFile(join(witDir, 'worlds.wit'), 'utf8');
const version = /^package daifa:plugin@([0-9.]+);/m.exec(worlds)?.[1];
const manifest = await readFile(join(root, 'daifa-plugin.toml'), 'utf8');
const declared = /^wit\s*=\s*"([^"]+)"/m.exec(manifest)?.[1];
if (!version || version !== declared) {
  console.error(`plugin-sdk/wit is daifa:plugin@${version}, daifa-plugin.toml says wit = "${declared}"`);
  process.exit(1);
}

await mkdir(join(root, 'dist'), { recursive: true });
await build({
  entryPoints: [join(root, 'src', 'index.js')],
  outfile: bundle,
  bundle: true,
  format: 'esm',
  platform: 'neutral',
  target: 'es2022',
  // `import … from 'daifa:plugin/host'` becomes the versioned interface, left for the component.
  plugins: [
    {
      name: 'daifa-wit',
      setup(b) {
        b.onResolve({ filter: /^daifa:plugin\/[a-z-]+$/ }, (args) => ({
          path: `${args.path}@${version}`,
          external: true,
        }));
      },
    },
  ],
  legalComments: 'inline',
  logLevel: 'warning',
});

const { component } = await componentize({
  sourcePath: bundle,
  witPath: witDir,
  worldName: 'channel-plugin',
  disableFeatures: ['http', 'fetch-event', 'stdio'],
});
await writeFile(out, component);

// The host gives plugins no files, sockets or environment: a component that imports them builds
// but finds nothing there. Keep the component to what it needs (`disableFeatures` above), checked here
// with jco.
const ALLOWED = new RegExp(
  `^(daifa:plugin/(types|host)@${version.replaceAll('.', '\\.')}` +
    '|wasi:(io/(poll|error|streams)|clocks/(monotonic-clock|wall-clock)|random/random|cli/stderr)@0\\.2\\.\\d+)$',
);
const EXPORT = `export daifa:plugin/channel@${version};`;
const wit = execFileSync(join(root, 'node_modules', '.bin', 'jco'), ['wit', out], { encoding: 'utf8' });
const imports = [...wit.matchAll(/^\s*import ([^;]+);/gm)].map((m) => m[1]);
const unexpected = imports.filter((name) => !ALLOWED.test(name));
if (unexpected.length > 0 || !wit.includes(EXPORT)) {
  console.error(`dist/woocommerce.wasm has unexpected imports or lacks the channel export:\n${wit}`);
  process.exit(1);
}
const seconds = ((Date.now() - started) / 1000).toFixed(1);
console.log(`dist/woocommerce.wasm (daifa:plugin@${version}): ${(component.length / 1048576).toFixed(1)} MiB in ${seconds} s`);
