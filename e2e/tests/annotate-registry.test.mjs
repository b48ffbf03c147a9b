// The annotate page with the registry: a signed-in editor picks a registry classifier (a native
// burnpack directory with its token dictionary, what a fine-tune job registers), annotates a
// file with it (labels equal to `genecompass-train classify` on the same version, files cached
// by hash), downloads the h5ad with the labels (equal to `classify --write-h5ad`), and saves the
// run's metrics to the registry with the file uploaded. A manifest model and a CSV show why
// those actions are not available.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { openApp, chooseModel, upload, setThreshold, downloadCsv, downloadH5ad, signIn } from '../lib/action.mjs';
import { runFinishes, csvMatchesNative, parseCsv, h5adMatchesCli, textMatches } from '../lib/check.mjs';
import { ARTIFACTS, DATA, TINY, TRAIN_BIN, tempDir, webDirWithTinyModel, startServer, addUser, launchBrowser } from '../lib/env.mjs';
import { find } from '../lib/find.mjs';

const BARON = path.join(DATA, 'h5ad/baron_mouse_pancreas_822.h5ad');
const DATASET = 'baron_mouse_pancreas_822';
const shot = (page, name) => page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: true });
const sha256 = (bytes) => crypto.createHash('sha256').update(bytes).digest('hex');

describe('annotate with a registry model', () => {
  let dir, server, browser, page, ed, nativeDir, modelId, cli, csvText;
  const api = async (user, p, init = {}) => {
    const r = await fetch(`${server.url}/api/v1/${p}`, {
      ...init, headers: { Authorization: `Bearer ${user.token}`, 'Content-Type': 'application/json' },
    });
    if (!r.ok) assert.fail(`${p}: HTTP ${r.status} ${await r.text()}`);
    return r.json();
  };
  // Model files the page downloads (cache hits make no request).
  const fileRequests = [];

  before(async () => {
    dir = tempDir('gc-e2e-annotate-registry-');
    nativeDir = path.join(dir, 'tiny-native');
    execFileSync(TRAIN_BIN, ['convert', '--checkpoint', path.join(TINY, 'classifier'), '--output', nativeDir], { stdio: 'pipe' });
    fs.copyFileSync(path.join(TINY, 'token_dict.json'), path.join(nativeDir, 'token_dict.json'));
    server = await startServer(webDirWithTinyModel(dir));
    ed = addUser(server, 'ed', 'lab', 'editor');
    const ada = addUser(server, 'ada', 'lab', 'admin');
    const imp = (p, name, aliases) => api(ada, 'checkpoints/import', { method: 'POST', body: JSON.stringify({ path: p, name, aliases }) });
    const v = await imp(nativeDir, 'tiny-native', ['production']);
    modelId = v.model_id;
    assert.equal(v.weights_file, 'model.bpk');
    // The official directory has no token dictionary: listed, but it cannot run in the browser.
    await imp(path.join(TINY, 'classifier'), 'tiny-nodict', []);

    browser = await launchBrowser();
    page = browser.page;
    page.on('request', (r) => { if (r.url().includes('/files/')) fileRequests.push(new URL(r.url()).pathname); });
    await openApp(page, server.url);
    assert.match(await page.textContent(find.registryNote), /Sign in on the Registry tab/);
    await signIn(page, 'ed', ed.password);
    await page.locator(find.modelsTable).waitFor({ timeout: 30_000 });
    await page.click(find.tabAnnotate);
  });

  after(async () => {
    if (page) await shot(page, 'annotate-registry').catch(() => {});
    await browser?.close();
    server?.stop();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  test('the team\'s classifiers are listed with version and aliases; one without a dictionary says why', async () => {
    const option = `${find.modelSelect} option[value="registry:${modelId}:1"]`;
    await page.locator(option).waitFor({ state: 'attached', timeout: 30_000 });
    assert.equal((await page.textContent(option)).trim(), 'tiny-native v1 (latest, production) · lab');
    const nodict = page.locator(`${find.modelSelect} option`, { hasText: 'tiny-nodict' });
    assert.match(await nodict.textContent(), /tiny-nodict v1 \(latest\) · lab \(cannot run here\)/);
    await page.selectOption(find.modelSelect, await nodict.getAttribute('value'));
    await textMatches(page, find.modelInfo, /tiny-nodict, version 1 .*cannot run in the browser: the version has no token_dict\.json/);
    await page.selectOption(find.modelSelect, `registry:${modelId}:1`);
    await textMatches(page, find.modelInfo, /^Registry model tiny-native, version 1 \(aliases latest, production\), team lab\.$/);
  });

  test('annotating with it gives the CLI\'s labels for the same version', async () => {
    await upload(page, BARON);
    await runFinishes(page);
    assert.equal((await page.textContent(find.progressText)).trim(), '809 / 809 cells');
    const base = `/api/v1/models/${modelId}/versions/1/files`;
    assert.deepEqual(fileRequests.sort(), ['config.json', 'model.bpk', 'token_dict.json'].map((f) => `${base}/${f}`));
    assert.equal(await page.getAttribute(find.modelSource, 'data-from-cache'), 'false');
    assert.match(await page.textContent(find.modelSource), /tiny-native v1: downloaded/);

    const out = path.join(dir, 'classify.safetensors');
    const h5ad = path.join(dir, 'cli_labelled.h5ad');
    const run = spawnSync(TRAIN_BIN, ['classify', '--checkpoint', nativeDir, '--input', BARON,
      '--output', out, '--write-h5ad', h5ad], { encoding: 'utf8' });
    assert.equal(run.status, 0, `genecompass-train classify failed:\n${run.stderr}`);
    cli = { out, h5ad };
    csvText = await downloadCsv(page);
    const { cells, worst } = csvMatchesNative(csvText, out);
    console.log(`registry model (burnpack): ${cells} cells, max |p diff| vs CLI ${worst.toExponential(2)}`);
  });

  test('the h5ad with labels is the CLI\'s --write-h5ad file', async () => {
    assert.equal(await page.getAttribute(find.downloadH5ad, 'aria-describedby'), 'h5ad-note');
    const { name, bytes } = await downloadH5ad(page);
    assert.equal(name, `${DATASET}_genecompass.h5ad`);
    await textMatches(page, find.h5adMessage, /13 cells removed by quality control are labelled `filtered`/);
    const r = h5adMatchesCli(bytes, cli.h5ad, cli.out);
    assert.equal(r.rows, 822);
    console.log(`labelled h5ad: ${r.rows} rows, ${r.kept} labelled, ${r.identical ? 'byte-identical to' : `max |confidence diff| ${r.worst.toExponential(2)} from`} the CLI's`);
    // Writing into a file that already has the columns is refused unless replacing.
    await upload(page, cli.h5ad);
    await runFinishes(page);
    await page.click(find.downloadH5ad);
    await textMatches(page, find.h5adError, /already has a column `genecompass_label`/);
    await page.check('#h5ad-replace');
    const again = await downloadH5ad(page);
    assert.equal(again.name, 'cli_labelled_genecompass.h5ad');
    assert.equal(again.bytes.length > bytes.length, true);
  });

  test('a second run takes the model from the browser cache', async () => {
    fileRequests.length = 0;
    await upload(page, BARON);
    await runFinishes(page);
    assert.deepEqual(fileRequests, [], 'nothing downloaded again');
    assert.equal(await page.getAttribute(find.modelSource, 'data-from-cache'), 'true');
    assert.match(await page.textContent(find.modelSource), /loaded from the browser cache/);
    const cached = await page.evaluate(async () =>
      (await (await caches.open('genecompass-models-v1')).keys()).map((r) => new URL(r.url).pathname.split('/').pop()));
    const v = await api(ed, `models/${modelId}/versions/production`);
    for (const f of v.files.filter((f) => ['config.json', 'model.bpk', 'token_dict.json'].includes(f.path))) {
      assert.ok(cached.includes(f.sha256), `${f.path} cached under its hash`);
    }
  });

  test('the run\'s metrics are saved to the registry, with the file uploaded', async () => {
    await setThreshold(page, 0.3);
    await page.selectOption(find.truthColumn, 'cell_type');
    await page.locator(find.summaryAccuracy).waitFor({ timeout: 30_000 });
    const assigned = Number(await page.getAttribute(find.summaryAssigned, 'data-value'));
    const accuracy = Number(await page.getAttribute(find.summaryAccuracy, 'data-value'));
    const macroF1 = Number(await page.getAttribute(find.summaryMacroF1, 'data-value'));
    // Every control of the new panels has a label (keyboard and screen-reader use).
    const unlabelled = await page.$$eval('#save-panel input, #save-panel select, #run-summary select, .h5ad-download input',
      (els) => els.filter((e) => e.labels.length === 0).map((e) => e.id));
    assert.deepEqual(unlabelled, []);

    // The same numbers from the page's CSV.
    const rows = parseCsv(csvText).slice(1);
    const conf = rows.map((r) => Number(r[4]));
    assert.equal(assigned, conf.filter((c) => c >= Math.fround(0.3)).length);
    const meanConf = conf.reduce((a, b) => a + b, 0) / conf.length;

    await page.check(find.saveUpload);
    assert.equal(await page.inputValue(find.saveDatasetName), DATASET);
    // The results' numbers and the save panel, as the user sees them.
    await page.locator('#run-summary').evaluate((e) => e.scrollIntoView());
    await page.screenshot({ path: path.join(ARTIFACTS, 'annotate-save.png') });
    await page.click(find.saveButton);
    await textMatches(page, find.saveMessage, new RegExp(`^Saved 6 results of tiny-native v1 on dataset ${DATASET} \\(uploaded\\)\\.$`), 120_000);
    assert.equal((await page.textContent(find.saveError)).trim(), '');

    const results = (await api(ed, 'results?task=cell_type_annotation')).filter((r) => r.model === 'tiny-native');
    const byMetric = Object.fromEntries(results.map((r) => [r.metric, r]));
    assert.deepEqual(Object.keys(byMetric).sort(),
      ['accuracy', 'confidence_threshold', 'macro_f1', 'mean_confidence', 'n_assigned', 'n_cells']);
    for (const r of results) {
      assert.equal(r.version, 1);
      assert.equal(r.dataset, DATASET);
    }
    assert.equal(byMetric.n_cells.value, 809);
    assert.equal(byMetric.n_assigned.value, assigned);
    assert.ok(Math.abs(byMetric.confidence_threshold.value - 0.3) < 1e-6);
    assert.ok(Math.abs(byMetric.mean_confidence.value - meanConf) < 1e-6, `${byMetric.mean_confidence.value} vs ${meanConf}`);
    assert.equal(byMetric.accuracy.value, accuracy);
    assert.equal(byMetric.macro_f1.value, macroF1);
    const datasets = await api(ed, 'datasets');
    assert.equal(datasets.find((d) => d.name === DATASET)?.sha256, sha256(fs.readFileSync(BARON)));

    // The link shows them in the registry's results table.
    await page.click(find.saveResultsLink);
    await textMatches(page, find.resultsTable, /tiny-native/);
    assert.ok(await page.locator(find.resultsTable).isVisible());
    await shot(page, 'annotate-registry-results');

    // Saving again finds the file among the datasets instead of uploading it twice.
    await page.click(find.tabAnnotate);
    await page.click(find.saveButton);
    await textMatches(page, find.saveMessage, /on dataset baron_mouse_pancreas_822 \(already in the registry\)/, 60_000);
    assert.equal((await api(ed, 'datasets')).length, 1);
  });

  test('a manifest model cannot save, and a CSV cannot get an h5ad', async () => {
    await chooseModel(page, 'reference-tiny');
    // Cells × Ensembl ids of the tiny vocabulary's mouse genes, counts varying per cell.
    const genes = ['ENSMUSG00000059552', 'ENSMUSG00000057666', 'ENSMUSG00000029580', 'ENSMUSG00000022346',
      'ENSMUSG00000030265', 'ENSMUSG00000023274', 'ENSMUSG00000026395', 'ENSMUSG00000021944'];
    const lines = [`cell,${genes.join(',')}`];
    for (let c = 0; c < 12; c++) lines.push(`cell${c},${genes.map((_, g) => ((c * 7 + g * 3) % 11) + (g === c % 8 ? 40 : 1)).join(',')}`);
    const csv = path.join(dir, 'cells.csv');
    fs.writeFileSync(csv, lines.join('\n') + '\n');
    await upload(page, csv);
    await runFinishes(page);
    assert.ok(await page.isDisabled(find.downloadH5ad));
    assert.match(await page.textContent(find.h5adNote), /Labels can be written into \.h5ad files only; this file is CSV/i);
    assert.match(await page.getAttribute(find.downloadH5ad, 'title'), /\.h5ad files only/);
    assert.match(await page.textContent(find.saveNote), /registry model version/);
    assert.equal(await page.locator(find.saveButton).count(), 0);
  });
});
