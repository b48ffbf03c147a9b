// The registry page: sign in with the admin account the server creates on first start, then
// the three lists load from /api/v1.
import assert from 'node:assert/strict';
import path from 'node:path';
import fs from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { signIn } from '../lib/action.mjs';
import { ARTIFACTS, TINY, tempDir, webDirWithTinyModel, startServer, launchBrowser } from '../lib/env.mjs';
import { find } from '../lib/find.mjs';

describe('registry page', () => {
  let dir, server, browser;

  before(async () => {
    dir = tempDir('gc-e2e-registry-');
    server = await startServer(webDirWithTinyModel(dir));
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    server?.stop();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  test('a wrong password is refused, the right one lists datasets, models and results', async () => {
    const page = browser.page;
    await page.goto(server.url);
    await signIn(page, 'admin', 'wrong-password');
    await page.waitForSelector('text=Sign-in failed');
    // A model in the registry, imported through the API as an admin would.
    const login = await page.request.post(`${server.url}/api/v1/auth/login`,
      { data: { name: 'admin', password: server.password } });
    const { token } = await login.json();
    const imported = await page.request.post(`${server.url}/api/v1/checkpoints/import`, {
      headers: { Authorization: `Bearer ${token}` },
      data: { path: path.join(TINY, 'classifier'), name: 'tiny-classifier' },
    });
    assert.equal(imported.status(), 201, await imported.text());

    await signIn(page, 'admin', server.password);
    await page.locator(find.modelsTable).waitFor({ timeout: 30_000 });
    assert.match(await page.textContent(find.modelsTable), /tiny-classifier/);
    assert.ok(await page.locator(find.datasetsTable).isVisible());
    assert.ok(await page.locator(find.resultsTable).isVisible());
    await page.screenshot({ path: path.join(ARTIFACTS, 'registry.png'), fullPage: true });
    // A cookie session: the page can read the CSRF cookie but never the HttpOnly session
    // cookie, and stores no token.
    const seen = await page.evaluate(() => ({ cookie: document.cookie, stored: localStorage.getItem('genecompass_token') }));
    assert.match(seen.cookie, /gc_csrf=[0-9a-f]{64}/);
    assert.doesNotMatch(seen.cookie, /gc_session/);
    assert.equal(seen.stored, '@session');
    const cookies = await page.context().cookies();
    assert.ok(cookies.some((c) => c.name === 'gc_session' && c.httpOnly && c.sameSite === 'Strict'), JSON.stringify(cookies));
    // A change made with the cookie but without the CSRF header is refused.
    const forged = await page.request.post(`${server.url}/api/v1/uploads?name=forged&size=10`);
    assert.equal(forged.status(), 403, await forged.text());
    // The API keeps its JSON errors under /api/v1 while the UI is served at /.
    const res = await page.request.get(`${server.url}/api/v1/no-such-thing`);
    assert.equal(res.status(), 404);
    assert.match(await res.text(), /no such endpoint/);
  });
});
