// The annotate page in Firefox (Debian's firefox-esr, driven over WebDriver BiDi by
// puppeteer-core): the same real file and model as the Chromium test, the CPU backend (Firefox
// ESR has no WebGPU), and labels and probabilities equal to `genecompass-train classify`.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import puppeteer from 'puppeteer-core';
import { csvMatchesNative } from '../lib/check.mjs';
import { ARTIFACTS, DATA, classifyNative, startServer, tempDir, webDirWithTinyModel } from '../lib/env.mjs';
import { find } from '../lib/find.mjs';

const FIREFOX = process.env.FIREFOX || '/usr/bin/firefox-esr';
const BARON = path.join(DATA, 'h5ad/baron_mouse_pancreas_822.h5ad');

describe('annotate page in Firefox', () => {
  let dir, server, browser, page;
  const consoleLog = [];

  before(async () => {
    if (!fs.existsSync(FIREFOX)) {
      throw new Error(`no Firefox at ${FIREFOX}; apt-get install -y firefox-esr (or set FIREFOX)`);
    }
    dir = tempDir('gc-e2e-firefox-');
    server = await startServer(webDirWithTinyModel(dir));
    browser = await puppeteer.launch({
      browser: 'firefox',
      executablePath: FIREFOX,
      headless: true,
      protocol: 'webDriverBiDi',
      userDataDir: path.join(dir, 'profile'),
    });
    page = await browser.newPage();
    page.on('console', (m) => consoleLog.push(`[firefox ${m.type()}] ${m.text()}`));
    page.on('pageerror', (e) => consoleLog.push(`[firefox pageerror] ${e.message}`));
    // Downloads are blob URLs: keep each blob so the test can read what a click would save.
    await page.evaluateOnNewDocument(() => {
      const create = URL.createObjectURL.bind(URL);
      window.__blobs = [];
      URL.createObjectURL = (b) => { window.__blobs.push(b); return create(b); };
    });
  });

  after(async () => {
    fs.writeFileSync(path.join(ARTIFACTS, 'console-firefox.log'), consoleLog.join('\n') + '\n');
    await browser?.close();
    server?.stop();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  test('baron mouse pancreas: labels equal the CLI on the CPU backend', async () => {
    assert.match(await browser.version(), /firefox/i);
    await page.goto(server.url);
    await page.waitForSelector(find.modelOptions, { timeout: 60_000 });
    await page.select(find.modelSelect, 'reference-tiny');
    const input = await page.$(find.fileInput);
    await input.uploadFile(BARON);
    await page.waitForFunction((sel) => {
      const stage = document.querySelector(sel.stage)?.textContent || '';
      const err = document.querySelector(sel.error);
      return stage.startsWith('Done') || (err && err.style.display !== 'none' && err.textContent);
    }, { timeout: 300_000 }, find);
    const error = await page.$eval(find.error, (e) => e.textContent);
    assert.equal(error.trim(), '', `the run failed in Firefox: ${error}`);
    assert.equal(await page.$eval(find.reportCells, (e) => e.textContent.trim()), '822');
    assert.match(await page.$eval(find.qcKept, (e) => e.textContent), /^809 of 822/);
    const backend = await page.$eval(find.backend, (e) => e.textContent);
    assert.match(backend, /flex/, 'CPU backend (no WebGPU in Firefox ESR)');
    assert.equal((await page.$$(find.embeddingDots)).length, 809, 'one dot per cell');

    await page.click(find.downloadCsv);
    await page.waitForFunction(() => window.__blobs.length > 0, { timeout: 30_000 });
    const csv = await page.evaluate(() => window.__blobs.at(-1).text());
    const native = classifyNative(BARON, dir);
    const { cells, worst } = csvMatchesNative(csv, native.path);
    assert.equal(cells, 809);
    const speed = await page.$eval(find.speed, (e) => e.textContent);
    console.log(`firefox: ${cells} cells equal to the CLI (max |dp| ${worst.toExponential(1)}), ${speed.trim()}, ${backend.trim()}`);
    await page.screenshot({ path: path.join(ARTIFACTS, 'annotate-baron-firefox.png'), fullPage: true });
  });
});
