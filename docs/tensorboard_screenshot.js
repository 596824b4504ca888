// The TensorBoard screenshot in docs/images/posterior_diagnostics.png (README "Posterior diagnostics"):
// npm install playwright-core; node docs/tensorboard_screenshot.js <url> <png>, with `tensorboard --logdir <run>` on
// port 6006 and Debian's chromium. forceSVG=true in the URL: headless Chromium draws no WebGL chart lines.
const { chromium } = require('playwright-core');
(async () => {
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox'] });
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  await page.goto(process.argv[2]);
  await page.waitForSelector('text=val/kl_per_dim_sorted', { timeout: 60000 });
  await page.waitForTimeout(6000);
  await page.getByText('Ignore outliers in chart scaling').click();
  const smoothing = page.locator('input[aria-label="scalars smoothing input"]');
  if (await smoothing.count()) { await smoothing.fill('0'); await smoothing.press('Enter'); }
  await page.waitForTimeout(1500);
  const close = page.locator('button[aria-label="Close side pane"]');
  if (await close.count()) { await close.first().click(); await page.waitForTimeout(2000); }
  await page.screenshot({ path: process.argv[3] });
  await browser.close();
})();
