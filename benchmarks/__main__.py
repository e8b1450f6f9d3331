"""Run the benchmark suite: `python -m benchmarks [--quick] [--json] [case ...]`."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import platform
import sys
import time
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from benchmarks.common import LATENCY, Options, Result, fake_credentials, servers

CASES = (
    "client_cpu",
    "serverless_turn",
    "lambda_invocation",
    "bulk",
    "list",
    "cold_start",
    "serialize",
    "listing_scale",
    "strands_turn",
    "adk_turn",
    "openai_agents_turn",
    "langgraph_steps",
)
PACKAGES = (
    "s3store",
    "aioboto3",
    "aiobotocore",
    "botocore",
    "aiohttp",
    "pydantic",
    "moto",
    "obstore",
    "strands-agents",
    "google-adk",
    "openai-agents",
    "langgraph",
)


def environment() -> dict[str, Any]:
    versions = {}
    for package in PACKAGES:
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = None
    return {
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
        },
        "versions": versions,
    }


async def run(cases: list[str], options: Options) -> list[Result]:
    results: list[Result] = []
    with servers(LATENCY) as urls:
        for case in cases:
            module = importlib.import_module(f"benchmarks.cases.{case}")
            started = time.perf_counter()
            results += await module.run(urls, options)
            print(f"{case}: {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
    return results


def table(results: list[Result]) -> str:
    lines = [
        "| figure | s3store (or the named client) | baseline | ratio | target | holds |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for result in results:
        target = "" if result.target is None else f"<= {result.target:g}"
        holds = {None: "", True: "yes", False: "**no**"}[result.holds]
        lines.append(
            f"| {result.name} | {result.value:,.1f} {result.unit} | "
            f"{result.baseline:,.1f} {result.unit} | {result.ratio:.3f} | {target} | {holds} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer operations and repeats")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("cases", nargs="*", choices=[[], *CASES], help="cases to run (all)")
    args = parser.parse_args()
    fake_credentials()
    options = Options(quick=args.quick)
    started = time.perf_counter()
    results = asyncio.run(run(args.cases or list(CASES), options))
    report = {
        "command": " ".join(["python -m benchmarks", *sys.argv[1:]]),
        "quick": args.quick,
        "latency_ms": LATENCY * 1000,
        **environment(),
        "seconds": round(time.perf_counter() - started, 1),
        "results": [result.as_dict() for result in results],
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(table(results))
        missed = [result.name for result in results if result.holds is False]
        print(f"\n{len(results)} figures; targets missed: {', '.join(missed) or 'none'}")


if __name__ == "__main__":
    main()
