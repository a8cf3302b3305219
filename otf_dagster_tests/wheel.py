"""The package as a deployment gets it: a wheel built from the checkout's files, installed
(no ``-e``) into a fresh virtualenv outside the checkout, with no network.

The fresh venv borrows the test venv's already-installed dependencies through a ``.pth`` line
added *after* the wheel is installed (pip never sees them, so it cannot touch the test venv);
the test venv's editable hook is a ``.pth`` of its own site folder and is not read from there,
so ``otf_dagster`` resolves to the installed wheel only (``InstalledWheel.check`` proves it).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import pytest

CHECKOUT = Path(__file__).resolve().parents[1]
# What the build reads: pyproject.toml names everything else.
SOURCES = ("pyproject.toml", "README.md", "otf_dagster", "sql", "deploy")
DEPENDENCY_COMMANDS = ("dagster", "dagster-daemon", "dagster-webserver")


@dataclass(frozen=True)
class InstalledWheel:
    wheel: Path
    venv: Path
    workdir: Path  # outside the checkout: commands run from here

    def bin(self, name: str) -> str:
        return str(self.venv / "bin" / name)

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OTF_", "DAGSTER_"))}
        env.pop("PYTHONPATH", None)
        env["OTF_STATE_DIR"] = str(self.workdir / ".otf")
        env.update(extra)
        return env

    def run(self, *cmd: str, timeout: float = 120, **extra: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            list(cmd),
            cwd=self.workdir,
            env=self.env(**extra),
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def names(self) -> list[str]:
        with zipfile.ZipFile(self.wheel) as whl:
            return whl.namelist()


def build_wheel(into: Path) -> Path:
    """``pip wheel --no-deps`` of a copy of the checkout's sources (a stale ``build/`` folder
    in the checkout could otherwise leak deleted files into the wheel)."""
    src = into / "src"
    src.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in SOURCES:
        path = CHECKOUT / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=ignore)
        else:
            shutil.copy2(path, src / name)
    out = into / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
         "--no-index", "-w", str(out), str(src)],
        check=True, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    [wheel] = out.glob("otf_dagster-*.whl")
    return wheel


def install(wheel: Path, venv: Path) -> None:
    subprocess.run(
        [sys._base_executable, "-m", "venv", "--without-pip", str(venv)],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install",
         "-q", "--no-deps", "--no-index", str(wheel)],
        check=True, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    site = Path(
        subprocess.check_output(
            [str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            text=True,
        ).strip()
    )  # fmt: skip
    ours = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (site / "zz_test_venv_dependencies.pth").write_text("\n".join(sorted(ours)) + "\n")
    # The dependencies' commands, as installing them there would have written them.
    for name in DEPENDENCY_COMMANDS:
        [ep] = metadata.entry_points(group="console_scripts", name=name)
        module, _, attr = ep.value.partition(":")
        script = venv / "bin" / name
        script.write_text(
            f"#!{venv / 'bin' / 'python'}\nimport sys\nfrom {module} import {attr}\n"
            f"sys.exit({attr}())\n"
        )
        script.chmod(0o755)


@pytest.fixture(scope="session")
def installed_wheel(tmp_path_factory) -> InstalledWheel:
    root = tmp_path_factory.mktemp("wheel")
    wheel = build_wheel(root)
    venv = root / "venv"
    install(wheel, venv)
    workdir = root / "elsewhere"
    workdir.mkdir()
    return InstalledWheel(wheel=wheel, venv=venv, workdir=workdir)
