// A headless Firefox (Debian's firefox-esr) driven by Puppeteer over WebDriver BiDi, speaking
// the same JSON lines as driver.py (one command per stdin line, one answer per stdout line),
// so the e2e test runs the same page checks in Firefox as in Chromium. Playwright cannot
// drive a stock Firefox (it needs its own patched build); Puppeteer's BiDi transport can.
//
// Usage: node driver-firefox.cjs [/usr/bin/firefox-esr], with Puppeteer on NODE_PATH
// (.ci/install-clients puts it in <clients>/node/node_modules, never downloading a browser).
//
// Differences from driver.py: `count` understands a trailing `:visible` (a Playwright
// pseudo-class) by filtering with checkVisibility(); `memory` is refused (Firefox has no
// performance.memory nor a CDP heap domain).

'use strict';

const readline = require('node:readline');
const puppeteer = require('puppeteer');

// Resolves, in the page, when the expression `js` becomes true: checked on every DOM change
// by a MutationObserver, never polled (as driver.py's ARM).
function arm(js) {
  window.__skiffWait = new Promise((resolve) => {
    const test = new Function(`return (${js});`);
    let observer;
    const check = () => {
      let ok = false;
      try { ok = !!test(); } catch (e) { ok = false; }
      if (ok) {
        observer.disconnect();
        resolve(performance.timeOrigin + performance.now());
      }
    };
    observer = new MutationObserver(check);
    observer.observe(document.documentElement,
      { subtree: true, childList: true, characterData: true, attributes: true });
    check();
  });
  return true;
}

function countIn(selector, visibleOnly) {
  const all = [...document.querySelectorAll(selector)];
  return visibleOnly ? all.filter((e) => e.checkVisibility()).length : all.length;
}

async function run(page, cmd) {
  const timeout = cmd.timeout ?? 15000;
  switch (cmd.op) {
    case 'goto':
      await page.goto(cmd.url);
      return page.url();
    case 'wait':
      await page.waitForSelector(cmd.selector, {
        timeout,
        visible: cmd.state === 'visible',
        hidden: cmd.state === 'hidden' || cmd.state === 'detached',
      });
      return true;
    case 'text':
      return page.$eval(cmd.selector, (e) => e.innerText);
    case 'count': {
      const visible = cmd.selector.endsWith(':visible');
      const selector = visible ? cmd.selector.slice(0, -':visible'.length) : cmd.selector;
      return page.evaluate(countIn, selector, visible);
    }
    case 'eval':
      return page.evaluate(cmd.js);
    case 'screenshot':
      await page.screenshot({ path: cmd.path, fullPage: cmd.full ?? false });
      return cmd.path;
    case 'press':
      await page.keyboard.press(cmd.key);
      return page.evaluate(
        () => document.activeElement && (document.activeElement.id || document.activeElement.tagName));
    case 'fill':
      await page.locator(cmd.selector).fill(cmd.value);
      return true;
    case 'arm':
      return page.evaluate(arm, cmd.js);
    case 'await':
      return page.evaluate((t) => Promise.race([window.__skiffWait,
        new Promise((_, no) => setTimeout(() => no(new Error('timed out')), t))]), timeout);
    case 'memory':
      throw new Error('memory is measured in Chromium only');
    default:
      throw new Error(`unknown op ${cmd.op}`);
  }
}

async function main() {
  const executablePath = process.argv[2] || '/usr/bin/firefox-esr';
  const browser = await puppeteer.launch({
    browser: 'firefox',
    executablePath,
    headless: true,
    defaultViewport: { width: 1400, height: 1000 },
  });
  const page = await browser.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  const say = (v) => process.stdout.write(`${JSON.stringify(v)}\n`);
  say({ ok: true, ready: true });
  const lines = readline.createInterface({ input: process.stdin });
  for await (const raw of lines) {
    const cmd = JSON.parse(raw);
    if (cmd.op === 'close') {
      say({ ok: true, value: null });
      break;
    }
    try {
      const value = await run(page, cmd);
      say({ ok: true, value: value ?? null, errors });
    } catch (e) {
      say({ ok: false, error: `${e.name}: ${e.message}`, errors });
    }
  }
  await browser.close();
}

main().catch((e) => {
  process.stdout.write(`${JSON.stringify({ ok: false, error: String(e) })}\n`);
  process.exit(1);
});
