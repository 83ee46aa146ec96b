#!/usr/bin/env python3
"""Cold start of Lambda `bootstrap` binaries on this machine, against a local Lambda Runtime API.

    coldstart.py --lambda-dir DIR [--config FILE] [--zip-dir DIR] [--runs N] [--baseline NAME]
                 [--target-ratio R] [--target-rss-mb MB] [--env KEY=VALUE]... [--json] [NAME ...]

For each function NAME of the config (functions.json beside this file; all of its functions
without NAME arguments) it runs DIR/NAME/bootstrap N times, each a fresh process with the
environment Lambda gives a function, serves it one event on 127.0.0.1 and measures:

  init_ms   process start -> the first GET .../invocation/next (Lambda's "Init Duration")
  first_ms  process start -> the answer to that event (POST .../response or .../error)
  rss_mib   the process's peak resident set after the answer (VmHWM of /proc/PID/status)

and prints a markdown table: median and p90 of each, the sizes of --zip-dir's
DIR/NAME/bootstrap.zip and of the bootstrap in it, the ratios to --baseline and whether each function meets the target
(median init within R times the baseline's, largest peak RSS under MB megabytes). Each
bootstrap is run from a fresh copy, so all start with the same page-cache state. One
unrecorded run per function comes first so every recorded run finds the binary in the page
cache; the recorded runs go round robin over the functions, so load from elsewhere on the
machine falls on all of them alike.

The answer must be the one the config expects (an error type, or fields of the response):
a run that crashes or answers something else is a failure, not a figure.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import zipfile
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

API = "/2018-06-01/runtime"
ACCOUNT = "123456789012"


class ConfigError(Exception):
    pass


@dataclass(frozen=True)
class Expect:
    """What the one invocation must answer: an error type, or a response containing these fields."""

    error_type: str | None = None
    response: dict[str, Any] | None = None

    def check(self, outcome: "Outcome") -> str | None:
        """None when the outcome is the expected one, otherwise what went wrong."""
        if self.error_type is not None:
            if outcome.kind != "error":
                return f"expected error {self.error_type}, got a response: {outcome.body!r}"
            got = outcome.body.get("errorType") if isinstance(outcome.body, dict) else None
            return None if got == self.error_type else f"expected error {self.error_type}, got {outcome.body!r}"
        if outcome.kind != "response":
            return f"expected a response, got an error: {outcome.body!r}"
        missing = {k: v for k, v in (self.response or {}).items() if not isinstance(outcome.body, dict) or outcome.body.get(k) != v}
        return None if not missing else f"response lacks {missing!r}: {outcome.body!r}"


@dataclass(frozen=True)
class Function:
    name: str
    event: Any
    expect: Expect
    env: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Config:
    env: dict[str, str]
    functions: dict[str, Function]


def _env_table(value: Any, where: str) -> dict[str, str]:
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise ConfigError(f"{where}: expected an object of string values")
    return dict(value)


def load_config(path: Path) -> Config:
    """Reads the functions file, naming the file and field of anything that is not as expected."""
    try:
        doc = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ConfigError(f"{path}: cannot read JSON: {err}") from err
    if not isinstance(doc, dict) or not isinstance(doc.get("functions"), dict) or not doc["functions"]:
        raise ConfigError(f"{path}: expected an object with a non-empty `functions` object")
    env = _env_table(doc.get("env", {}), f"{path}: env")
    functions = {}
    for name, spec in doc["functions"].items():
        where = f"{path}: functions.{name}"
        if not isinstance(spec, dict) or "event" not in spec or not isinstance(spec.get("expect"), dict):
            raise ConfigError(f"{where}: expected an object with `event` and an `expect` object")
        expect = spec["expect"]
        if set(expect) == {"errorType"} and isinstance(expect["errorType"], str):
            parsed = Expect(error_type=expect["errorType"])
        elif set(expect) == {"response"} and isinstance(expect["response"], dict):
            parsed = Expect(response=expect["response"])
        else:
            raise ConfigError(f"{where}.expect: expected {{\"errorType\": string}} or {{\"response\": object}}")
        functions[name] = Function(name, spec["event"], parsed, _env_table(spec.get("env", {}), f"{where}.env"))
    return Config(env, functions)


@dataclass
class Outcome:
    kind: str  # "response", "error" or "init-error"
    body: Any


class Invocation:
    """One event served to one process; the server thread fills in the times and the outcome."""

    def __init__(self, function: Function) -> None:
        self.function = function
        self.request_id = str(uuid.uuid4())
        self.started_ns = 0
        self.next_ns: int | None = None
        self.answered_ns: int | None = None
        self.outcome: Outcome | None = None
        self.answered = threading.Event()
        self.finished = threading.Event()

    def headers(self) -> dict[str, str]:
        now_ms = int(time.time() * 1000)
        return {
            "Lambda-Runtime-Aws-Request-Id": self.request_id,
            "Lambda-Runtime-Deadline-Ms": str(now_ms + 60_000),
            "Lambda-Runtime-Invoked-Function-Arn": f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:{self.function.name}",
            "Lambda-Runtime-Trace-Id": f"Root=1-{now_ms // 1000:08x}-{uuid.uuid4().hex[:24]};Parent={uuid.uuid4().hex[:16]};Sampled=0",
        }

    def record(self, kind: str, body: Any) -> None:
        """The answer arrived: its time counts now, the process is stopped once it has been acknowledged."""
        self.answered_ns = time.monotonic_ns()
        self.outcome = Outcome(kind, body)


class RuntimeApi(ThreadingHTTPServer):
    """The Runtime API of one sandbox: the current invocation is handed the first GET next; later
    GETs wait, as on Lambda, until the run is over and the process is stopped."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.current: Invocation | None = None
        self.lock = threading.Lock()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # The process is killed at the end of a run, maybe mid-request: that is not a harness error.
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)

    @property
    def address(self) -> str:
        host, port = self.server_address[:2]
        return f"{host}:{port}"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # the runtime client keeps its connection open
    server: RuntimeApi

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass

    def _reply(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> Any:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            return json.loads(raw) if raw else None
        except json.JSONDecodeError:
            return raw.decode(errors="replace")

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        inv = self.server.current
        if inv is None or self.path != f"{API}/invocation/next":
            return self._reply(404, {"errorMessage": f"no route {self.path}"})
        with self.server.lock:
            first = inv.next_ns is None
            if first:
                inv.next_ns = time.monotonic_ns()
        if not first:
            inv.finished.wait()
            self.close_connection = True
            return
        self._reply(200, inv.function.event, inv.headers())

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        inv = self.server.current
        body = self._body()
        if inv is None:
            return self._reply(404, {"errorMessage": "no invocation"})
        kinds = {
            f"{API}/init/error": "init-error",
            f"{API}/invocation/{inv.request_id}/response": "response",
            f"{API}/invocation/{inv.request_id}/error": "error",
        }
        if self.path not in kinds:
            return self._reply(404, {"errorMessage": f"no route {self.path}"})
        inv.record(kinds[self.path], body)
        try:
            self._reply(202, {"status": "OK"})
        finally:
            inv.answered.set()


class RunFailed(Exception):
    pass


@dataclass(frozen=True)
class Run:
    init_ms: float
    first_ms: float
    rss_kib: int


def lambda_env(config: Config, function: Function, api: str, home: Path) -> dict[str, str]:
    """The environment of a Lambda sandbox: the runtime's variables, dummy credentials, a HOME
    without ~/.aws (so nothing on this machine changes the SDK's start), then the config's values."""
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "TZ": ":UTC",
        "HOME": str(home),
        "AWS_LAMBDA_RUNTIME_API": api,
        "AWS_LAMBDA_FUNCTION_NAME": function.name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{function.name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": "coldstart",
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "AKIDCOLDSTART",
        "AWS_SECRET_ACCESS_KEY": "coldstart-dummy",
        "AWS_SESSION_TOKEN": "coldstart-dummy",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    env.update(config.env)
    env.update(function.env)
    return env


def run_once(config: Config, function: Function, bootstrap: Path, timeout_s: float = 10.0) -> Run:
    """Starts `bootstrap`, serves it one event, stops it after the answer."""
    with tempfile.TemporaryDirectory(prefix="coldstart-") as home, RuntimeApi() as api:
        inv = Invocation(function)
        api.current = inv
        serving = threading.Thread(target=api.serve_forever, daemon=True)
        serving.start()
        log_path = Path(home) / "log"
        with open(log_path, "wb") as log:
            env = lambda_env(config, function, api.address, Path(home))
            inv.started_ns = time.monotonic_ns()
            child = subprocess.Popen([str(bootstrap)], env=env, cwd=home, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        rss_kib = None
        try:
            while not inv.answered.wait(0.005):
                if child.poll() is not None or time.monotonic_ns() - inv.started_ns > timeout_s * 1e9:
                    break
            else:
                # Read while the runtime waits for its next event: the peak of init and one invocation.
                rss_kib = peak_rss_kib(child.pid)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
            inv.finished.set()
            api.shutdown()
        log_tail = log_path.read_text(errors="replace")[-2000:]
    if inv.outcome is None:
        raise RunFailed(f"{function.name}: no answer (exit {child.returncode}); output:\n{log_tail}")
    if inv.outcome.kind == "init-error":
        raise RunFailed(f"{function.name}: init error {inv.outcome.body!r}; output:\n{log_tail}")
    problem = function.expect.check(inv.outcome)
    if problem:
        raise RunFailed(f"{function.name}: {problem}; output:\n{log_tail}")
    if rss_kib is None:
        raise RunFailed(f"{function.name}: exited after answering, before its peak RSS was read; output:\n{log_tail}")
    assert inv.next_ns is not None and inv.answered_ns is not None  # an answer needs an event first
    return Run(
        init_ms=(inv.next_ns - inv.started_ns) / 1e6,
        first_ms=(inv.answered_ns - inv.started_ns) / 1e6,
        rss_kib=rss_kib,
    )


def fresh_copies(bootstraps: dict[str, Path], into: Path) -> dict[str, Path]:
    """Each binary copied into a new file under `into`, so that every one starts the sitting with
    the same page-cache state: here a binary written minutes ago starts up to 0.2 ms sooner than
    one written hours ago, which would favour whichever was built last. (In Lambda the package is
    unpacked into each new sandbox, so freshly written files are also the closer state.)"""
    copies = {}
    for name, path in bootstraps.items():
        copy = into / name / "bootstrap"
        copy.parent.mkdir(parents=True)
        shutil.copy2(path, copy)
        with open(copy, "rb") as written:  # written back now, not by a flusher during the runs
            os.fsync(written.fileno())
        copies[name] = copy
    return copies


def peak_rss_kib(pid: int) -> int | None:
    """VmHWM of a live process, None once it is gone. Not getrusage's ru_maxrss: Linux carries the
    forking parent's peak over exec into it, so every child would report at least this Python's."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])  # "VmHWM:  12345 kB"
    return None


def p90(values: list[float]) -> float:
    """Nearest-rank 90th percentile: a value that was measured, not an interpolation."""
    ordered = sorted(values)
    return ordered[math.ceil(0.9 * len(ordered)) - 1]


def summarise(name: str, runs: list[Run], zip_path: Path | None) -> dict[str, Any]:
    init = [r.init_ms for r in runs]
    first = [r.first_ms for r in runs]
    rss = [r.rss_kib / 1024 for r in runs]
    return {
        "function": name,
        "runs": len(runs),
        "zip_bytes": zip_path.stat().st_size if zip_path else None,
        "binary_bytes": zipfile.ZipFile(zip_path).getinfo("bootstrap").file_size if zip_path else None,
        "init_ms": {"median": statistics.median(init), "p90": p90(init)},
        "first_ms": {"median": statistics.median(first), "p90": p90(first)},
        "rss_mib": {"median": statistics.median(rss), "max": max(rss)},
    }


@dataclass(frozen=True)
class Target:
    """Init (median) within `ratio` of the baseline's, and peak RSS (the largest run) under `rss_mb`."""

    ratio: float
    rss_mb: float

    def verdict(self, row: dict[str, Any], base: dict[str, Any]) -> str:
        misses = []
        init_ratio = row["init_ms"]["median"] / base["init_ms"]["median"]
        if init_ratio > self.ratio:
            misses.append(f"init {init_ratio:.2f}x")
        rss_mb = row["rss_mib"]["max"] * 2**20 / 1e6
        if rss_mb >= self.rss_mb:
            misses.append(f"RSS {rss_mb:.1f} MB")
        return "yes" if not misses else "no: " + ", ".join(misses)


def markdown(rows: list[dict[str, Any]], baseline: str | None, target: Target) -> str:
    base = next((r for r in rows if r["function"] == baseline), None)
    columns = ["function", "arm64 zip / binary MiB", "cold start ms (median / p90)", "init ms (median / p90)", "peak RSS MiB (median / max)"]
    if base:
        columns += [f"init / {baseline}", f"RSS / {baseline}", f"zip / {baseline}", f"target (init <= {target.ratio}x, RSS < {target.rss_mb:g} MB)"]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for r in rows:
        cells = [
            r["function"],
            f"{r['zip_bytes'] / 2**20:.2f} / {r['binary_bytes'] / 2**20:.2f}" if r["zip_bytes"] is not None else "-",
            f"{r['first_ms']['median']:.1f} / {r['first_ms']['p90']:.1f}",
            f"{r['init_ms']['median']:.1f} / {r['init_ms']['p90']:.1f}",
            f"{r['rss_mib']['median']:.1f} / {r['rss_mib']['max']:.1f}",
        ]
        if base:
            has_zips = r["zip_bytes"] is not None and base["zip_bytes"] is not None
            cells += [
                f"{r['init_ms']['median'] / base['init_ms']['median']:.2f}x",
                f"{r['rss_mib']['median'] / base['rss_mib']['median']:.2f}x",
                f"{r['zip_bytes'] / base['zip_bytes']:.2f}x" if has_zips else "-",
                "(baseline)" if r is base else target.verdict(r, base),
            ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def measure(config: Config, bootstraps: dict[str, Path], rounds: int) -> dict[str, list[Run]]:
    """One unrecorded warm-up run per function, then `rounds` rounds over all of them in turn, so
    a change in the machine's load touches every function alike. Raises RunFailed."""
    for name, bootstrap in bootstraps.items():
        run_once(config, config.functions[name], bootstrap)
    runs: dict[str, list[Run]] = {name: [] for name in bootstraps}
    for i in range(rounds):
        for name, bootstrap in bootstraps.items():
            runs[name].append(run_once(config, config.functions[name], bootstrap))
        print(f"[coldstart] round {i + 1}/{rounds}", file=sys.stderr)
    return runs


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=Path(__file__).with_name("functions.json"))
    parser.add_argument("--lambda-dir", type=Path, required=True, help="holds NAME/bootstrap (an x86-64 build here)")
    parser.add_argument("--zip-dir", type=Path, help="holds NAME/bootstrap.zip, for the size column")
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--baseline", help="a function to express the others as ratios of")
    parser.add_argument("--target-ratio", type=float, default=1.3, help="init within this ratio of the baseline's")
    parser.add_argument("--target-rss-mb", type=float, default=20.0, help="peak RSS under this many MB (10^6 bytes)")
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE", help="set in every function's environment, over the config's `env`")
    parser.add_argument("--json", action="store_true", help="one JSON object per function instead of a table")
    parser.add_argument("names", nargs="*", help="functions of the config (default: all)")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    try:
        config = load_config(args.config)
    except ConfigError as err:
        print(f"coldstart: {err}", file=sys.stderr)
        return 2
    try:
        overrides = dict(item.split("=", 1) for item in args.env)
    except ValueError:
        parser.error("--env takes KEY=VALUE")
    config = Config({**config.env, **overrides}, config.functions)
    names = args.names or list(config.functions)
    unknown = [n for n in names + ([args.baseline] if args.baseline else []) if n not in config.functions]
    if unknown:
        print(f"coldstart: {args.config}: no function {', '.join(unknown)} under `functions`", file=sys.stderr)
        return 2
    if args.baseline and args.baseline not in names:
        names.append(args.baseline)
    bootstraps = {name: args.lambda_dir / name / "bootstrap" for name in names}
    zips = {name: args.zip_dir / name / "bootstrap.zip" if args.zip_dir else None for name in names}
    for path in [*bootstraps.values(), *zips.values()]:
        if path is not None and not path.is_file():
            print(f"coldstart: {path}: not found (build with cargo lambda first)", file=sys.stderr)
            return 2

    try:
        with tempfile.TemporaryDirectory(prefix="coldstart-bin-", dir=args.lambda_dir) as copies:
            runs = measure(config, fresh_copies(bootstraps, Path(copies)), args.runs)
    except RunFailed as err:
        print(f"coldstart: {err}", file=sys.stderr)
        return 1
    rows = [summarise(name, runs[name], zips[name]) for name in names]
    if args.json:
        for row in rows:
            print(json.dumps(row))
    else:
        print(markdown(rows, args.baseline, Target(args.target_ratio, args.target_rss_mb)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
