"""Benchmark the backup runner against a plain pg_dump, in one run, on loopback.

    python -m bench.backup --size-mb 512 [--repeat 3] [--json]

Builds an audit_x-like database of about N MB in a throwaway PostgreSQL cluster, starts an S3
API server (moto, its own process), then measures, in the same run:

    plain_dump_s   pg_dump -Fc to a local file: the baseline
    streamed_s     the runner (`python -m runner postgres`) streaming the dump to S3: a new
                   process, as an on-demand or pre-migration backup runs
    scheduled_s    the same backup as the runner's `serve` process makes it every night: modules
                   and S3 client already loaded, the backup itself timed
    s3_server_cpu_s  CPU time the S3 server spent during the scheduled run, on this machine's
                   cores (a real S3 endpoint spends none here)
    two_step_s     pg_dump -Fc to a local file, then uploading it (what other backup images do)
    server_complete_s  how long the S3 server takes to assemble a multipart upload of the dump's
                   size (the last step of streamed_s, spent in the server, not the runner)
    restore_s      the restore drill (`python -m runner verify`): restore into a scratch database
    streamed_to_sink_s  the runner streaming to a sink that discards parts: its own overhead,
                   without an S3 server competing for this machine's cores
    peak_rss_mb    peak resident memory of the runner process, in either kind of run

`ratio` is streamed_s / plain_dump_s, `scheduled_ratio` scheduled_s / plain_dump_s, `sink_ratio`
streamed_to_sink_s / plain_dump_s, `ratio_less_server_complete` (streamed_s - server_complete_s)
/ plain_dump_s. Every round runs its own baseline beside the runner, so a slow moment of this
shared machine slows both: with --repeat K, each ratio is the median of the K rounds' own ratios
and each timing the median of its K runs.
The weekly/monthly copies of a period's first backup are pre-empted (as on any other day of the
week), so streamed_s measures a regular daily run. The last line with --json is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from statistics import median
from typing import Any

import boto3

from harness import audit_dataset
from harness.local_services import cpu_seconds, postgres_bindir, postgres_cluster, s3_server_process
from runner.layout import BackupKey, stamp

DATABASE = "audit_x_bench"
PASSWORD = "BenchPassword0123456789abcdefghijklmnop"
BUCKET = "audit-x-bench"
PART_BYTES = 8 * 1024 * 1024  # the runner's default part size (backup.partSizeMb)
REPO_ROOT = Path(__file__).resolve().parent.parent

# Runs the runner and reports its own peak RSS (kB on Linux) on the last stderr line.
MEASURED_RUNNER = (
    "import resource, sys\n"
    "from runner.cli import main\n"
    "code = main(sys.argv[1:])\n"
    "print('peak_rss_kb', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n"
    "sys.exit(code)\n"
)

# A scheduled backup inside a warm runner, as `serve` makes it: the client was built at start.
SCHEDULED_RUNNER = (
    "import json, resource, sys, time\n"
    "from runner import cli, config, jobs\n"
    "settings = config.load()\n"
    "store = cli.make_store(settings, 'postgres')\n"
    "store.client  # waits until the client is built\n"
    "started = time.perf_counter()\n"
    "cli.run_backup(settings, store, jobs.utc_now, 'postgres', 'bench-scheduled')\n"
    "elapsed = time.perf_counter() - started\n"
    "print(json.dumps({'elapsed_s': elapsed, 'peak_rss_kb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))\n"
)


# The runner with its S3 client replaced by a sink that accepts and discards every part: what the
# runner itself costs, apart from the S3 server (which here shares the machine's two cores).
RUNNER_TO_SINK = (
    "import sys\n"
    "from runner import storage\n"
    "class Sink:\n"
    "    def create_multipart_upload(self, **_): return {'UploadId': 'sink'}\n"
    "    def upload_part(self, **kw): return {'ETag': str(kw['PartNumber'])}\n"
    "    def complete_multipart_upload(self, **_): return {}\n"
    "    def abort_multipart_upload(self, **_): return {}\n"
    "real_upload = storage.BackupStore.upload_stream\n"
    "def upload_stream(self, key, stream, **kw):\n"
    "    client, self._client = self._client, Sink()\n"
    "    try:\n"
    "        return real_upload(self, key, stream, **kw)\n"
    "    finally:\n"
    "        self._client = client\n"
    "storage.BackupStore.upload_stream = upload_stream\n"
    "storage.BackupStore.put_json = lambda *args, **kwargs: None  # no manifest for a discarded dump\n"
    "from runner.cli import main\n"
    "sys.exit(main(['postgres', '--reason', 'bench-sink']))\n"
)


def timed(command: list[str], env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess[str]]:
    started = time.perf_counter()
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False, timeout=7200)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"{command[0]} {command[1] if len(command) > 1 else ''} failed:\n{result.stderr[-4000:]}")
    return elapsed, result


def time_server_complete(s3: Any, dump_file: Path, key: str) -> float:
    """How long the S3 server takes to assemble a multipart upload of the dump's size: the last
    step of every streamed backup, spent in the server (moto joins the parts in Python)."""
    upload_id = s3.create_multipart_upload(Bucket=BUCKET, Key=key)["UploadId"]
    parts = []
    with dump_file.open("rb") as dump:
        for number, chunk in enumerate(iter(lambda: dump.read(PART_BYTES), b""), start=1):
            etag = s3.upload_part(Bucket=BUCKET, Key=key, UploadId=upload_id, PartNumber=number, Body=chunk)["ETag"]
            parts.append({"PartNumber": number, "ETag": etag})
    started = time.perf_counter()
    s3.complete_multipart_upload(Bucket=BUCKET, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts})
    return time.perf_counter() - started


def preempt_copies(s3: Any) -> None:
    """Mark this week and month as already copied, so a run makes only its daily backup."""
    key = BackupKey("daily", "postgres", DATABASE, stamp(datetime.now(UTC).replace(hour=0, minute=0, second=1)), "dump")
    for tier in ("weekly", "monthly"):
        s3.put_object(Bucket=BUCKET, Key=key.in_tier(tier).manifest, Body=b"{}")


def run_benchmark(size_mb: float, repeat: int, workdir: Path) -> dict[str, Any]:
    with postgres_cluster() as pg, s3_server_process() as (endpoint, s3_process):
        pg.psql(f"CREATE ROLE audit_x LOGIN SUPERUSER PASSWORD '{PASSWORD}'")
        pg.psql(f"CREATE DATABASE {DATABASE} OWNER audit_x")
        print(f"building a database of about {size_mb:g} MB ...", file=sys.stderr)
        built = audit_dataset.build(
            f"host=127.0.0.1 port={pg.port} user=audit_x dbname={DATABASE}", size_mb, password=PASSWORD
        )
        (workdir / "pgpassword").write_text(PASSWORD)
        env = {
            **os.environ,
            "PATH": f"{postgres_bindir()}:{os.environ['PATH']}",
            "PYTHONPATH": str(REPO_ROOT),
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_REGION": "eu-west-1",
            "S3_ENDPOINT_URL": endpoint,
            "BACKUP_ENVIRONMENT": "bench",
            "BACKUP_BUCKET": BUCKET,
            "BACKUP_STATE_DIR": str(workdir / "state"),
            "BACKUP_SCHEDULE_INFLUXDB": "off",
            "PGHOST": "127.0.0.1",
            "PGPORT": str(pg.port),
            "PGUSER": "audit_x",
            "PGDATABASE": DATABASE,
            "PGPASSWORD_FILE": str(workdir / "pgpassword"),
            "PGPASSWORD": PASSWORD,
        }
        s3 = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="eu-west-1",
            aws_access_key_id="bench",
            aws_secret_access_key="bench",
        )
        s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        preempt_copies(s3)
        dump_file = workdir / "plain.dump"
        plain: list[float] = []
        streamed: list[float] = []
        scheduled: list[float] = []
        to_sink: list[float] = []
        two_step: list[float] = []
        restore: list[float] = []
        server_complete: list[float] = []
        server_cpu: list[float] = []
        peak_kb: list[int] = []
        dump_mb = 0.0
        for round_ in range(repeat):
            print(f"round {round_ + 1}/{repeat}", file=sys.stderr)
            elapsed, _ = timed(["pg_dump", "--format=custom", f"--file={dump_file}", DATABASE], env)
            plain.append(elapsed)
            dump_mb = dump_file.stat().st_size / (1024 * 1024)

            elapsed, result = timed([sys.executable, "-c", MEASURED_RUNNER, "postgres", "--reason", "bench"], env)
            streamed.append(elapsed)
            peak_kb.append(int(result.stderr.strip().splitlines()[-1].split()[-1]))

            cpu_before = cpu_seconds(s3_process.pid)
            _, result = timed([sys.executable, "-c", SCHEDULED_RUNNER], env)
            server_cpu.append(cpu_seconds(s3_process.pid) - cpu_before)
            warm = json.loads(result.stdout.strip().splitlines()[-1])
            scheduled.append(warm["elapsed_s"])
            peak_kb.append(warm["peak_rss_kb"])

            elapsed, _ = timed([sys.executable, "-c", RUNNER_TO_SINK], env)
            to_sink.append(elapsed)

            started = time.perf_counter()
            subprocess.run(["pg_dump", "--format=custom", f"--file={dump_file}", DATABASE], env=env, check=True)
            s3.upload_file(str(dump_file), BUCKET, f"two-step/{round_}.dump")
            two_step.append(time.perf_counter() - started)
            server_complete.append(time_server_complete(s3, dump_file, f"complete/{round_}.dump"))
            dump_file.unlink()
        # The restore drills last: each writes and drops a whole database, and the writeback
        # that follows would slow whichever dump came next.
        for round_ in range(repeat):
            print(f"restore drill {round_ + 1}/{repeat}", file=sys.stderr)
            _, result = timed([sys.executable, "-m", "runner", "verify"], env)
            restore.append(json.loads(result.stdout)["restore_s"])

        less_complete = [run - done for run, done in zip(streamed, server_complete, strict=True)]

        def ratio(runs: list[float]) -> float:
            return round(median(run / baseline for run, baseline in zip(runs, plain, strict=True)), 3)

        return {
            "size_mb": size_mb,
            "db_mb": built["size_mb"],
            "dump_mb": round(dump_mb, 1),
            "plain_dump_s": round(median(plain), 2),
            "streamed_s": round(median(streamed), 2),
            "ratio": ratio(streamed),
            "scheduled_s": round(median(scheduled), 2),
            "scheduled_ratio": ratio(scheduled),
            "s3_server_cpu_s": round(median(server_cpu), 2),
            "streamed_to_sink_s": round(median(to_sink), 2),
            "sink_ratio": ratio(to_sink),
            "two_step_s": round(median(two_step), 2),
            "server_complete_s": round(median(server_complete), 2),
            "ratio_less_server_complete": ratio(less_complete),
            "peak_rss_mb": round(max(peak_kb) / 1024, 1),
            "restore_s": round(median(restore), 2),
            "verified": True,
            "repeat": repeat,
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.backup", description="Benchmark the backup runner.")
    parser.add_argument("--size-mb", type=float, required=True, help="approximate database size to build")
    parser.add_argument("--repeat", type=int, default=1, help="rounds; figures are the median of them")
    parser.add_argument("--json", action="store_true", help="end with one JSON object")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="audit-x-bench-") as tmp:
        workdir = Path(tmp)
        os.chmod(workdir, 0o755)
        figures = run_benchmark(args.size_mb, args.repeat, workdir)
    if args.json:
        print(json.dumps(figures))
    else:
        for key, value in figures.items():
            print(f"{key:14} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
