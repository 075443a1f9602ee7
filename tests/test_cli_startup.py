"""The CLI starts without the heavy libraries: building the command tree, ``--help`` and shell
completion import none of them (an import-graph check in fresh processes, not a timing)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from detox_cli.options import RTP_METHODS, SAFEEDIT_METHODS
from detox_eval.methods import RTP_TASK, SAFEEDIT_TASK, method_names

HEAVY = ("torch", "transformers", "peft", "accelerate", "matplotlib", "sklearn", "triton")
REPORT = (
    "import sys\n"
    "heavy = sorted(m for m in {heavy!r} if m in sys.modules)\n"
    "sys.stderr.write(f'HEAVY={{heavy}}\\n')\n"
)


def _run(code: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter; the heavy modules it loaded are reported last."""
    script = "try:\n" + "".join(f"    {line}\n" for line in code.splitlines())
    script += "finally:\n" + "".join(
        f"    {line}\n" for line in REPORT.format(heavy=HEAVY).splitlines()
    )
    return subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
    )


def _heavy_loaded(done: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in done.stderr.splitlines() if line.startswith("HEAVY=")]
    assert lines, done.stderr
    return lines[-1].removeprefix("HEAVY=")


def test_importing_the_app_imports_no_heavy_library() -> None:
    done = _run("import detox_cli.app\nfrom detox_cli.app import build_command\nbuild_command()")
    assert done.returncode == 0, done.stderr
    assert _heavy_loaded(done) == "[]"


def test_help_imports_no_heavy_library() -> None:
    for args in (["--help"], ["eval", "rtp", "--help"], ["--threads", "2", "generate", "--help"]):
        done = _run(f"from detox_cli.app import main\nmain({args!r})")
        assert done.returncode == 0, done.stderr
        assert "Usage: detox" in done.stdout
        assert _heavy_loaded(done) == "[]", args


def test_completion_imports_no_heavy_library() -> None:
    env = {
        "_DETOX_COMPLETE": "complete_bash",
        "COMP_WORDS": "detox eval rtp --la",
        "COMP_CWORD": "3",
    }
    done = _run("from detox_cli.app import main\nmain()", env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["--layers"]
    assert _heavy_loaded(done) == "[]"


def test_install_completion_writes_the_bash_script(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "detox_cli.app", "--install-completion", "bash"],
        capture_output=True,
        text=True,
        env={**os.environ, "HOME": str(tmp_path)},
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    script = tmp_path / ".bash_completions" / "detox.sh"
    assert "_DETOX_COMPLETE=complete_bash" in script.read_text()
    assert str(script) in (tmp_path / ".bashrc").read_text()


def test_help_method_lists_match_the_registry() -> None:
    assert method_names(RTP_TASK) == RTP_METHODS
    assert method_names(SAFEEDIT_TASK) == SAFEEDIT_METHODS
