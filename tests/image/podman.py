"""Builds the Dockerfile with podman and runs the built image's files the way a
container runtime would, on machines where `podman run` does not work (this VM's
hybrid cgroups) and no registry image can be pulled:

- the base is Debian bookworm made from Debian's packages (scripts/build_base_image.sh),
  named after that script's content, so it is made once per machine and again only
  when the recipe changes;
- `podman build --isolation chroot` builds the image, named with a digest of the
  build context (the files .dockerignore lets in), so an unchanged tree is not
  rebuilt at all and the newest few are kept; after a change podman's layer cache rebuilds only the layers from
  the code's COPY on (the dependency layer stays unless constraints.txt or the
  dependencies change);
- a process runs from `podman image mount` (read-only, as the manifests'
  readOnlyRootFilesystem) through `chroot` as the image's USER, in a private mount
  namespace with /proc, /dev and a host scratch directory as /tmp (the manifests'
  emptyDir); the network is the host's, so tests reach it on 127.0.0.1.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
BASE_SCRIPT = REPO / "scripts" / "build_base_image.sh"
IMAGE_REPOSITORY = "localhost/friday-persona-mesh"
KEEP_IMAGES = 3  # per machine: the trees tested last (each code change adds one)
DOCKERIGNORE = REPO / ".dockerignore"
# On machines whose HTTPS goes through an intercepting proxy, pip inside the build
# trusts only what this bundle holds; elsewhere it holds the same public roots.
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
BUILD_TIMEOUT_S = 1200
BASE_TIMEOUT_S = 900

# Mounts inside the new namespace vanish with it, so nothing is left mounted on the host
# however the process ends. /usr/bin/env -i: the process sees only the image's and the
# test's variables, as in a container, never the test runner's.
_ENTER = """set -e
root=$1 scratch=$2 user=$3; shift 3
mount --make-rprivate /
mount -t proc proc "$root/proc"
mount --rbind /dev "$root/dev"
mount --bind "$scratch" "$root/tmp"
exec chroot --userspec="$user" "$root" /usr/bin/env -i "$@"
"""


def unavailable_reason() -> str | None:
    """Why the image cannot be built and run here, or None."""
    if os.geteuid() != 0:
        return "needs root: podman image mount, unshare --mount and chroot"
    for tool in ("podman", "unshare", "chroot"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (.ci/run installs podman and debootstrap)"
    return None


def podman(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout, check=check)


def base_image_name() -> str:
    digest = hashlib.sha256(BASE_SCRIPT.read_bytes()).hexdigest()[:12]
    return f"localhost/friday-base:bookworm-{digest}"


def base_unavailable_reason() -> str | None:
    if podman("image", "exists", base_image_name(), check=False).returncode == 0:
        return None
    if shutil.which("debootstrap") is None and not Path("/usr/sbin/debootstrap").exists():
        return "no base image and debootstrap is not installed (.ci/run installs it)"
    return None


def ensure_base_image() -> str:
    name = base_image_name()
    if podman("image", "exists", name, check=False).returncode != 0:
        subprocess.run([str(BASE_SCRIPT), name], check=True, timeout=BASE_TIMEOUT_S)
    return name


def image_id(name: str) -> str | None:
    found = podman("image", "inspect", "--format", "{{.Id}}", name, check=False)
    return found.stdout.strip() if found.returncode == 0 else None


def context_files() -> list[Path]:
    """The files the build can see. .dockerignore ignores everything (`*`) and lets
    paths back in with `!path`, then drops caches: read those lines, one source of truth."""
    lines = [line.strip() for line in DOCKERIGNORE.read_text().splitlines()]
    assert "*" in lines, ".dockerignore is expected to ignore everything and list what it lets in"
    files = [REPO / "Dockerfile", DOCKERIGNORE]
    for entry in (line[1:].rstrip("/") for line in lines if line.startswith("!")):
        path = REPO / entry
        files += sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    return [p for p in files if "__pycache__" not in p.parts and p.suffix not in (".pyc", ".pyo")]


def context_digest(base: str) -> str:
    digest = hashlib.sha256(base.encode())
    for path in context_files():
        digest.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def build_image(base: str) -> str:
    """Build the repository's Dockerfile on `base` unless an image of this exact
    context exists; returns the image's name, `IMAGE_REPOSITORY:context-<digest>`.
    Naming by content (never a shared tag) lets test runs of different trees on one
    machine build and mount their own images side by side."""
    name = f"{IMAGE_REPOSITORY}:context-{context_digest(base)}"
    if image_id(name) is None:
        command = ["build", "--isolation", "chroot", "--build-arg", f"BASE_IMAGE={base}", "--tag", name]
        if HOST_CA_BUNDLE.exists():
            command += ["--volume", f"{HOST_CA_BUNDLE}:/run/host-ca.crt:ro", "--build-arg", "PIP_CERT=/run/host-ca.crt"]
        built = podman(*command, str(REPO), timeout=BUILD_TIMEOUT_S, check=False)
        if built.returncode != 0:
            raise RuntimeError(f"podman build failed:\n{built.stdout[-4000:]}\n{built.stderr[-4000:]}")
        drop_old_images(keep=KEEP_IMAGES)
    return name


def drop_old_images(keep: int) -> None:
    """Remove all but the newest `keep` test images. Without --force podman refuses to
    remove one that is mounted, so a run still using an old image keeps it."""
    listed = podman(
        "images", "--filter", f"reference={IMAGE_REPOSITORY}", "--format", "{{.CreatedAt}}\t{{.Repository}}:{{.Tag}}"
    ).stdout.splitlines()
    names = [line.split("\t")[1] for line in sorted(listed, reverse=True) if "\t" in line]
    for old in names[keep:]:
        podman("rmi", old, check=False)


def inspect(name: str) -> dict[str, Any]:
    (config,) = json.loads(podman("image", "inspect", name).stdout)
    return config


@dataclass(frozen=True)
class ImageRoot:
    """A mounted image: its files at `path`, and what its config says a container runs."""

    name: str
    path: Path
    user: str
    env: Mapping[str, str]
    entrypoint: Sequence[str]

    @classmethod
    def mount(cls, name: str) -> ImageRoot:
        config = inspect(name)["Config"]
        env = dict(item.split("=", 1) for item in config.get("Env") or [])
        path = Path(podman("image", "mount", name).stdout.strip())
        return cls(name, path, config.get("User") or "0", env, list(config.get("Entrypoint") or []))

    def unmount(self) -> None:
        podman("image", "unmount", self.name, check=False)

    @property
    def site_packages(self) -> Path:
        (found,) = (self.path / "opt" / "friday" / "lib").glob("python3*/site-packages")
        return found

    def spawn(self, argv: Sequence[str], env: Mapping[str, str], scratch: Path) -> subprocess.Popen[str]:
        """Start `argv` (resolved on the image's PATH) as the image's user, output on one pipe.
        `scratch` becomes /tmp; it must be writable by that user."""
        variables = [f"{key}={value}" for key, value in {**self.env, **env}.items()]
        return subprocess.Popen(
            ["unshare", "--mount", "--fork", "sh", "-c", _ENTER, "sh", str(self.path), str(scratch), self.user]
            + variables
            + list(argv),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # one process group: unshare, the service and its children
        )

    def run(self, argv: Sequence[str], env: Mapping[str, str], scratch: Path, timeout: float = 120) -> tuple[int, str]:
        process = self.spawn(argv, env, scratch)
        try:
            output, _ = process.communicate(timeout=timeout)
        finally:
            stop(process, timeout=5)
        return process.returncode, output


def stop(process: subprocess.Popen[str], timeout: float = 20) -> int:
    """SIGTERM the process group (what the kubelet sends), SIGKILL after `timeout`;
    returns the exit status."""
    if process.poll() is None:
        _signal_group(process, signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            _signal_group(process, signal.SIGKILL)
            process.wait(10)
    return process.returncode


def group_memory_bytes(process: subprocess.Popen[str]) -> int:
    """Memory of every process in the process's group (the service and any children,
    e.g. the agent's forkserver and job processes), as proportional set size: a page
    shared by n processes counts 1/n to each, so the sum counts it once, as a
    container's memory accounting does (summed RSS would count forked pages n times)."""
    total = 0
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat_file.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) != process.pid:  # field 5 of stat, the process group
                continue
            rollup = (stat_file.parent / "smaps_rollup").read_text()
        except (OSError, IndexError, ValueError):
            continue  # the process ended while we looked
        for line in rollup.splitlines():
            if line.startswith("Pss:"):
                total += int(line.split()[1]) * 1024
    return total


def _signal_group(process: subprocess.Popen[str], sig: signal.Signals) -> None:
    try:
        os.killpg(process.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def wait_until(predicate: Any, timeout: float, what: str, output: Any = None) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = predicate()
        except Exception:  # not up yet: connection refused, reset, 503
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            tail = "".join(output.lines[-60:]) if output is not None else ""
            raise AssertionError(f"{what}: not within {timeout}s\n{tail}")
        time.sleep(0.2)
