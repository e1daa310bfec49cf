"""The real Pulumi CLI, run against the project with the binaries built here and nothing remote.

Each `Workspace` has a Pulumi home and a file state backend of its own (a temporary directory),
the project's plugins installed from the build (`pulumi plugin install resource NAME VERSION
--file BIN`), a passphrase secrets provider, and automatic plugin download and update checks off:
a run reaches no service.

    ws = Workspace.create(tmp_path); ws.pulumi("stack", "init", "ci"); ws.pulumi("preview", "--stack", "ci")
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from harness.pulumi_engine import build

# Not a secret: the passphrase of throwaway test stacks whose state lives in a temporary directory.
TEST_PASSPHRASE = "audit-x-engine-tests"


class PulumiError(RuntimeError):
    """A pulumi command failed; the message holds its command line and its output."""

    def __init__(self, args: list[str], done: subprocess.CompletedProcess[str]) -> None:
        self.stdout, self.stderr, self.returncode = done.stdout, done.stderr, done.returncode
        super().__init__(
            f"`pulumi {' '.join(args)}` exited {done.returncode}:\n{done.stdout[-6000:]}\n{done.stderr[-6000:]}"
        )


@dataclass
class Workspace:
    bin_dir: Path
    home: Path
    backend: Path
    project_dir: Path

    @classmethod
    def create(cls, root: Path, project_dir: Path = build.REPO_ROOT, bin_dir: Path | None = None) -> Workspace:
        ws = cls(bin_dir or build.ensure_built(), root / "pulumi-home", root / "state", project_dir)
        ws.home.mkdir(parents=True, exist_ok=True)
        ws.backend.mkdir(parents=True, exist_ok=True)
        for plugin in build.plugins():
            ws.pulumi(
                "plugin", "install", "resource", plugin.name, plugin.version, "--file", str(plugin.path(ws.bin_dir))
            )
        return ws

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PULUMI_", "AWS_"))}
        env |= {
            "PATH": f"{self.bin_dir}{os.pathsep}{env.get('PATH', '')}",
            "PULUMI_HOME": str(self.home),
            "PULUMI_BACKEND_URL": f"file://{self.backend}",
            "PULUMI_CONFIG_PASSPHRASE": TEST_PASSPHRASE,
            "PULUMI_SKIP_UPDATE_CHECK": "true",
            "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
            "PULUMI_SKIP_CONFIRMATIONS": "true",
            "PULUMI_AUTOMATION_API_SKIP_VERSION_CHECK": "true",
            "NO_COLOR": "1",
        }
        return env

    def pulumi(self, *args: str, check: bool = True, timeout: float = 1800) -> subprocess.CompletedProcess[str]:
        argv = list(args)
        # `version` takes no --non-interactive; every other command must never wait for a prompt.
        flags = [] if argv[:1] == ["version"] else ["--non-interactive"]
        done = subprocess.run(
            [str(self.bin_dir / "pulumi"), *argv, *flags],
            check=False,
            cwd=self.project_dir,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and done.returncode != 0:
            raise PulumiError(argv, done)
        return done

    def installed_plugins(self) -> list[dict[str, object]]:
        return json.loads(self.pulumi("plugin", "ls", "--json").stdout)
