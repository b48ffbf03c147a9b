// The browser half of e2e/bench/run.sh: annotates TABLE with MODEL on the page, once on the CPU
// backend and once on WebGPU, checks both against `genecompass-train classify`, times the CLI on
// one thread and on all cores, and prints a markdown report.
//
//   node e2e/bench/browser.mjs MODEL_DIR TABLE.csv WORK_DIR
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { chooseModel, downloadCsv, openApp, upload } from '../lib/action.mjs';
import { csvMatchesNative, runFinishes } from '../lib/check.mjs';
import { ROOT, TRAIN_BIN, WEB_DIST, launchBrowser, startServer, tempDir } from '../lib/env.mjs';
import { find } from '../lib/find.mjs';

const [modelDir, table, work] = process.argv.slice(2);
if (!work) {
  console.error('usage: node e2e/bench/browser.mjs MODEL_DIR TABLE.csv WORK_DIR');
  process.exit(2);
}

/** `genecompass-train classify` on the table with `threads` rayon threads: cells/s as it reports. */
function classify(threads) {
  const out = path.join(work, `classify-${threads}.safetensors`);
  const run = spawnSync(TRAIN_BIN, ['classify', '--checkpoint', modelDir, '--input', table,
    '--output', out], { encoding: 'utf8', env: { ...process.env, RAYON_NUM_THREADS: String(threads) } });
  if (run.status !== 0) throw new Error(`classify failed:\n${run.stderr}`);
  const speed = Number(run.stderr.match(/\(([\d.]+) cells\/s\)/)?.[1]);
  return { out, speed };
}

/** Waits for the first result rows, or fails with the page's error message. */
async function firstRowsOrError(page) {
  await page.waitForFunction((sel) => {
    const err = document.querySelector(sel.error);
    return document.querySelector(sel.resultRows) ||
      (err && err.style.display !== 'none' && err.textContent.trim());
  }, find, { timeout: 3_600_000 });
  const error = (await page.textContent(find.error)).trim();
  if (error) throw new Error(`the page failed: ${error}`);
}

/** One annotation on a freshly opened page with `backend`: speed, time to the first rows, and a
 * check against the CLI. */
async function annotate(page, url, backend, native) {
  await openApp(page, url);
  await chooseModel(page, 'bench');
  await page.selectOption(find.backendChoice, backend);
  const t0 = Date.now();
  await upload(page, table);
  await firstRowsOrError(page);
  const firstRows = (Date.now() - t0) / 1e3;
  await runFinishes(page, 3_600_000);
  const total = (Date.now() - t0) / 1e3;
  const speed = Number((await page.textContent(find.speed)).match(/([\d.]+) cells\/s/)[1]);
  const label = (await page.textContent(find.backend)).trim();
  const cells = Number((await page.textContent(find.progressText)).match(/^(\d+)/)[1]);
  const { worst } = csvMatchesNative(await downloadCsv(page), native);
  const run = { backend, label, cells, speed, firstRows, total, worst };
  console.error(`${backend}: ${JSON.stringify(run)}`);
  return run;
}

const dir = tempDir('gc-bench-browser-');
const web = path.join(dir, 'web');
fs.cpSync(WEB_DIST, web, { recursive: true });
const medians = path.join(modelDir, 'gene_medians.json');
execFileSync(path.join(ROOT, 'scripts/add-web-model.sh'), [web, 'bench', 'benchmark classifier',
  modelDir, path.join(modelDir, 'token_dict.json'), ...(fs.existsSync(medians) ? [medians] : [])]);
const config = JSON.parse(fs.readFileSync(path.join(modelDir, 'config.json'), 'utf8'));
const modelBytes = fs.readdirSync(path.join(web, 'models/bench'))
  .reduce((n, f) => n + fs.statSync(path.join(web, 'models/bench', f)).size, 0);
const wasm = fs.readFileSync(path.join(web, 'genecompass_web_bg.wasm'));
const wasmGz = zlib.gzipSync(wasm, { level: 9 }).length;

const one = classify(1);
const all = classify(os.cpus().length);
console.error(`CLI: ${one.speed} cells/s on 1 thread, ${all.speed} on ${os.cpus().length}`);
const server = await startServer(web);
const browser = await launchBrowser();
const runs = [];
try {
  const page = browser.page;
  for (const backend of (process.env.BACKENDS || 'cpu webgpu').split(' ')) {
    runs.push(await annotate(page, server.url, backend, one.out));
  }
} finally {
  await browser.close();
  server.stop();
  fs.rmSync(dir, { recursive: true, force: true });
}
const cpu = runs[0];
for (const r of runs) assert.match(r.label, r.backend === 'cpu' ? /^CPU/ : /^WebGPU/);

const mib = (b) => (b / 2 ** 20).toFixed(1);
const shape = `${config.num_hidden_layers} layers, hidden ${config.hidden_size}, ` +
  `${config.num_attention_heads} heads, vocabulary ${config.vocab_size}`;
console.log(`# Browser inference benchmark, ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC\n`);
console.log(`machine: ${os.cpus().length} cores (${os.cpus()[0].model.trim()}); Chromium headless ` +
  `(${execFileSync(process.env.CHROMIUM || '/usr/bin/chromium', ['--version'], { encoding: 'utf8' }).trim()})`);
console.log(`model: ${shape}; cells: ${cpu.cells} of ${path.basename(table)} (Baron mouse pancreas)`);
console.log(`wasm bundle: ${mib(wasm.length)} MiB (${mib(wasmGz)} MiB gzip -9); model download: ${mib(modelBytes)} MiB\n`);
console.log('| where | backend | cells/s | ÷ CLI, 1 thread | first rows after | whole run | max \\|Δp\\| vs CLI |');
console.log('|---|---|---:|---:|---:|---:|---:|');
for (const r of runs) {
  console.log(`| browser | ${r.label} | ${r.speed.toFixed(2)} | ${(r.speed / one.speed).toFixed(2)}× | ` +
    `${r.firstRows.toFixed(1)} s | ${r.total.toFixed(1)} s | ${r.worst.toExponential(1)} |`);
}
console.log(`| CLI (release) | flex, 1 thread | ${one.speed.toFixed(2)} | 1.00× | | | |`);
console.log(`| CLI (release) | flex, ${os.cpus().length} threads | ${all.speed.toFixed(2)} | ` +
  `${(all.speed / one.speed).toFixed(2)}× | | | |`);
