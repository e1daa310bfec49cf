"""Build the real Pulumi engine's binaries from Go modules, once per machine, cached by content.

`python -m harness.pulumi_engine.build` prints the directory that holds them:
- `pulumi`, the CLI (github.com/pulumi/pulumi/pkg/v3/cmd/pulumi, built from the wrapper module in
  `go/`: pkg/go.mod's `replace` directives refuse a plain `go install`);
- `pulumi-language-python`, the project's own Python language host (`go/cmd/`), with Pulumi's
  own executor script `pulumi-language-python-exec` (from the sdk/v3 module) beside it;
- in `plugins/`: `pulumi-resource-docker` and `pulumi-resource-random`, terraform-provider-docker and
  terraform-provider-random bridged by pulumi-terraform-bridge, with mains of the project's own
  (`providers/`);
- `pulumi-resource-aws`, a STAND-IN for pulumi-aws (which cannot be built here): no AWS behind it.

The cache lives in ${AUDIT_X_CACHE:-~/.cache/audit-x}/pulumi-engine (the Go module and build
caches too): a directory per digest of the versions and of every source file here, so a change
to a wrapper rebuilds and an unchanged tree reuses the binaries at once.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent.parent
CLI_MODULE = HERE / "go"
PROVIDERS_MODULE = HERE / "providers"
PROVIDER_BEHAVIOUR = REPO_ROOT / "harness" / "provider_behaviour.yaml"

# requirements.txt pins pulumi 3.272.0; the Go module proxy does not serve pkg/v3 at v3.272.0, and
# v3.274.0 is the nearest release it serves: the CLI and the language host report that version.
CLI_VERSION = "3.274.0"
SDK_MODULE = "github.com/pulumi/pulumi/sdk/v3"
CLI_PACKAGE = "github.com/pulumi/pulumi/pkg/v3/cmd/pulumi"
VERSION_VAR = "github.com/pulumi/pulumi/sdk/v3/go/common/version.Version"


def cache_root() -> Path:
    return Path(os.environ.get("AUDIT_X_CACHE") or Path.home() / ".cache" / "audit-x") / "pulumi-engine"


def pinned(package: str) -> str:
    """The version requirements.txt pins for a Python package (the SDK asks for that plugin)."""
    text = (REPO_ROOT / "requirements.txt").read_text()
    match = re.search(rf"^{re.escape(package)}==([\w.]+)$", text, re.MULTILINE)
    if not match:
        raise ValueError(f"requirements.txt: no `{package}==VERSION` line")
    return match.group(1)


@dataclass(frozen=True)
class Plugin:
    """A resource provider plugin: its name, the version the SDK asks for, and where it is built."""

    name: str
    version: str
    module: Path

    @property
    def binary(self) -> str:
        return f"pulumi-resource-{self.name}"

    def path(self, bin_dir: Path) -> Path:
        """Apart from the CLI's directory (which runs put on PATH): the CLI would take a plugin on
        PATH over the installed one, and runs must use what `pulumi plugin install` installed."""
        return bin_dir / "plugins" / self.binary


def plugins() -> list[Plugin]:
    return [
        Plugin("aws", pinned("pulumi-aws"), CLI_MODULE),
        Plugin("docker", pinned("pulumi-docker"), PROVIDERS_MODULE),
        Plugin("random", pinned("pulumi-random"), PROVIDERS_MODULE),
    ]


def aws_replace_keys() -> dict[str, list[str]]:
    """Per AWS type, the inputs whose change replaces (ForceNew in pulumi-aws), from the file the
    offline preview reads: the stand-in replaces exactly where the model says AWS would."""
    types = yaml.safe_load(PROVIDER_BEHAVIOUR.read_text())["types"]
    return {name: list(spec["replace"]) for name, spec in types.items() if name.startswith("aws:")}


def sources() -> list[Path]:
    return sorted(
        path
        for module in (CLI_MODULE, PROVIDERS_MODULE)
        for path in module.rglob("*")
        if path.is_file() and path.suffix in {".go", ".mod", ".sum"}
    )


def digest() -> str:
    """What the binaries are built from: versions, the Go version, the sources, the AWS facts."""
    h = hashlib.sha256()
    go_version = subprocess.run(["go", "version"], capture_output=True, text=True, check=True).stdout
    h.update(json.dumps([CLI_VERSION, [(p.name, p.version) for p in plugins()], go_version]).encode())
    h.update(json.dumps(aws_replace_keys(), sort_keys=True).encode())
    for path in sources():
        h.update(str(path.relative_to(HERE)).encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:16]


def bin_dir() -> Path:
    return cache_root() / f"bin-{digest()}"


def _go_env() -> dict[str, str]:
    root = cache_root()
    env = dict(os.environ)
    env |= {
        "GOMODCACHE": str(root / "gomod"),
        "GOCACHE": str(root / "gocache"),
        "GOTOOLCHAIN": "local",
        "GOFLAGS": "-mod=readonly -buildvcs=false",
    }
    return env


def _go(args: list[str], module: Path, env: dict[str, str]) -> str:
    # nice: the machine is shared; -p bounds parallel compiles (GO_BUILD_PARALLEL, default the cores).
    parallel = os.environ.get("GO_BUILD_PARALLEL")
    cmd = ["nice", "-n", "10", "go", *args[:1], *(["-p", parallel] if parallel else []), *args[1:]]
    done = subprocess.run(cmd, cwd=module, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"`{' '.join(cmd)}` in {module} failed:\n{done.stderr[-4000:]}")
    return done.stdout


def build(target: Path) -> None:
    env = _go_env()
    work = target.with_name(target.name + ".partial")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    cli_ldflags = f"-X {VERSION_VAR}=v{CLI_VERSION}"
    _go(["build", "-ldflags", cli_ldflags, "-o", str(work / "pulumi"), CLI_PACKAGE], CLI_MODULE, env)
    host_ldflags = f"-X main.version={CLI_VERSION}"
    _go(["build", "-ldflags", host_ldflags, "-o", str(work), "./cmd/pulumi-language-python"], CLI_MODULE, env)
    sdk_dir = _go(["list", "-m", "-f", "{{.Dir}}", SDK_MODULE], CLI_MODULE, env).strip()
    executor = work / "pulumi-language-python-exec"
    shutil.copyfile(Path(sdk_dir) / "python" / "cmd" / "pulumi-language-python-exec", executor)
    executor.chmod(0o755)
    replace = json.dumps(aws_replace_keys(), sort_keys=True, separators=(",", ":"))
    for plugin in plugins():
        ldflags = f"-X main.version={plugin.version}"
        if plugin.name == "aws":
            ldflags += f" -X 'main.replaceJSON={replace}'"
        output = str(plugin.path(work))
        _go(["build", "-ldflags", ldflags, "-o", output, f"./cmd/{plugin.binary}"], plugin.module, env)
    manifest = {"pulumi": CLI_VERSION, "plugins": {p.name: p.version for p in plugins()}}
    (work / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    shutil.rmtree(target, ignore_errors=True)
    work.rename(target)
    # A binary set of another tree is 300 MB: only the newest is kept (the Go caches keep the rest cheap).
    for stale in target.parent.glob("bin-*"):
        if stale != target:
            shutil.rmtree(stale, ignore_errors=True)


def ensure_built() -> Path:
    """The directory of the binaries, built first if this tree's digest has none yet."""
    target = bin_dir()
    if (target / "manifest.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    # One build at a time on a machine (test workers, two checkouts): the others wait, then reuse it.
    with (target.parent / "build.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (target / "manifest.json").is_file():
            build(target)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--time", action="store_true", help="also print how long it took, on stderr")
    args = parser.parse_args(argv)
    start = time.monotonic()
    target = ensure_built()
    print(target)
    if args.time:
        print(f"seconds={time.monotonic() - start:.1f}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
