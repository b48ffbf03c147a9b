// The registry as an editor: upload a dataset in resumable chunks (with a lost reply and a 409
// injected), see the server's refusals explained, launch a fine-tune of a fresh tiny model with
// the real (debug) genecompass-train, watch it live to success (state, progress, loss curve,
// metrics), find its accuracy in the results, watch it again from its history, read its log,
// and cancel a second job while it runs.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { spawnSync } from 'node:child_process';
import { signIn, uploadDataset, launchFinetune, watchJob, upload, downloadCsv } from '../lib/action.mjs';
import { jobReaches, textMatches, runFinishes, csvMatchesNative } from '../lib/check.mjs';
import { ARTIFACTS, DATA, TINY, TRAIN_BIN, WEB_DIST, tempDir, startServer, addUser, launchBrowser } from '../lib/env.mjs';
import { find, jobRow } from '../lib/find.mjs';

const BARON = path.join(DATA, 'h5ad/baron_mouse_pancreas_822.h5ad');
const NAME = 'baron_mouse_pancreas_822';
const MODEL = `${NAME}-finetune`;
const CHUNK = 1 << 20; // 3.4 MiB file → 4 chunks
const shot = (page, name) => page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: true });
const auth = (user) => ({ Authorization: `Bearer ${user.token}` });

/** The cells of the results table, as arrays of strings. */
const resultRows = (page) => page.$$eval(`${find.resultsTable} tbody tr`,
  (rows) => rows.map((r) => [...r.querySelectorAll('td')].map((td) => td.textContent.trim())));

describe('registry: upload, fine-tune and watch a job', () => {
  let dir, server, browser, page, ed, ada;

  before(async () => {
    assert.ok(fs.existsSync(BARON), `${BARON} is missing`);
    dir = tempDir('gc-e2e-jobs-');
    server = await startServer(WEB_DIST);
    ed = addUser(server, 'ed', 'lab', 'editor');
    ada = addUser(server, 'ada', 'lab', 'admin');
    browser = await launchBrowser();
    page = browser.page;
    await page.goto(`${server.url}/?upload_chunk=${CHUNK}`);
    await signIn(page, 'ed', ed.password);
    await page.locator(find.uploadForm).waitFor({ timeout: 30_000 });
  });

  after(async () => {
    if (page) await shot(page, 'jobs').catch(() => {});
    await browser?.close();
    server?.stop();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  test('an editor uploads a file in chunks, resuming after a lost reply and a 409', async () => {
    assert.equal(await page.getAttribute(find.uploadForm, 'data-chunk-bytes'), String(CHUNK));
    const size = fs.statSync(BARON).size;
    const offsets = [];
    await page.route('**/api/v1/uploads/*', async (route) => {
      const req = route.request();
      if (req.method() !== 'PATCH') return route.continue();
      offsets.push(Number(req.headers()['upload-offset']));
      if (offsets.length === 2) {
        // The chunk reaches the server but its reply is lost: the page must ask where to resume.
        await route.fetch();
        return route.abort('connectionreset');
      }
      if (offsets.length === 3) {
        // A wrong-offset refusal that never reached the server: ask again and resend.
        return route.fulfill({ status: 409, contentType: 'application/json',
          body: JSON.stringify({ error: { code: 'conflict', message: 'test: wrong offset' } }) });
      }
      return route.continue();
    });
    await uploadDataset(page, BARON);
    assert.equal(await page.inputValue(find.uploadName), NAME, 'name from the file name');
    await textMatches(page, find.uploadMessage, new RegExp(`Uploaded \`${NAME}\`: 822 cells × 14878 genes`), 120_000);
    await page.unroute('**/api/v1/uploads/*');
    // Chunk 2's bytes were stored, so the page went on at 2 MiB without resending them; the 409
    // made it resend 2 MiB once.
    assert.deepEqual(offsets, [0, CHUNK, 2 * CHUNK, 2 * CHUNK, 3 * CHUNK]);
    assert.equal(Number(await page.getAttribute(find.uploadProgress, 'value')), size);
    assert.match(await page.textContent(find.uploadStatus), /^3\.4 MiB of 3\.4 MiB \(100 %\), [\d.]+ [KMG]?i?B\/s/);
    assert.equal((await page.textContent(find.uploadError)).trim(), '');
    // Listed with its cells, and the server holds exactly the file's bytes.
    await textMatches(page, find.datasetsTable, new RegExp(NAME));
    const row = page.locator(`${find.datasetsTable} tbody tr`, { hasText: NAME });
    assert.match(await row.textContent(), /822/);
    const list = await (await page.request.get(`${server.url}/api/v1/datasets`, { headers: auth(ed) })).json();
    assert.equal(list.length, 1);
    assert.equal(list[0].sha256, crypto.createHash('sha256').update(fs.readFileSync(BARON)).digest('hex'));
    assert.equal(list[0].n_cells, 822);
  });

  test('refusals say what to do: a taken name, an unreadable file, a bad name', async () => {
    await uploadDataset(page, BARON);
    await textMatches(page, find.uploadError,
      new RegExp(`already has a dataset \`${NAME}\`.*Choose another dataset name`));
    const junk = path.join(dir, 'junk.h5ad');
    fs.writeFileSync(junk, crypto.randomBytes(200_000));
    await uploadDataset(page, junk);
    await textMatches(page, find.uploadError, /The server cannot read this file: .*Upload an h5ad/, 60_000);
    await uploadDataset(page, junk, 'bad name');
    await textMatches(page, find.uploadError, /cannot contain ` `/);
    const list = await (await page.request.get(`${server.url}/api/v1/datasets`, { headers: auth(ed) })).json();
    assert.deepEqual(list.map((d) => d.name), [NAME], 'nothing else was registered');
  });

  test('a fresh tiny model is fine-tuned live to success and its accuracy is listed', async () => {
    // A model without a token dictionary, for a real refusal from the server.
    const imported = await page.request.post(`${server.url}/api/v1/checkpoints/import`, {
      headers: auth(ada), data: { path: path.join(TINY, 'classifier'), name: 'tiny-classifier' },
    });
    assert.equal(imported.status(), 201, await imported.text());
    await page.click('#refresh');
    await page.locator(`${find.ftBase} option[value="tiny-classifier"]`).waitFor({ state: 'attached' });

    // Every control of the forms has a label (keyboard and screen-reader use).
    const unlabelled = await page.$$eval('#upload input, #upload select, #finetune input, #finetune select',
      (els) => els.filter((e) => e.labels.length === 0).map((e) => e.id));
    assert.deepEqual(unlabelled, []);
    // The defaults.
    assert.equal(await page.inputValue(find.ftDataset), list0Id(await datasetIds(page)));
    assert.equal(await page.inputValue(find.ftLabel), 'cell_type');
    assert.equal(await page.inputValue(find.ftBase), '');
    assert.equal(await page.inputValue(find.ftConfig), 'tiny');
    assert.equal(await page.inputValue(find.ftEpochs), '10');
    assert.equal(await page.inputValue(find.ftLr), '5e-3');
    assert.equal(await page.inputValue(find.ftBatch), '16');
    assert.equal(await page.inputValue(find.ftMaxGenes), '512');
    assert.match(await page.textContent('#ft-estimate'), /About 360 training steps/);

    // From a base model the suggested rate is smaller; this one cannot be used (422).
    await page.selectOption(find.ftBase, 'tiny-classifier');
    assert.equal(await page.inputValue(find.ftLr), '5e-5');
    assert.ok(await page.isDisabled(find.ftConfig));
    await page.click(find.ftSubmit);
    await textMatches(page, find.ftError, /HTTP 422\): model `tiny-classifier` version `latest` has no token_dict\.json/);
    // The form's own checks.
    await launchFinetune(page, { base: '', epochs: 0 });
    await textMatches(page, find.ftError, /Epochs must be a whole number from 1 to 1000/);
    assert.equal(await page.inputValue(find.ftLr), '5e-3');

    // Record what the page shows while the job runs.
    await page.evaluate((sel) => {
      window.__seen = { states: [], steps: [] };
      window.__poll = setInterval(() => {
        const s = document.querySelector(sel.jobState)?.textContent?.trim();
        if (s && window.__seen.states.at(-1) !== s) window.__seen.states.push(s);
        const step = document.querySelector(sel.jobProgress)?.dataset.step;
        if (step && window.__seen.steps.at(-1) !== step) window.__seen.steps.push(step);
      }, 50);
    }, find);
    await launchFinetune(page, { epochs: 1, maxGenes: 64 });
    const msg = await textMatches(page, find.ftMessage, new RegExp(`Job job_[0-9a-f]+ queued; it will register model \`${MODEL}\``));
    const id = msg.match(/job_[0-9a-f]+/)[0];
    assert.equal((await page.textContent(find.ftError)).trim(), '');
    await page.locator(jobRow(id)).waitFor();
    assert.equal(await page.getAttribute(find.jobWatch, 'data-job-id'), id, 'the new job is watched');

    await jobReaches(page, ['succeeded'], 180_000);
    const seen = await page.evaluate(() => { clearInterval(window.__poll); return window.__seen; });
    assert.ok(seen.states.includes('running'), `states seen: ${seen.states}`);
    // The progress bar and the curve: one point per step, delivered by the live stream.
    const total = Number(await page.getAttribute(find.jobProgress, 'data-total'));
    assert.ok(total >= 30, `total steps ${total}`);
    assert.equal(Number(await page.getAttribute(find.jobProgress, 'data-step')), total);
    assert.equal(Number(await page.getAttribute(find.jobProgress, 'value')), 1);
    assert.match(await page.textContent(find.jobStep), new RegExp(`^step ${total} / ${total}, loss \\d+\\.\\d{4}$`));
    assert.equal(Number(await page.getAttribute(find.lossCurve, 'data-points')), total);
    assert.equal((await page.getAttribute(find.lossLine, 'points')).trim().split(' ').length, total);
    assert.equal((await page.textContent(find.lossXMax)).trim(), `step ${total}`);
    const [lo, hi] = [Number(await page.textContent(find.lossYMin)), Number(await page.textContent(find.lossYMax))];
    assert.ok(lo > 0 && hi > lo, `loss range ${lo}..${hi}`);
    const live = Number(await page.getAttribute(find.jobWatch, 'data-live-events'));
    assert.ok(live >= total + 2, `live events ${live} for ${total} steps`);
    await textMatches(page, find.jobEvals, /epoch 0 \(step \d+\): val macro F1 \d\.\d{3}/);
    const accuracy = Number(await page.textContent(find.jobTestAccuracy));
    assert.ok(accuracy > 0 && accuracy <= 1, `test accuracy ${accuracy}`);
    assert.equal(await page.locator(find.jobCancel).count(), 0, 'no Cancel once it ended');

    // The lists were reloaded: the new model and its accuracy.
    await textMatches(page, jobRow(id), /succeeded/);
    await textMatches(page, find.modelsTable, new RegExp(MODEL));
    await textMatches(page, find.resultsTable, new RegExp(MODEL));
    const acc = (await resultRows(page)).find((r) => r[0] === MODEL && r[4] === 'accuracy');
    assert.ok(acc, `no accuracy row for ${MODEL}: ${JSON.stringify(await resultRows(page))}`);
    assert.equal(acc[2], NAME);
    assert.ok(Math.abs(Number(acc[5]) - accuracy) < 0.0006, `results ${acc[5]} vs page ${accuracy}`);
    await shot(page, 'jobs-succeeded');

    // Watching it again draws the same curve from the trainer's history.
    await watchJob(page, id);
    await textMatches(page, find.jobStream, /The job has ended/);
    await page.waitForFunction(([sel, n]) => Number(document.querySelector(sel)?.dataset.points) === n,
      [find.lossCurve, total], { timeout: 30_000 });
    assert.equal(Number(await page.getAttribute(find.jobWatch, 'data-live-events')), 1, 'only the final state is live');
    assert.equal((await page.textContent(find.jobState)).trim(), 'succeeded');
    await page.click(find.jobLogButton);
    await textMatches(page, find.jobLog, /attempt 1 on local runner: .*finetune/);
  });

  test('the fine-tuned model annotates a real file in the browser, as the CLI does', async () => {
    // The version the job registered, and its files as the registry serves them.
    const models = await (await fetch(`${server.url}/api/v1/models`, { headers: auth(ed) })).json();
    const model = models.find((m) => m.name === MODEL);
    assert.ok(model, `no model ${MODEL}`);
    const v = await (await fetch(`${server.url}/api/v1/models/${model.id}/versions/1`, { headers: auth(ed) })).json();
    assert.equal(v.kind, 'classifier');
    assert.equal(v.lineage.dataset.name, NAME, 'lineage names the dataset');
    const modelDir = path.join(dir, 'finetuned');
    for (const f of v.files) {
      const r = await fetch(`${server.url}/api/v1/models/${model.id}/versions/1/files/${f.path}`, { headers: auth(ed) });
      assert.equal(r.status, 200, f.path);
      const bytes = Buffer.from(await r.arrayBuffer());
      assert.equal(crypto.createHash('sha256').update(bytes).digest('hex'), f.sha256, f.path);
      fs.mkdirSync(path.dirname(path.join(modelDir, f.path)), { recursive: true });
      fs.writeFileSync(path.join(modelDir, f.path), bytes);
    }

    await page.click(find.tabAnnotate);
    // The list was read at sign-in, before the job registered the model.
    await page.click('#registry-models-reload');
    const option = `${find.modelSelect} option[value="registry:${model.id}:1"]`;
    await page.locator(option).waitFor({ state: 'attached', timeout: 30_000 });
    await page.selectOption(find.modelSelect, `registry:${model.id}:1`);
    await upload(page, BARON);
    await runFinishes(page);
    assert.equal((await page.textContent(find.progressText)).trim(), '809 / 809 cells');
    const csv = await downloadCsv(page);
    const out = path.join(dir, 'finetuned-classify.safetensors');
    const run = spawnSync(TRAIN_BIN, ['classify', '--checkpoint', modelDir, '--input', BARON, '--output', out],
      { encoding: 'utf8' });
    assert.equal(run.status, 0, `genecompass-train classify failed:\n${run.stderr}`);
    const { cells, worst } = csvMatchesNative(csv, out);
    console.log(`fine-tuned model ${MODEL} v1 in the browser: ${cells} cells equal to the CLI (max |dp| ${worst.toExponential(1)})`);
    await shot(page, 'annotate-finetuned');
    await page.click(find.tabRegistry);
  });

  test('a running job is cancelled from the page', async () => {
    await launchFinetune(page, { epochs: 200, maxGenes: 64, modelName: 'to-cancel' });
    const msg = await textMatches(page, find.ftMessage, /Job job_[0-9a-f]+ queued; it will register model `to-cancel`/);
    const id = msg.match(/job_[0-9a-f]+/)[0];
    await page.locator(find.jobCancel).waitFor({ timeout: 30_000 });
    await jobReaches(page, ['running'], 60_000);
    await page.click(find.jobCancel);
    await textMatches(page, '#job-message', /Cancel requested/);
    await jobReaches(page, ['cancelled'], 90_000);
    assert.equal(await page.locator(find.jobCancel).count(), 0);
    await textMatches(page, jobRow(id), /cancelled/);
  });
});

async function datasetIds(page) {
  return page.$$eval(`${find.ftDataset} option`, (os) => os.map((o) => o.value));
}

function list0Id(ids) {
  assert.equal(ids.length, 1, `dataset options: ${ids}`);
  return ids[0];
}
