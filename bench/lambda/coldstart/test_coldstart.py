"""Tests of the cold-start harness against a fake bootstrap that speaks the Runtime API.

    python3 -m unittest discover -s bench/lambda/coldstart
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import textwrap
import unittest
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import coldstart  # noqa: E402 - after the path above

# Behaves as its MODE variable says; every mode first does what a runtime does on start.
FAKE = textwrap.dedent(
    """\
    import json, os, sys, urllib.request
    api = "http://" + os.environ["AWS_LAMBDA_RUNTIME_API"] + "/2018-06-01/runtime"
    mode = os.environ["MODE"]
    for name in ("AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_LAMBDA_FUNCTION_VERSION", "AWS_REGION"):
        os.environ[name]

    def post(path, body):
        req = urllib.request.Request(api + path, data=json.dumps(body).encode(), method="POST")
        urllib.request.urlopen(req).read()

    if mode == "crash":
        print("cannot start: nothing configured", file=sys.stderr)
        sys.exit(3)
    if mode == "init-error":
        post("/init/error", {"errorType": "Runtime.Init", "errorMessage": "no table"})
        sys.exit(1)
    ballast = bytearray(int(os.environ.get("BALLAST_MIB", "0")) * 2**20)
    ballast[::4096] = b"x" * len(ballast[::4096])  # touch every page, so it is resident
    with urllib.request.urlopen(api + "/invocation/next") as res:
        event = json.load(res)
        headers = {k.lower(): v for k, v in res.headers.items()}
    request_id = headers["lambda-runtime-aws-request-id"]
    seen = {k: headers.get(k) for k in ("lambda-runtime-deadline-ms", "lambda-runtime-invoked-function-arn", "lambda-runtime-trace-id")}
    if mode == "error":
        post(f"/invocation/{request_id}/error", {"errorType": "Baton.InputInvalid", "errorMessage": "bad input"})
    else:
        post(f"/invocation/{request_id}/response", {"event": event, "headers": seen})
    urllib.request.urlopen(api + "/invocation/next")  # waits for the next event, like a runtime
    """
)


class Harness(unittest.TestCase):
    def setUp(self) -> None:
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        self.dir = Path(tmp.name)
        self.bootstrap = self.dir / "bootstrap"
        self.bootstrap.write_text(f"#!{sys.executable}\n{FAKE}")
        self.bootstrap.chmod(0o755)
        self.config = coldstart.Config(env={"BATON_RELEASE_TABLE": "t"}, functions={})

    def function(self, mode: str, expect: coldstart.Expect, **env: str) -> coldstart.Function:
        return coldstart.Function("fake", {"payload": 1}, expect, {"MODE": mode, **env})

    def test_measures_one_answered_event(self) -> None:
        seen: list[coldstart.Outcome] = []

        class Recording(coldstart.Expect):
            def check(self, outcome: coldstart.Outcome) -> str | None:
                seen.append(outcome)
                return super().check(outcome)

        run = coldstart.run_once(self.config, self.function("answer", Recording(response={"event": {"payload": 1}})), self.bootstrap)
        self.assertGreater(run.init_ms, 0)
        self.assertGreater(run.first_ms, run.init_ms)
        self.assertGreater(run.rss_kib, 1024)
        headers = seen[0].body["headers"]
        self.assertTrue(headers["lambda-runtime-invoked-function-arn"].endswith(":function:fake"))
        self.assertTrue(headers["lambda-runtime-trace-id"].startswith("Root=1-"))
        self.assertGreater(int(headers["lambda-runtime-deadline-ms"]), 0)

    def test_binaries_are_measured_from_fresh_copies(self) -> None:
        with tempfile.TemporaryDirectory() as into:
            copies = coldstart.fresh_copies({"fake": self.bootstrap}, Path(into))
            copy = copies["fake"]
            self.assertEqual(copy, Path(into) / "fake" / "bootstrap")
            self.assertEqual(copy.read_bytes(), self.bootstrap.read_bytes())
            self.assertNotEqual(copy.stat().st_ino, self.bootstrap.stat().st_ino)
            self.assertTrue(os.access(copy, os.X_OK))
            function = self.function("answer", coldstart.Expect(response={}))
            config = coldstart.Config(self.config.env, {"fake": function})
            runs = coldstart.measure(config, copies, 2)
        self.assertEqual(len(runs["fake"]), 2)

    def test_peak_rss_is_the_childs(self) -> None:
        small = coldstart.run_once(self.config, self.function("answer", coldstart.Expect(response={})), self.bootstrap)
        big = coldstart.run_once(self.config, self.function("answer", coldstart.Expect(response={}), BALLAST_MIB="64"), self.bootstrap)
        self.assertGreater(big.rss_kib - small.rss_kib, 60 * 1024)

    def test_peak_rss_leaves_out_the_harness(self) -> None:
        ballast = bytearray(200 * 2**20)
        ballast[::4096] = b"x" * len(ballast[::4096])  # the harness now holds 200 MiB resident
        run = coldstart.run_once(self.config, self.function("answer", coldstart.Expect(response={})), self.bootstrap)
        self.assertLess(run.rss_kib, 100 * 1024)
        del ballast

    def test_expected_error_type_passes(self) -> None:
        run = coldstart.run_once(self.config, self.function("error", coldstart.Expect(error_type="Baton.InputInvalid")), self.bootstrap)
        self.assertGreater(run.first_ms, 0)

    def test_unexpected_answers_fail(self) -> None:
        with self.assertRaisesRegex(coldstart.RunFailed, "expected error Baton.Other"):
            coldstart.run_once(self.config, self.function("error", coldstart.Expect(error_type="Baton.Other")), self.bootstrap)
        with self.assertRaisesRegex(coldstart.RunFailed, "expected a response, got an error"):
            coldstart.run_once(self.config, self.function("error", coldstart.Expect(response={})), self.bootstrap)
        with self.assertRaisesRegex(coldstart.RunFailed, "response lacks"):
            coldstart.run_once(self.config, self.function("answer", coldstart.Expect(response={"statusCode": 401})), self.bootstrap)

    def test_crash_and_init_error_fail_with_the_output(self) -> None:
        with self.assertRaisesRegex(coldstart.RunFailed, r"no answer \(exit 3\)(.|\n)*nothing configured"):
            coldstart.run_once(self.config, self.function("crash", coldstart.Expect(response={})), self.bootstrap)
        with self.assertRaisesRegex(coldstart.RunFailed, "init error .*no table"):
            coldstart.run_once(self.config, self.function("init-error", coldstart.Expect(response={})), self.bootstrap)

    def test_environment_is_lambdas_with_the_config_last(self) -> None:
        function = coldstart.Function("fn", {}, coldstart.Expect(response={}), {"AWS_REGION": "eu-west-1"})
        env = coldstart.lambda_env(self.config, function, "127.0.0.1:9", self.dir)
        self.assertEqual(env["AWS_LAMBDA_RUNTIME_API"], "127.0.0.1:9")
        self.assertEqual(env["AWS_LAMBDA_FUNCTION_NAME"], "fn")
        self.assertEqual(env["AWS_REGION"], "eu-west-1")
        self.assertEqual(env["BATON_RELEASE_TABLE"], "t")
        self.assertEqual(env["HOME"], str(self.dir))


class Config(unittest.TestCase):
    def load(self, doc: object) -> coldstart.Config:
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump(doc, f)
        self.addCleanup(os.unlink, f.name)
        return coldstart.load_config(Path(f.name))

    def test_reads_the_shipped_file(self) -> None:
        config = coldstart.load_config(Path(coldstart.__file__).with_name("functions.json"))
        self.assertIn("hello", config.functions)
        self.assertEqual(config.env["BATON_CATALOG_TABLE"], "baton-catalog")

    def test_errors_name_the_field(self) -> None:
        with self.assertRaisesRegex(coldstart.ConfigError, "non-empty `functions`"):
            self.load({"functions": {}})
        with self.assertRaisesRegex(coldstart.ConfigError, r"functions\.f: expected an object with `event`"):
            self.load({"functions": {"f": {"expect": {}}}})
        with self.assertRaisesRegex(coldstart.ConfigError, r"functions\.f\.expect: expected"):
            self.load({"functions": {"f": {"event": {}, "expect": {"errorType": 1}}}})
        with self.assertRaisesRegex(coldstart.ConfigError, r"functions\.f\.env: expected an object of string values"):
            self.load({"functions": {"f": {"event": {}, "expect": {"response": {}}, "env": {"A": 1}}}})


class Figures(unittest.TestCase):
    def row(self, name: str, init: float, rss_mib: float, zip_bytes: int | None = 2**20) -> dict:
        return {
            "function": name,
            "zip_bytes": zip_bytes,
            "binary_bytes": zip_bytes and 2 * zip_bytes,
            "init_ms": {"median": init, "p90": init},
            "first_ms": {"median": init + 1, "p90": init + 1},
            "rss_mib": {"median": rss_mib, "max": rss_mib},
        }

    def test_p90_is_a_measured_value(self) -> None:
        self.assertEqual(coldstart.p90([float(v) for v in range(1, 11)]), 9.0)
        self.assertEqual(coldstart.p90([5.0, 1.0, 3.0]), 5.0)

    def test_summary_of_runs_and_zip(self) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "bootstrap.zip"
            with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
                z.writestr("bootstrap", b"\0" * 30_000)
            runs = [coldstart.Run(init_ms=1.0, first_ms=2.0, rss_kib=1024), coldstart.Run(init_ms=3.0, first_ms=5.0, rss_kib=3072)]
            row = coldstart.summarise("f", runs, path)
            self.assertEqual((row["zip_bytes"], row["binary_bytes"]), (path.stat().st_size, 30_000))
        self.assertLess(row["zip_bytes"], 30_000)
        self.assertEqual(row["init_ms"], {"median": 2.0, "p90": 3.0})
        self.assertEqual(row["first_ms"], {"median": 3.5, "p90": 5.0})
        self.assertEqual(row["rss_mib"], {"median": 2.0, "max": 3.0})

    def test_target_verdicts(self) -> None:
        target = coldstart.Target(ratio=1.3, rss_mb=20)
        base = self.row("hello", 10.0, 5.0)
        self.assertEqual(target.verdict(self.row("a", 13.0, 19.0), base), "yes")
        self.assertEqual(target.verdict(self.row("b", 13.5, 19.1), base), "no: init 1.35x, RSS 20.0 MB")

    def test_table_has_a_row_per_function_and_the_ratios(self) -> None:
        table = coldstart.markdown([self.row("a", 20.0, 10.0, 3 * 2**20), self.row("hello", 10.0, 5.0)], "hello", coldstart.Target(1.3, 20))
        lines = table.splitlines()
        self.assertEqual(len(lines), 4)
        self.assertEqual(lines[2], "| a | 3.00 / 6.00 | 21.0 / 21.0 | 20.0 / 20.0 | 10.0 / 10.0 | 2.00x | 2.00x | 3.00x | no: init 2.00x |")
        self.assertTrue(lines[3].endswith("| (baseline) |"))


if __name__ == "__main__":
    unittest.main()
