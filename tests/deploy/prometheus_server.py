"""A real Prometheus server for a test: started on a free port with a config the
test writes, stopped (and waited for) on exit; and a small client for its HTTP API."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from tests.child_process import free_port
from tests.deploy.observability import JOBS, binary

PROMETHEUS = binary("prometheus")
# Polls of Prometheus end at this deadline, never at a guess of how long a scrape takes.
DEADLINE_SECONDS = 120.0


class Prometheus:
    def __init__(self, origin: str) -> None:
        self.origin = origin

    def get(self, path: str, **params: str) -> dict[str, Any]:
        url = f"{self.origin}{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=30) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:  # 400/422: the expression does not parse or evaluate
            return json.loads(exc.read())

    def query(self, expr: str, at: float | None = None) -> dict[str, Any]:
        params = {"query": expr} if at is None else {"query": expr, "time": f"{at:.3f}"}
        return self.get("/api/v1/query", **params)

    def vector(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        answer = self.query(expr, at)
        assert answer["status"] == "success", f"{expr}: {answer}"
        return answer["data"]["result"]

    def scraped_everything_after(self, moment: float) -> float:
        """A time `at` at which every mesh target's latest scrape began after `moment`
        (so it saw everything done before) and succeeded. Final: each target has been
        scraped again after `at`, and a target's scrapes are appended in order, so no
        later sample can change what a query at `at` answers."""
        jobs = "|".join(JOBS)
        targets = f'up{{job=~"{jobs}"}}'
        latest = f"min(timestamp({targets}))"
        all_up = f"count({targets} == 1) == {len(JOBS)}"
        deadline = time.monotonic() + DEADLINE_SECONDS
        while time.monotonic() < deadline:
            at = time.time()
            if self.vector(f"{latest} > {moment:.3f}", at):
                while not self.vector(f"{latest} > {at:.3f}") and time.monotonic() < deadline:
                    time.sleep(0.2)
                if self.vector(f"{latest} > {moment:.3f}", at) and self.vector(all_up, at):
                    return at
            time.sleep(0.2)
        raise AssertionError(f"no successful scrape of all of {JOBS} after {moment}: {self.vector(targets)}")


@contextmanager
def prometheus_server(config: dict[str, Any], tmp: Path) -> Iterator[Prometheus]:
    """Prometheus with `config`, its data and log under `tmp`, answering on /-/ready."""
    assert PROMETHEUS is not None
    config_file = tmp / "prometheus.yml"
    config_file.write_text(yaml.safe_dump(config))
    port = free_port()
    log = (tmp / "prometheus.log").open("w")
    process = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={config_file}",
            f"--storage.tsdb.path={tmp / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    origin = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + DEADLINE_SECONDS
        while True:
            assert process.poll() is None, (tmp / "prometheus.log").read_text()
            try:
                with urllib.request.urlopen(f"{origin}/-/ready", timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, (tmp / "prometheus.log").read_text()
            time.sleep(0.2)
        yield Prometheus(origin)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
