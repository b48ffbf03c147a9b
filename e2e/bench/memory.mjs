// The browser half of e2e/bench/memory.sh: annotates each file on the page (CPU backend, the
// reference-tiny classifier) in a fresh worker and reads the worker's peak wasm memory from the
// page, to show it follows the chunk being processed, not the file size. Prints a markdown table.
//
//   node e2e/bench/memory.mjs FILE...
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { chooseModel, openApp, upload } from '../lib/action.mjs';
import { runFinishes } from '../lib/check.mjs';
import { launchBrowser, startServer, tempDir, webDirWithTinyModel } from '../lib/env.mjs';
import { find } from '../lib/find.mjs';

const files = process.argv.slice(2);
if (!files.length) {
  console.error('usage: node e2e/bench/memory.mjs FILE...');
  process.exit(2);
}

const mib = (b) => (b / 2 ** 20).toFixed(1);
const dir = tempDir('gc-bench-memory-');
const server = await startServer(webDirWithTinyModel(dir));
const browser = await launchBrowser();
const runs = [];
try {
  const page = browser.page;
  for (const file of files) {
    // A fresh page, hence a fresh worker whose memory starts from nothing.
    await openApp(page, server.url);
    await chooseModel(page, 'reference-tiny');
    await page.selectOption(find.backendChoice, 'cpu');
    const t0 = Date.now();
    await upload(page, file);
    await page.waitForSelector(find.resultRows, { timeout: 3_600_000 });
    const firstRows = (Date.now() - t0) / 1e3;
    await runFinishes(page, 3_600_000);
    const seconds = (Date.now() - t0) / 1e3;
    const memory = (await page.textContent(find.workerMemory)).trim();
    const cells = Number((await page.textContent(find.progressText)).match(/^(\d+)/)[1]);
    const run = { file: path.basename(file), bytes: fs.statSync(file).size, cells, memory, firstRows, seconds };
    console.error(JSON.stringify(run));
    runs.push(run);
  }
} finally {
  await browser.close();
  server.stop();
  fs.rmSync(dir, { recursive: true, force: true });
}

console.log(`# Browser worker memory, ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC\n`);
console.log(`machine: ${os.cpus().length} cores; Chromium headless ` +
  `(${execFileSync(process.env.CHROMIUM || '/usr/bin/chromium', ['--version'], { encoding: 'utf8' }).trim()}); ` +
  'model: reference-tiny classifier, CPU backend\n');
console.log('| file | size MiB | cells annotated | worker memory (peak) | first rows after | whole run |');
console.log('|---|---:|---:|---:|---:|---:|');
for (const r of runs) {
  console.log(`| ${r.file} | ${mib(r.bytes)} | ${r.cells} | ${r.memory.replace('worker memory ', '')} | ` +
    `${r.firstRows.toFixed(1)} s | ${r.seconds.toFixed(0)} s |`);
}
