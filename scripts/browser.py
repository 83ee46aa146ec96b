#!/usr/bin/env python3
"""Drives headless Chromium over the DevTools protocol (a pipe: no driver, no pip package) for
the dashboard's browser tests.

    browser.py URL [--wait-for JS] [--announce-load] [--eval JS] [--screenshots PREFIX] [--timeout S]

Opens URL, waits for the load event, then (with --announce-load) prints `loaded` on its own line
and waits for --wait-for to be truthy in the page, which lets the caller change what the page
shows and see it update without a reload. Prints one JSON object: `value` (--eval's result),
`console` (console errors and uncaught exceptions), `failed` (requests that failed or answered
>= 400), `reloaded` (whether the document was replaced after the load), `screenshots` (PNG files
at laptop and phone widths, PREFIX-laptop.png and PREFIX-phone.png). Exits 0 when it could drive
the browser; the caller judges the result. CHROMIUM names the browser (default: chromium).
"""
import argparse
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

WIDTHS = {"laptop": (1280, 800, False), "phone": (390, 844, True)}


class Browser:
    def __init__(self, executable):
        self.profile = tempfile.mkdtemp(prefix="baton-chromium-")
        to_browser_r, self.to_browser = os.pipe()
        self.from_browser, from_browser_w = os.pipe()

        def child_fds():
            # The protocol pipe is fd 3 (commands in) and fd 4 (answers out).
            low_in, low_out = os.dup(to_browser_r), os.dup(from_browser_w)
            os.dup2(low_in, 3)
            os.dup2(low_out, 4)

        args = [
            executable,
            "--headless",
            "--remote-debugging-pipe",
            "--disable-gpu",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-extensions",
            "--disable-background-networking",
            "--disable-dev-shm-usage",
            f"--user-data-dir={self.profile}",
        ]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            args.append("--no-sandbox")  # Chromium refuses to run its sandbox as root.
        self.process = subprocess.Popen(
            args + ["about:blank"],
            preexec_fn=child_fds,
            close_fds=False,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_browser_r)
        os.close(from_browser_w)
        self.buffer = b""
        self.next_id = 0
        self.events = []
        self.session = None

    def send(self, method, params=None, session=True, timeout=30):
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params or {}}
        if session and self.session:
            message["sessionId"] = self.session
        os.write(self.to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.time() + timeout
        while time.time() < deadline:
            for reply in self.read(deadline - time.time()):
                if reply.get("id") == self.next_id:
                    if "error" in reply:
                        raise RuntimeError(f"{method}: {reply['error']}")
                    return reply.get("result", {})
                self.events.append(reply)
        raise TimeoutError(f"{method}: no answer in {timeout} s")

    def read(self, timeout):
        import select

        ready, _, _ = select.select([self.from_browser], [], [], max(timeout, 0))
        if not ready:
            return []
        chunk = os.read(self.from_browser, 1 << 20)
        if not chunk:
            raise RuntimeError("chromium closed the protocol pipe (did it start? try: chromium --headless --version)")
        self.buffer += chunk
        *messages, self.buffer = self.buffer.split(b"\0")
        return [json.loads(m) for m in messages if m]

    def wait_event(self, method, timeout):
        deadline = time.time() + timeout
        while time.time() < deadline:
            for i, event in enumerate(self.events):
                if event.get("method") == method:
                    del self.events[i]
                    return event
            self.events.extend(self.read(min(0.2, deadline - time.time())))
        raise TimeoutError(f"no {method} in {timeout} s")

    def evaluate(self, expression):
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True})
        if "exceptionDetails" in result:
            raise RuntimeError(f"evaluating {expression!r}: {result['exceptionDetails'].get('text')}")
        return result.get("result", {}).get("value")

    def close(self):
        try:
            self.send("Browser.close", session=False, timeout=5)
        except Exception:
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        shutil.rmtree(self.profile, ignore_errors=True)


def problems(events):
    console, failed = [], []
    for event in events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            console.append(" ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", [])))
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            console.append(details.get("exception", {}).get("description") or details.get("text", "exception"))
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            console.append(params["entry"].get("text", ""))
        elif method == "Network.loadingFailed":
            failed.append(f"{params.get('errorText')} ({params.get('requestId')})")
        elif method == "Network.responseReceived" and params.get("response", {}).get("status", 200) >= 400:
            response = params["response"]
            failed.append(f"{response.get('status')} {response.get('url')}")
    return console, failed


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url")
    parser.add_argument("--wait-for")
    parser.add_argument("--announce-load", action="store_true")
    parser.add_argument("--eval", dest="expression")
    parser.add_argument("--screenshots")
    parser.add_argument("--timeout", type=float, default=30)
    args = parser.parse_args()

    executable = os.environ.get("CHROMIUM", "chromium")
    if not shutil.which(executable):
        sys.exit(f"no {executable}: install Debian's chromium (apt-get install chromium) or run scripts/emulators.sh start")
    browser = Browser(executable)
    try:
        target = browser.send("Target.createTarget", {"url": "about:blank"}, session=False)
        attached = browser.send("Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}, session=False)
        browser.session = attached["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            browser.send(f"{domain}.enable")
        w, h, mobile = WIDTHS["laptop"]
        browser.send("Emulation.setDeviceMetricsOverride", {"width": w, "height": h, "deviceScaleFactor": 1, "mobile": mobile})
        browser.send("Page.navigate", {"url": args.url})
        browser.wait_event("Page.loadEventFired", args.timeout)
        # A mark on the loaded document: gone if anything reloads or navigates the page.
        browser.evaluate("window.__loadedOnce = true")
        if args.announce_load:
            print("loaded", flush=True)
        if args.wait_for:
            deadline = time.time() + args.timeout
            while not browser.evaluate(f"Boolean({args.wait_for})"):
                if time.time() > deadline:
                    raise TimeoutError(f"{args.wait_for} not true in {args.timeout} s")
                browser.events.extend(browser.read(0.25))
        value = browser.evaluate(args.expression) if args.expression else None
        reloaded = browser.evaluate("window.__loadedOnce !== true")
        shots = []
        if args.screenshots:
            for name, (w, h, mobile) in WIDTHS.items():
                browser.send("Emulation.setDeviceMetricsOverride", {"width": w, "height": h, "deviceScaleFactor": 1, "mobile": mobile})
                height = browser.send("Page.getLayoutMetrics")["cssContentSize"]["height"]
                browser.send(
                    "Emulation.setDeviceMetricsOverride",
                    {"width": w, "height": int(min(max(height, h), 6000)), "deviceScaleFactor": 1, "mobile": mobile},
                )
                data = browser.send("Page.captureScreenshot", {"format": "png"})["data"]
                path = f"{args.screenshots}-{name}.png"
                with open(path, "wb") as out:
                    out.write(base64.b64decode(data))
                shots.append(path)
        browser.events.extend(browser.read(0.2))
        console, failed = problems(browser.events)
        print(json.dumps({"value": value, "console": console, "failed": failed, "reloaded": reloaded, "screenshots": shots}), flush=True)
    finally:
        browser.close()


if __name__ == "__main__":
    main()
