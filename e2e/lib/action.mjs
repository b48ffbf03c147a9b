// What a user does on the pages.
import fs from 'node:fs';
import { find, jobRow } from './find.mjs';

export async function openApp(page, url) {
  await page.goto(url);
  await page.waitForSelector(find.modelOptions, { state: 'attached', timeout: 60_000 });
}

export async function chooseModel(page, id) {
  await page.selectOption(find.modelSelect, id);
}

/** Picks a file; the page starts annotating on its own. */
export async function upload(page, file) {
  await page.setInputFiles(find.fileInput, file);
}

export async function setThreshold(page, value) {
  await page.locator(find.threshold).fill(String(value));
}

/** Clicks "Download CSV" and returns the file's text. */
export async function downloadCsv(page) {
  const [download] = await Promise.all([page.waitForEvent('download'), page.click(find.downloadCsv)]);
  return fs.readFileSync(await download.path(), 'utf8');
}

/** Clicks "Download h5ad with labels" and returns the file's name and bytes. */
export async function downloadH5ad(page) {
  const [download] = await Promise.all([page.waitForEvent('download', { timeout: 120_000 }), page.click(find.downloadH5ad)]);
  return { name: download.suggestedFilename(), bytes: fs.readFileSync(await download.path()) };
}

export async function signIn(page, user, password) {
  await page.click(find.tabRegistry);
  await page.fill(find.user, user);
  await page.fill(find.password, password);
  await page.click(`${find.signInForm} button[type=submit]`);
}

/** Picks a file in the registry's upload form, optionally renames it, and presses Upload. */
export async function uploadDataset(page, file, name) {
  await page.setInputFiles(find.uploadFile, file);
  if (name !== undefined) await page.fill(find.uploadName, name);
  await page.click(find.uploadButton);
}

/** Fills the fine-tuning form (`fields`: ids of find.ft* without the prefix → values) and
 * submits it. Selects take option values; text inputs take strings. */
export async function launchFinetune(page, fields) {
  const selects = { dataset: find.ftDataset, label: find.ftLabel, base: find.ftBase, config: find.ftConfig };
  const inputs = { epochs: find.ftEpochs, lr: find.ftLr, batch: find.ftBatch, maxGenes: find.ftMaxGenes, modelName: find.ftModelName };
  for (const [k, v] of Object.entries(fields)) {
    if (selects[k]) await page.selectOption(selects[k], v);
    else if (inputs[k]) await page.fill(inputs[k], String(v));
    else throw new Error(`unknown fine-tune field ${k}`);
  }
  await page.click(find.ftSubmit);
}

/** Presses "Watch" on a job's row. */
export async function watchJob(page, id) {
  await page.click(`${jobRow(id)} button.watch`);
}
