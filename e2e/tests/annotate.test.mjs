// The annotate page on real files with the reference-tiny classifier: report, progressive
// results, threshold, CSV equal to `genecompass-train classify`, in-silico perturbation of the
// annotated cells, and clear errors.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { openApp, chooseModel, upload, setThreshold, downloadCsv } from '../lib/action.mjs';
import { runFinishes, runFailsWith, csvMatchesNative, textMatches } from '../lib/check.mjs';
import { ARTIFACTS, DATA, tempDir, webDirWithTinyModel, startServer, classifyNative, launchBrowser } from '../lib/env.mjs';
import { find } from '../lib/find.mjs';

const BARON = path.join(DATA, 'h5ad/baron_mouse_pancreas_822.h5ad');
const shot = (page, name) => page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: true });

describe('annotate page', () => {
  let dir, server, browser, page;

  before(async () => {
    dir = tempDir('gc-e2e-annotate-');
    server = await startServer(webDirWithTinyModel(dir));
    browser = await launchBrowser();
    page = browser.page;
    await openApp(page, server.url);
    await chooseModel(page, 'reference-tiny');
  });

  after(async () => {
    await browser?.close();
    server?.stop();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  test('baron mouse pancreas: report, progressive results, CSV equal to the CLI', async () => {
    await upload(page, BARON);
    // The report comes before the results.
    await page.locator(find.reportCells).waitFor({ timeout: 120_000 });
    assert.equal((await page.textContent(find.reportCells)).trim(), '822');
    assert.match(await page.textContent(find.reportSpecies), /^mouse/);
    assert.match(await page.textContent(find.reportCoverage), /^16 of 14878 genes/);
    assert.equal((await page.textContent(find.reportCounts)).trim(), 'yes');
    await runFinishes(page);
    assert.match(await page.textContent(find.qcKept), /^809 of 822/);
    assert.equal((await page.textContent(find.progressText)).trim(), '809 / 809 cells');
    const speed = await page.textContent(find.speed);
    const backend = await page.textContent(find.backend);
    // Auto: headless Chromium's only adapter is SwiftShader, a software renderer, so the CPU.
    assert.equal(await page.inputValue(find.backendChoice), 'auto');
    assert.match(backend, /^CPU: burn flex .*google swiftshader.* software renderer/);
    assert.equal(await page.locator(find.resultRows).count(), 200, 'first 200 cells shown');
    assert.ok(await page.locator(find.chartRows).count() >= 1, 'label chart drawn');
    // The PCA plot has one dot per cell, coloured by the same calls the bar chart counts.
    assert.equal(await page.locator(find.embeddingDots).count(), 809);
    assert.match(await page.textContent(find.embeddingCaption), /PC1 \d+\.\d %, PC2 \d+\.\d %/);
    const bars = await page.$$eval(find.chartRows, (rows) => rows.map((r) => [r.dataset.label, Number(r.dataset.count)]));
    const dots = await page.$$eval(find.embeddingDots, (ds) => ds.map((d) => d.dataset.label));
    for (const [label, count] of bars) {
      assert.equal(dots.filter((l) => l === label).length, count, `dots labelled ${label}`);
    }
    await shot(page, 'annotate-baron');

    // UMAP of the same pooled embeddings, computed in the worker: the same dots (one per cell,
    // same labels), elsewhere; then back to the PCA, unchanged.
    const coords = () => page.$$eval(find.embeddingDots, (ds) =>
      Object.fromEntries(ds.map((d) => [d.dataset.index, `${d.getAttribute('cx')},${d.getAttribute('cy')}`])));
    const pca = await coords();
    const pcaCaption = await page.textContent(find.embeddingCaption);
    const t0 = Date.now();
    await page.selectOption(find.embeddingLayout, 'umap');
    await textMatches(page, find.embeddingCaption, /^UMAP \(15 neighbours, min_dist 0\.1, cosine\)/, 120_000);
    const umapMs = Date.now() - t0;
    assert.ok(await page.locator(find.umapError).isHidden(), 'no UMAP error');
    assert.ok(await page.locator(find.umapProgress).isHidden(), 'progress bar gone');
    const umapStatus = await page.textContent(find.umapStatus);
    assert.match(umapStatus, /^UMAP of 809 cells in \d+\.\d s/);
    assert.equal(await page.locator(find.embeddingDots).count(), 809);
    const umapDots = await page.$$eval(find.embeddingDots, (ds) => ds.map((d) => d.dataset.label));
    for (const [label, count] of bars) {
      assert.equal(umapDots.filter((l) => l === label).length, count, `UMAP dots labelled ${label}`);
    }
    const umap = await coords();
    assert.deepEqual(Object.keys(umap).sort(), Object.keys(pca).sort(), 'the same cells');
    const moved = Object.keys(umap).filter((i) => umap[i] !== pca[i]).length;
    assert.ok(moved > 800, `UMAP moved ${moved} of 809 dots`);
    console.log(`UMAP of 809 cells in the browser: ${umapMs} ms from the click (worker: ${umapStatus})`);
    await shot(page, 'annotate-baron-umap');
    await page.selectOption(find.embeddingLayout, 'pca');
    await textMatches(page, find.embeddingCaption, /^PCA of/);
    assert.equal(await page.textContent(find.embeddingCaption), pcaCaption);
    assert.deepEqual(await coords(), pca, 'back on the PCA');

    // The model's three files are in the Cache API under their SHA-256.
    const cached = await page.evaluate(async () =>
      (await (await caches.open('genecompass-models-v1')).keys()).map((r) => new URL(r.url).pathname));
    assert.equal(cached.filter((p) => /^\/genecompass-cache\/sha256\/[0-9a-f]{64}$/.test(p)).length, 3, cached.join());

    const native = classifyNative(BARON, dir);
    const csv = await downloadCsv(page);
    fs.writeFileSync(path.join(ARTIFACTS, 'baron_annotation.csv'), csv);
    const { cells, worst } = csvMatchesNative(csv, native.path);
    const nativeSpeed = native.log.match(/\(([\d.]+) cells\/s\)/)?.[1];
    console.log(`browser: ${speed} (${backend}); CLI classify: ${nativeSpeed} cells/s; ` +
      `${cells} cells, max |p diff| ${worst.toExponential(2)}`);
  });

  test('threshold marks low-confidence cells unassigned', async () => {
    await setThreshold(page, 0.99);
    await page.waitForSelector(`${find.chartRows}[data-label="unassigned"]`);
    assert.equal(await page.locator(find.chartRows).count(), 1, 'every cell is below 0.99');
    await shot(page, 'annotate-threshold');
    await setThreshold(page, 0);
    await page.waitForSelector(`${find.chartRows}[data-label="unassigned"]`, { state: 'detached' });
  });

  test('perturbing a gene moves the annotated cells; bad genes get a clear message', async () => {
    await page.locator(find.perturbPanel).waitFor();
    const perturb = async (genes, mode = 'delete') => {
      await page.fill(find.perturbGenes, genes);
      await page.selectOption(find.perturbMode, mode);
      await page.click(find.perturbButton);
    };
    // Unknown names and genes no cell holds are refused; the annotation stays on the page.
    await perturb('NotAGene42');
    await textMatches(page, find.perturbError, /unknown gene "NotAGene42"/);
    // TP53 is in the tiny dictionary (human token) but no mouse cell holds it.
    await perturb('TP53');
    await textMatches(page, find.perturbError, /expressed in none of the 809 annotated cells/);
    assert.equal(await page.locator(find.embeddingDots).count(), 809);
    assert.equal(await page.locator(find.perturbedDots).count(), 0);

    // Ins2 (ENSMUSG00000000215) is in the vocabulary and the beta cells express it. Perturbing
    // from the UMAP layout switches the plot back to the PCA the perturbed cells are projected on.
    await page.selectOption(find.embeddingLayout, 'umap');
    await textMatches(page, find.embeddingCaption, /^UMAP/);
    await perturb('Ins2');
    const gene = `${find.perturbGene}[data-gene="ENSMUSG00000000215"]`;
    await page.locator(gene).waitFor({ timeout: 300_000 });
    assert.ok(await page.locator(find.perturbError).isHidden(), 'the earlier error is cleared');
    assert.match(await page.textContent(`${gene} h3`), /^Ins2 \(ENSMUSG00000000215\) deleted/);
    const cells = Number(await page.textContent(find.perturbCells));
    assert.ok(cells > 0 && cells <= 809, `cells perturbed: ${cells}`);
    const shift = Number(await page.textContent(find.perturbShift));
    assert.ok(shift > 0 && shift < 2, `CLS shift ${shift}`);
    assert.match(await page.textContent(find.perturbChanged), new RegExp(`^\\d+ of ${cells}$`));
    const affected = await page.locator(find.perturbAffected).count();
    assert.ok(affected >= 1 && affected <= 10, `affected rows: ${affected}`);
    // The second layer: one diamond and one line per perturbed cell, the originals untouched.
    assert.equal(await page.locator(find.perturbedDots).count(), cells);
    assert.equal(await page.locator(find.perturbArrows).count(), cells);
    assert.equal(await page.locator(find.embeddingDots).count(), 809);
    assert.match(await page.textContent(find.embeddingCaption), /^PCA of .*after perturbing Ins2/);
    assert.equal(await page.inputValue(find.embeddingLayout), 'pca');
    assert.match(await page.textContent(find.perturbStage), /^Perturbed 1 gene\(s\) in \d+ cells/);
    await shot(page, 'annotate-perturb');

    // Over-expression, with one gene no cell holds: a note, and the other gene's results.
    await perturb('Ins2, TP53', 'overexpress');
    await textMatches(page, find.perturbStage, /^Perturbed 1 gene/, 300_000);
    assert.match(await page.textContent(`${gene} h3`), /over-expressed/);
    assert.match(await page.textContent(find.perturbNotes), /TP53/);
    assert.equal(await page.locator(find.perturbedDots).count(), cells);
  });

  test('unusable files get a clear message and the page keeps working', async () => {
    const broken = path.join(dir, 'broken.h5ad');
    fs.writeFileSync(broken, Buffer.concat([Buffer.from('\x89HDF\r\n\x1a\n', 'latin1'), Buffer.alloc(64, 7)]));
    await upload(page, broken);
    await runFailsWith(page, /broken\.h5ad/);
    await shot(page, 'error-malformed');

    // Human chr21 genes only: none is in the tiny vocabulary.
    await upload(page, path.join(DATA, '10x/3.0.0/filtered_feature_bc_matrix.h5'));
    await runFailsWith(page, /no known genes/);
    await shot(page, 'error-no-known-genes');

    // log-normalised values, not counts.
    await upload(page, path.join(DATA, 'h5ad/spectra_immune_1000.h5ad'));
    await runFailsWith(page, /not raw counts/);

    await upload(page, BARON);
    await runFinishes(page);
    assert.equal((await page.textContent(find.progressText)).trim(), '809 / 809 cells');
  });

  test('WebGPU (SwiftShader): labels equal the CLI; perturbation still runs (on the CPU)', async () => {
    await page.selectOption(find.backendChoice, 'webgpu');
    await page.click(find.runButton);
    await runFinishes(page, 600_000);
    const backend = (await page.textContent(find.backend)).trim();
    assert.match(backend, /^WebGPU: google swiftshader/);
    assert.equal((await page.textContent(find.progressText)).trim(), '809 / 809 cells');
    const speed = (await page.textContent(find.speed)).trim();
    await shot(page, 'annotate-webgpu');
    const native = classifyNative(BARON, dir);
    const csv = await downloadCsv(page);
    fs.writeFileSync(path.join(ARTIFACTS, 'baron_annotation_webgpu.csv'), csv);
    const { cells, worst } = csvMatchesNative(csv, native.path);
    console.log(`browser WebGPU: ${speed} (${backend}); ${cells} cells equal to the CLI, ` +
      `max |p diff| ${worst.toExponential(2)}`);

    // The model ran on the GPU; perturbations build its CPU twin and run there.
    await page.fill(find.perturbGenes, 'Ins2');
    await page.selectOption(find.perturbMode, 'delete');
    await page.click(find.perturbButton);
    await textMatches(page, find.perturbStage, /^Perturbed 1 gene/, 300_000);
    assert.ok(await page.locator(find.perturbError).isHidden(), 'no perturbation error');
    await page.selectOption(find.backendChoice, 'cpu');
  });
});
