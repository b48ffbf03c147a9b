// Test environment: paths, the registry server on a temp data dir and port, the native CLI,
// and a fresh headless Chromium profile.
import { spawn, spawnSync, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

export const ROOT = path.resolve(import.meta.dirname, '../..');
export const SHARED = path.resolve(ROOT, '../shared');
export const TINY = path.join(SHARED, 'fixtures/reference-tiny');
export const DATA = path.join(SHARED, 'data');
export const ARTIFACTS = path.join(ROOT, 'e2e/artifacts');
const TARGET = process.env.CARGO_TARGET_DIR || path.join(ROOT, 'target');
export const SERVER_BIN = process.env.GENECOMPASS_BIN || path.join(TARGET, 'debug/genecompass');
export const TRAIN_BIN = process.env.GENECOMPASS_TRAIN_BIN || path.join(TARGET, 'debug/genecompass-train');
export const WEB_DIST = process.env.GENECOMPASS_WEB_DIST || path.join(ROOT, 'web/dist');
export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

fs.mkdirSync(ARTIFACTS, { recursive: true });

export function tempDir(prefix) {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** A copy of the built UI with the reference-tiny classifier in its model list. */
export function webDirWithTinyModel(dir) {
  const web = path.join(dir, 'web');
  fs.cpSync(WEB_DIST, web, { recursive: true });
  execFileSync(path.join(ROOT, 'scripts/add-web-model.sh'), [
    web, 'reference-tiny', 'reference-tiny classifier (random weights, 5 labels)',
    path.join(TINY, 'classifier'), path.join(TINY, 'token_dict.json'),
  ], { stdio: 'pipe' });
  return web;
}

/** Starts `genecompass serve` on a free port, running jobs with the debug `genecompass-train`;
 * resolves with its URL, admin password and data directory. */
export async function startServer(webDir) {
  for (const bin of [SERVER_BIN, TRAIN_BIN]) {
    if (!fs.existsSync(bin)) throw new Error(`${bin} is missing; build it (e2e/run.sh does)`);
  }
  const dir = tempDir('gc-e2e-server-');
  const dataDir = path.join(dir, 'data');
  const proc = spawn(SERVER_BIN, [
    '--data-dir', dataDir, 'serve', '--bind', '127.0.0.1:0', '--web-dir', webDir,
    '--trainer-bin', TRAIN_BIN, '--cancel-grace-secs', '5',
  ], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const started = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start:\n${out}`)), 60_000);
    const look = () => {
      const url = out.match(/listening on (http:\/\/[^/\s]+)/);
      const pw = out.match(/password for `admin` \(shown once\): (\S+)/);
      if (url && pw) {
        clearTimeout(timer);
        resolve({ url: url[1], password: pw[1] });
      }
    };
    proc.stdout.on('data', (d) => { out += d; look(); });
    proc.stderr.on('data', (d) => { out += d; });
    proc.on('exit', (code) => { clearTimeout(timer); reject(new Error(`server exited (${code}):\n${out}`)); });
    proc.on('error', (e) => { clearTimeout(timer); reject(new Error(`cannot start ${SERVER_BIN}: ${e.message}; build it (e2e/run.sh does)`)); });
  });
  return {
    ...started,
    dataDir,
    log: () => out,
    stop: () => { proc.removeAllListeners('exit'); proc.kill('SIGTERM'); fs.rmSync(dir, { recursive: true, force: true }); },
  };
}

/** `genecompass user add` on the server's data directory (the API has no user creation);
 * returns the new user's password and API token. */
export function addUser(server, name, team, role) {
  const out = execFileSync(SERVER_BIN, ['--data-dir', server.dataDir, 'user', 'add', name,
    '--team', team, '--role', role], { encoding: 'utf8' });
  const password = out.match(/password for `[^`]+` \(shown once\): (\S+)/)?.[1];
  const token = out.match(/API token for `[^`]+` \(shown once\): (\S+)/)?.[1];
  if (!password || !token) throw new Error(`unexpected output of user add:\n${out}`);
  return { name, password, token };
}

/** `genecompass-train tokenize` + `classify` on a file with the tiny classifier. */
export function classifyNative(file, dir) {
  const cells = path.join(dir, 'cells.safetensors');
  const out = path.join(dir, 'classify.safetensors');
  execFileSync(TRAIN_BIN, ['tokenize', file, '--token-dict', path.join(TINY, 'token_dict.json'),
    '--output', cells], { stdio: 'pipe' });
  const t0 = process.hrtime.bigint();
  // classify prints its speed on stderr.
  const run = spawnSync(TRAIN_BIN, ['classify', '--checkpoint', path.join(TINY, 'classifier'),
    '--input', cells, '--output', out], { encoding: 'utf8' });
  if (run.status !== 0) throw new Error(`genecompass-train classify failed:\n${run.stderr}`);
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const log = run.stdout + run.stderr;
  return { path: out, seconds, log };
}

/** Headless Chromium with a fresh profile; console output of page and worker is kept. */
export async function launchBrowser() {
  const profile = tempDir('gc-e2e-chromium-');
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    acceptDownloads: true,
    viewport: { width: 1100, height: 900 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--enable-unsafe-webgpu'],
  });
  const consoleLog = [];
  const watch = (page) => {
    page.on('console', (m) => consoleLog.push(`[${m.type()}] ${m.text()}`));
    page.on('pageerror', (e) => consoleLog.push(`[pageerror] ${e.message}`));
    page.on('worker', (w) => w.on('console', (m) => consoleLog.push(`[worker ${m.type()}] ${m.text()}`)));
  };
  context.pages().forEach(watch);
  context.on('page', watch);
  return {
    context,
    consoleLog,
    page: context.pages()[0] || await context.newPage(),
    close: async () => {
      fs.writeFileSync(path.join(ARTIFACTS, 'console.log'), consoleLog.join('\n') + '\n', { flag: 'a' });
      await context.close();
      fs.rmSync(profile, { recursive: true, force: true });
    },
  };
}
