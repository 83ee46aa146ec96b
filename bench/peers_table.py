#!/usr/bin/env python3
"""Side-by-side table of bench/peers.sh's JSON lines (stdin): baton-asl beside aws-local-stepfunctions
and moto for each definition, input and concurrency, with baton's ratio to aws-local-stepfunctions
(executions per second, and p50 / p99 latency: how many times lower)."""

import json
import sys


def key(line):
    return line.get("def"), line.get("input"), line.get("concurrency")


def cell(line):
    if not line:
        return "–"
    return f"{line['exec_per_s']:,.1f} ({line['p50_ms']:g} / {line['p99_ms']:g}, {line['peak_rss_mb']:g})"


def main():
    lines = [json.loads(text) for text in sys.stdin if text.strip().startswith("{")]
    by_engine = {}
    for line in lines:
        # moto's `--via boto3` line repeats the backend run through boto3: the backend figure is compared.
        if "def" in line and line.get("via", "backend") == "backend":
            by_engine.setdefault(line["engine"], {})[key(line)] = line
    baton = by_engine.get("baton-asl", {})
    als = by_engine.get("aws-local-stepfunctions", {})
    moto = by_engine.get("moto", {})
    print("| definition | input | N | at a time | baton-asl exec/s (p50 / p99 ms, peak RSS MB) | aws-local-stepfunctions | moto | baton ÷ ALS: exec/s, p50, p99 |")
    print("|---|---|---:|---:|---|---|---|---|")
    for k, b in baton.items():
        a = als.get(k)
        ratio = ""
        if a:
            ratio = f"{b['exec_per_s'] / a['exec_per_s']:.1f}×, {a['p50_ms'] / b['p50_ms']:.1f}×, {a['p99_ms'] / b['p99_ms']:.1f}×"
        matches = {True: " ✓", False: " ✗ output differs"}.get(b.get("matches_expected"), "")
        name = b["def"].removesuffix(".asl.json")
        print(f"| {name} | {b['input'].removesuffix('.input.json')} | {b['n']} | {b['concurrency']} | {cell(b)}{matches} | {cell(a)} | {cell(moto.get(k))} | {ratio} |")
    for line in lines:
        if line.get("probe") == "parked_waitForTaskToken":
            print(f"\nbaton-asl, {line['n']} executions parked on .waitForTaskToken: +{line['rss_delta_mb_per_1000']} MB RSS per 1,000 "
                  f"({line['succeeded_after_answer']} succeeded once answered)")


if __name__ == "__main__":
    main()
