"""A headless Chromium driven by Playwright, one JSON command per stdin line, one JSON answer
per stdout line. The e2e test (crates/skiff/tests/ui.rs) and the page-latency benchmark
(bench ui-latency) both drive the page through it, so neither needs Python of its own.

Commands: {"op": "goto", "url"}, {"op": "wait", "selector", "state"?, "timeout"?},
{"op": "text", "selector"}, {"op": "count", "selector"}, {"op": "eval", "js"},
{"op": "screenshot", "path"}, {"op": "press", "key"}, {"op": "fill", "selector", "value"},
{"op": "arm", "js"} (starts waiting, in the page, for the expression `js` to be true, timed
by a MutationObserver, not by polling), {"op": "await", "timeout"?} (the epoch-ms time the
armed expression became true), {"op": "memory"} (JS heap bytes in use after a full garbage
collection, and the page's element count), {"op": "close"}.
"""

import json
import sys

from playwright.sync_api import sync_playwright

ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    # performance.memory in bytes rather than coarse buckets, for the memory figures.
    "--enable-precise-memory-info",
]

ARM = """(js) => {
  window.__skiffWait = new Promise((resolve) => {
    const test = new Function(`return (${js});`);
    const check = () => {
      let ok = false;
      try { ok = !!test(); } catch (e) { ok = false; }
      if (ok) {
        observer.disconnect();
        resolve(performance.timeOrigin + performance.now());
      }
    };
    const observer = new MutationObserver(check);
    observer.observe(document.documentElement,
      { subtree: true, childList: true, characterData: true, attributes: true });
    check();
  });
  return true;
}"""


def main():
    executable = sys.argv[1] if len(sys.argv) > 1 else "/usr/bin/chromium"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        cdp = page.context.new_cdp_session(page)
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        print(json.dumps({"ok": True, "ready": True}), flush=True)
        for raw in sys.stdin:
            cmd = json.loads(raw)
            op = cmd["op"]
            try:
                timeout = cmd.get("timeout", 15000)
                if op == "goto":
                    page.goto(cmd["url"])
                    out = page.url
                elif op == "wait":
                    page.wait_for_selector(cmd["selector"], state=cmd.get("state", "attached"), timeout=timeout)
                    out = True
                elif op == "text":
                    out = page.inner_text(cmd["selector"])
                elif op == "count":
                    out = page.locator(cmd["selector"]).count()
                elif op == "eval":
                    out = page.evaluate(cmd["js"])
                elif op == "screenshot":
                    page.screenshot(path=cmd["path"], full_page=cmd.get("full", False))
                    out = cmd["path"]
                elif op == "press":
                    page.keyboard.press(cmd["key"])
                    out = page.evaluate("document.activeElement && (document.activeElement.id || document.activeElement.tagName)")
                elif op == "fill":
                    page.fill(cmd["selector"], cmd["value"])
                    out = True
                elif op == "arm":
                    out = page.evaluate(ARM, cmd["js"])
                elif op == "await":
                    out = page.evaluate(
                        "(t) => Promise.race([window.__skiffWait,"
                        " new Promise((_, no) => setTimeout(() => no(new Error('timed out')), t))])",
                        timeout,
                    )
                elif op == "memory":
                    cdp.send("HeapProfiler.collectGarbage")
                    out = page.evaluate(
                        "({heap: performance.memory.usedJSHeapSize,"
                        " elements: document.getElementsByTagName('*').length})"
                    )
                elif op == "close":
                    print(json.dumps({"ok": True, "value": None}), flush=True)
                    break
                else:
                    raise ValueError(f"unknown op {op}")
                print(json.dumps({"ok": True, "value": out, "errors": errors}), flush=True)
            except Exception as e:  # reported to the caller, which fails with it
                print(json.dumps({"ok": False, "error": f"{type(e).__name__}: {e}", "errors": errors}), flush=True)
        browser.close()


if __name__ == "__main__":
    main()
