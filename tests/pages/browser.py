"""Headless Debian Chromium, driven from the command line (no browser download)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass

# Flags for a closed network: no background traffic, no sandbox as root, a fresh profile.
_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--enable-logging=stderr",
    "--v=0",
)


@dataclass(frozen=True)
class Rendered:
    """A page after its scripts ran: the DOM and the console lines Chromium logged."""

    dom: str
    console: list[str]


def executable() -> str:
    """Path of the Chromium binary; ./scripts/test installs it."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    assert found, "chromium is not installed: run ./scripts/test, which installs it"
    return found


def render(url: str, *, budget_ms: int = 8000) -> Rendered:
    """Load ``url``, let its scripts run for ``budget_ms`` of virtual time, return DOM + console."""
    with tempfile.TemporaryDirectory() as profile:
        proc = subprocess.run(
            [
                executable(),
                *_FLAGS,
                f"--user-data-dir={profile}",
                f"--virtual-time-budget={budget_ms}",
                "--dump-dom",
                url,
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
    console = [line for line in proc.stderr.splitlines() if "CONSOLE" in line]
    return Rendered(dom=proc.stdout, console=console)
