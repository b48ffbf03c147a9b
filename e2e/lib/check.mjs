// Assertions and the parsers they need (CSV from the page, safetensors from the CLI).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { find } from './find.mjs';

/** Waits until the run ends; fails with the page's error message if it failed. */
export async function runFinishes(page, timeout = 300_000) {
  await page.waitForFunction((sel) => {
    const stage = document.querySelector(sel.stage)?.textContent || '';
    const err = document.querySelector(sel.error);
    return stage.startsWith('Done') || (err && err.style.display !== 'none' && err.textContent);
  }, find, { timeout });
  const error = await page.locator(find.error).textContent();
  assert.equal(error.trim(), '', `the run failed: ${error}`);
}

/** Waits until the error box shows a message matching `pattern` (a stale message from an
 * earlier run does not count) and returns it. */
export async function runFailsWith(page, pattern, timeout = 120_000) {
  await page.waitForFunction(([sel, src, flags]) => {
    const err = document.querySelector(sel);
    return err && err.style.display !== 'none' && new RegExp(src, flags).test(err.textContent);
  }, [find.error, pattern.source, pattern.flags], { timeout }).catch(async (e) => {
    const text = await page.locator(find.error).textContent();
    throw new Error(`expected an error matching ${pattern}, page shows: ${JSON.stringify(text)} (${e.message})`);
  });
  return page.locator(find.error).textContent();
}

/** A CSV with quoted fields, as rows of strings. */
export function parseCsv(text) {
  const rows = [];
  for (const line of text.split('\n').filter((l) => l.length)) {
    const out = [];
    let cur = '';
    let quoted = false;
    for (let i = 0; i < line.length; i++) {
      const ch = line[i];
      if (quoted) {
        if (ch === '"' && line[i + 1] === '"') { cur += '"'; i++; } else if (ch === '"') quoted = false; else cur += ch;
      } else if (ch === '"') quoted = true;
      else if (ch === ',') { out.push(cur); cur = ''; } else cur += ch;
    }
    out.push(cur);
    rows.push(out);
  }
  return rows;
}

/** F32 tensors and metadata of a safetensors file. */
export function readSafetensors(file) {
  const buf = fs.readFileSync(file);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8'));
  const tensors = {};
  for (const [name, t] of Object.entries(header)) {
    if (name === '__metadata__' || t.dtype !== 'F32') continue;
    const [a, b] = t.data_offsets;
    const bytes = buf.subarray(8 + n + a, 8 + n + b);
    const data = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length));
    tensors[name] = { shape: t.shape, data };
  }
  return { tensors, metadata: header.__metadata__ || {} };
}

/** The page's CSV equals the CLI's output: same cells, same arg-max, probabilities within tol. */
export function csvMatchesNative(csvText, nativeFile, tol = 1e-3) {
  const rows = parseCsv(csvText);
  const head = rows.shift();
  const { tensors, metadata } = readSafetensors(nativeFile);
  const labels = JSON.parse(metadata.labels);
  const probs = tensors.probabilities;
  const [n, c] = probs.shape;
  assert.deepEqual(head.slice(5), labels.map((l) => `p_${l}`), 'label columns');
  assert.equal(rows.length, n, `cells: page ${rows.length}, CLI ${n}`);
  let worst = 0;
  for (const [i, r] of rows.entries()) {
    assert.equal(Number(r[0]), i, 'rows in index order');
    const want = Array.from(probs.data.subarray(i * c, (i + 1) * c));
    const got = r.slice(5).map(Number);
    const best = want.indexOf(Math.max(...want));
    assert.equal(r[3], labels[best], `cell ${i}: page ${r[3]}, CLI ${labels[best]}`);
    for (let k = 0; k < c; k++) worst = Math.max(worst, Math.abs(got[k] - want[k]));
  }
  assert.ok(worst <= tol, `max |probability difference| ${worst} > ${tol}`);
  return { cells: n, worst };
}

/** The page's labelled h5ad equals the one `genecompass-train classify --write-h5ad` wrote for
 * the same file and model: the same bytes everywhere but the float32 confidences, which must be
 * the CLI's within `tol` (NaN for the rows QC dropped). Both files come from core's writer fed
 * the same rows, labels and categories, so only float rounding may differ. Returns how many
 * rows were compared, the largest difference and whether the files are byte-identical. */
export function h5adMatchesCli(pageBytes, cliFile, nativeFile, tol = 1e-3) {
  const cli = fs.readFileSync(cliFile);
  const { tensors, metadata } = readSafetensors(nativeFile);
  const rows = JSON.parse(metadata.rows);
  const nObs = Number(metadata.cells_in_file);
  const { shape: [n, c], data } = tensors.probabilities;
  assert.equal(rows.length, n);
  // The CLI's confidence column: each kept row's arg-max probability, NaN elsewhere.
  const want = new Float32Array(nObs).fill(NaN);
  rows.forEach((row, i) => { want[row] = Math.max(...data.subarray(i * c, (i + 1) * c)); });
  const wantBytes = Buffer.from(want.buffer);
  const at = cli.indexOf(wantBytes);
  assert.ok(at > 0, 'the CLI file holds the confidence column');
  assert.equal(pageBytes.length, cli.length, 'same size as the CLI file');
  const end = at + wantBytes.length;
  for (let i = 0; i < cli.length; i++) {
    if (pageBytes[i] !== cli[i] && (i < at || i >= end)) {
      assert.fail(`byte ${i} differs outside the confidence column (${at}..${end})`);
    }
  }
  const got = new Float32Array(pageBytes.buffer.slice(pageBytes.byteOffset + at, pageBytes.byteOffset + end));
  let worst = 0;
  for (let r = 0; r < nObs; r++) {
    if (Number.isNaN(want[r])) assert.ok(Number.isNaN(got[r]), `row ${r} was filtered`);
    else worst = Math.max(worst, Math.abs(got[r] - want[r]));
  }
  assert.ok(worst <= tol, `max |confidence difference| ${worst} > ${tol}`);
  return { rows: nObs, kept: n, worst, identical: pageBytes.equals(cli) };
}

/** Waits until the watched job shows one of `states` and returns it (the page's failure text
 * is in the error when it ends otherwise). */
export async function jobReaches(page, states, timeout = 120_000) {
  await page.waitForFunction(([sel, want]) => {
    const s = document.querySelector(sel)?.textContent?.trim();
    return want.includes(s) || ['succeeded', 'failed', 'cancelled'].includes(s);
  }, [find.jobState, states], { timeout }).catch(async (e) => {
    const text = await page.locator(find.jobWatch).textContent().catch(() => '(no watched job)');
    throw new Error(`the job did not reach ${states}: ${text} (${e.message})`);
  });
  const state = (await page.textContent(find.jobState)).trim();
  if (!states.includes(state)) {
    const why = await page.textContent('#job-failure');
    throw new Error(`the job ended ${state}, expected ${states.join(' or ')}: ${why}`);
  }
  return state;
}

/** Waits until `sel` has text matching `pattern`; fails showing what is there. */
export async function textMatches(page, sel, pattern, timeout = 60_000) {
  await page.waitForFunction(([s, src, flags]) => new RegExp(src, flags).test(document.querySelector(s)?.textContent || ''),
    [sel, pattern.source, pattern.flags], { timeout }).catch(async (e) => {
    const text = await page.locator(sel).textContent().catch(() => '(missing)');
    throw new Error(`${sel} should match ${pattern}, shows ${JSON.stringify(text)} (${e.message})`);
  });
  return page.textContent(sel);
}
