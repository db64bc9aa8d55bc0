#!/usr/bin/env python3
"""Scaler benchmarks, each beside its baseline in one run (docs/benchmarks.md).

1. Counting 1,000,000 files on local disk, warm cache: `efs-scaler count` against
   `fd -t f -u | wc -l`, `find -type f | wc -l` and Python's os.walk, then with
   `--limit 100000`. Timed by hyperfine; peak RSS from getrusage.
2. Cold start: process start to the first `GET /runtime/invocation/next` on a local
   Runtime API, for the Lambda bootstrap and for a Python function that imports boto3
   and creates EFS, SSM and ECS clients (the original design's language).
3. Size of the release binary.

Usage: scripts/bench-scaler (builds the binary, then runs this with its path).
"""

import http.server
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

BIN = sys.argv[1]
CACHE = os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "efs-autoscaler", "bench")
TREE = os.path.join(CACHE, "tree-1m")
FILES, TOP, SUB = 1_000_000, 100, 10  # 100 x 10 directories of 1,000 files each
VENV_PY = os.path.join(os.environ.get("EFSA_HOME", os.path.expanduser("~/.cache/efs-autoscaler")), "venv", "bin", "python")


def make_tree():
    marker = os.path.join(TREE, ".complete")
    if os.path.exists(marker):
        return
    shutil.rmtree(TREE, ignore_errors=True)
    per_dir = FILES // (TOP * SUB)
    for a in range(TOP):
        for b in range(SUB):
            d = os.path.join(TREE, f"d{a:03}", f"s{b}")
            os.makedirs(d)
            for f in range(per_dir):
                os.close(os.open(os.path.join(d, f"f{f:04}"), os.O_CREAT | os.O_WRONLY, 0o644))
    open(marker, "w").close()  # one more regular file: FILES + 1 in all


def hyperfine(commands, runs=10):
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        args = ["hyperfine", "--style", "none", "--warmup", "2", "--runs", str(runs), "--export-json", out.name]
        for name, cmd in commands:
            args += ["--command-name", name, cmd]
        subprocess.run(args, check=True, stdout=subprocess.DEVNULL)
        with open(out.name) as f:
            return {r["command"]: r for r in json.load(f)["results"]}


def peak_rss_mib(cmd):
    """Peak RSS of one run of `cmd` (a shell pipeline's largest process)."""
    code = "import resource,subprocess,sys; subprocess.run(sys.argv[1], shell=True, stdout=subprocess.DEVNULL, check=True); print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    out = subprocess.run([sys.executable, "-c", code, cmd], check=True, capture_output=True, text=True)
    return int(out.stdout) / 1024


def check_counts():
    expected = FILES + 1
    got = int(subprocess.run([BIN, "count", TREE], check=True, capture_output=True, text=True).stdout)
    assert got == expected, f"efs-scaler counted {got}, expected {expected}"
    limited = subprocess.run([BIN, "count", TREE, "--limit", "100000"], check=True, capture_output=True, text=True).stdout.strip()
    assert limited == "100000+", limited


def count_bench():
    make_tree()
    check_counts()
    walk = f"{sys.executable} -c \"import os,sys; print(sum(len(f) for _,_,f in os.walk(sys.argv[1])))\" {TREE}"
    commands = [
        ("efs-scaler count", f"{BIN} count {TREE}"),
        ("efs-scaler count --limit 100000", f"{BIN} count {TREE} --limit 100000"),
        ("fd -t f -u | wc -l", f"fdfind -t f -u . {TREE} | wc -l"),
        ("find -type f | wc -l", f"find {TREE} -type f | wc -l"),
        ("python os.walk", walk),
    ]
    results = hyperfine(commands)
    ours = results["efs-scaler count"]["mean"]
    print(f"\n## Counting {FILES + 1:,} files, warm cache, {os.cpu_count()} cores\n")
    print("| command | mean | stddev | vs efs-scaler count | peak RSS |")
    print("|---|---|---|---|---|")
    for name, cmd in commands:
        r = results[name]
        print(f"| `{name}` | {r['mean'] * 1000:.0f} ms | {r['stddev'] * 1000:.0f} ms | {r['mean'] / ours:.2f}x | {peak_rss_mib(cmd):.1f} MiB |")
    fd = results["fd -t f -u | wc -l"]["mean"]
    limited = results["efs-scaler count --limit 100000"]["mean"]
    print(f"\nfd / efs-scaler: {fd / ours:.2f}x (target >= 1.5x)")
    print(f"--limit 100000 / full count: {limited / ours * 100:.1f} % (target <= 15 %)")


class RuntimeApi(http.server.BaseHTTPRequestHandler):
    """Answers nothing: it records when the function first asks for an event."""

    first_next = None
    event = threading.Event()

    def do_GET(self):
        if self.path.endswith("/runtime/invocation/next") and RuntimeApi.first_next is None:
            RuntimeApi.first_next = time.perf_counter()
            RuntimeApi.event.set()
        self.send_response(500)
        self.end_headers()

    def do_POST(self):
        self.send_response(202)
        self.end_headers()

    def log_message(self, *args):
        pass


PYTHON_FUNCTION = """
import os, urllib.request
import boto3
efs = boto3.client("efs"); ssm = boto3.client("ssm"); ecs = boto3.client("ecs")
urllib.request.urlopen(f"http://{os.environ['AWS_LAMBDA_RUNTIME_API']}/2018-06-01/runtime/invocation/next")
"""


def time_to_ready(argv, env, runs=20):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RuntimeApi)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = dict(env, AWS_LAMBDA_RUNTIME_API=f"127.0.0.1:{server.server_address[1]}")
    samples = []
    for _ in range(runs):
        RuntimeApi.first_next = None
        RuntimeApi.event.clear()
        start = time.perf_counter()
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not RuntimeApi.event.wait(30):
            proc.kill()
            raise SystemExit(f"{argv[0]} never asked for an event")
        samples.append(RuntimeApi.first_next - start)
        proc.kill()
        proc.wait()
    server.shutdown()
    return statistics.median(samples), min(samples)


def startup_bench():
    env = {
        "PATH": os.environ["PATH"],
        "AWS_REGION": "ap-northeast-1",
        "AWS_DEFAULT_REGION": "ap-northeast-1",  # Lambda sets both; boto3 reads this one
        "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",
        "AWS_SECRET_ACCESS_KEY": "example",
        "AWS_LAMBDA_FUNCTION_NAME": "efs-scaler",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1024",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "EFS_FILE_SYSTEM_ID": "fs-0123456789abcdef0",
        "TARGET_DIRECTORY": "/mnt/efs",
        "SSM_PARAMETER_NAME": "/efs-autoscaler/bench/mount-targets",
        "ECS_CLUSTER_NAME": "bench",
        "ECS_SERVICE_NAME": "bench-router",
        "VPC_ID": "vpc-0123456789abcdef0",
        "SECURITY_GROUP_ID": "sg-0123456789abcdef0",
        "CANDIDATE_SUBNETS": '[{"availability_zone":"ap-northeast-1a","subnet_id":"subnet-0123456789abcdef0"}]',
    }
    ours, ours_min = time_to_ready([BIN], env)
    python = VENV_PY if os.path.exists(VENV_PY) else sys.executable
    theirs, theirs_min = time_to_ready([python, "-c", PYTHON_FUNCTION], env)
    print("\n## Cold start: process start to first GET /next\n")
    print("| function | median | best |")
    print("|---|---|---|")
    print(f"| efs-scaler (Lambda mode) | {ours * 1000:.1f} ms | {ours_min * 1000:.1f} ms |")
    print(f"| Python + boto3, 3 clients | {theirs * 1000:.1f} ms | {theirs_min * 1000:.1f} ms |")
    print(f"\nefs-scaler / Python: {ours / theirs:.3f}")


def size_report():
    size = os.path.getsize(BIN)
    kind = subprocess.run(["file", "-b", BIN], capture_output=True, text=True).stdout.strip() if shutil.which("file") else ""
    print(f"\n## Binary\n\n{BIN}: {size / 1e6:.2f} MB ({size:,} bytes, target <= 8 MB)\n{kind}")


if __name__ == "__main__":
    size_report()
    startup_bench()
    count_bench()
