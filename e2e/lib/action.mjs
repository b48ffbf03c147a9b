// What a user does on the pages.
import fs from 'node:fs';
import { find } from './find.mjs';

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

export async function signIn(page, user, password) {
  await page.click(find.tabRegistry);
  await page.fill(find.user, user);
  await page.fill(find.password, password);
  await page.click(`${find.signInForm} button[type=submit]`);
}
