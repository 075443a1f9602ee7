"""Every reader answers malformed input with one DetoxError naming the file (and the line where
there is one), never another exception: truncated files, other encodings, empty files, a JSON
array where JSONL is expected, missing or extra columns, huge lines, NUL bytes, random bytes."""

from __future__ import annotations

import codecs
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detox_cmd.training.data import load_chain_records
from detox_core.data import read_generations, read_jigsaw, read_prompts, read_toxic_spans
from detox_core.data.safeedit import read_safeedit
from detox_core.errors import DetoxError
from detox_ddsc.pairs import read_pairs

FIXTURES = Path(__file__).parent / "fixtures"
Reader = Callable[[Path], Any]

# name: (reader, file suffix, a valid file's bytes)
READERS: dict[str, tuple[Reader, str, bytes]] = {
    "rtp-jsonl": (read_prompts, ".jsonl", (FIXTURES / "rtp_small.jsonl").read_bytes()),
    "prompts-text": (read_prompts, ".txt", b"first prompt\nsecond prompt\n"),
    "jigsaw-csv": (read_jigsaw, ".csv", (FIXTURES / "jigsaw_sample.csv").read_bytes()),
    "spans-csv": (read_toxic_spans, ".csv", (FIXTURES / "toxic_spans_trial.csv").read_bytes()),
    "safeedit-json": (read_safeedit, ".json", (FIXTURES / "safeedit_small.json").read_bytes()),
    "pairs-jsonl": (read_pairs, ".jsonl", b'{"safe": "no", "unsafe": "yes"}\n'),
    "generations": (
        read_generations,
        ".jsonl",
        b'{"prompt_id": "p", "prompt": "a", "text": "b", "method": "vanilla", "sample": 0}\n',
    ),
    "chains": (load_chain_records, ".jsonl", b""),  # every malformed variant below applies
}


def write(tmp_path: Path, suffix: str, data: bytes) -> Path:
    path = tmp_path / f"input{suffix}"
    path.write_bytes(data)
    return path


def expect_one_line_error(reader: Reader, path: Path, line: int | None = None) -> str:
    with pytest.raises(DetoxError) as exc:
        reader(path)
    message = str(exc.value)
    assert "\n" not in message and str(path) in message
    if line is not None:
        assert f"{path}:{line}" in message, message
    return message


def latin1(valid: bytes) -> bytes:
    return valid.replace(b"e", "é".encode("latin-1"), 1) if b"e" in valid else b"caf\xe9\n"


MALFORMED: dict[str, Callable[[bytes], bytes]] = {
    "empty": lambda valid: b"",
    "blank-lines": lambda valid: b"\n\n  \n",
    "latin-1": latin1,
    "nul-byte": lambda valid: b"abc\x00def\n" + valid,
    "truncated": lambda valid: valid[: max(1, len(valid) // 2 - 7)] + b'{"te',
    "binary": lambda valid: bytes(range(256)) * 4,
}


@pytest.mark.parametrize("kind", sorted(MALFORMED))
@pytest.mark.parametrize("name", sorted(READERS))
def test_malformed_input_is_one_line(name: str, kind: str, tmp_path: Path) -> None:
    reader, suffix, valid = READERS[name]
    data = MALFORMED[kind](valid or b'{"id": "x"}\n')
    path = write(tmp_path, suffix, data)
    if name == "prompts-text" and kind == "truncated":
        reader(path)  # any text is a prompt: nothing to refuse
        return
    expect_one_line_error(reader, path)


def test_other_encodings_name_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, ".txt", b"fine\nalso fine\ncaf\xe9\n")
    message = expect_one_line_error(read_prompts, path, line=3)
    assert "UTF-8" in message


def test_utf16_and_utf8_bom_files_are_read(tmp_path: Path) -> None:
    text = "first prompt\nsecond prompt, naïve\n"
    for encoded in (
        codecs.BOM_UTF16_LE + text.encode("utf-16-le"),
        b"\xef\xbb\xbf" + text.encode(),
    ):
        prompts = read_prompts(write(tmp_path, ".txt", encoded))
        assert [p.text for p in prompts] == ["first prompt", "second prompt, naïve"]


def test_a_json_array_where_jsonl_is_expected(tmp_path: Path) -> None:
    path = write(tmp_path, ".jsonl", b'[{"prompt": {"text": "a"}},\n {"prompt": {"text": "b"}}]\n')
    message = expect_one_line_error(read_prompts, path, line=1)
    assert "JSON array" in message


def test_csv_missing_and_extra_columns(tmp_path: Path) -> None:
    missing = write(tmp_path, ".csv", b"id,comment_text\n1,hello\n")
    assert "missing column" in expect_one_line_error(read_jigsaw, missing, line=1)
    extra = write(tmp_path, ".csv", b'spans,text\n"[]",fine\n"[]",too,many\n')
    assert "expected 2 fields" in expect_one_line_error(read_toxic_spans, extra, line=3)


def test_a_huge_csv_field_names_its_line(tmp_path: Path) -> None:
    data = b'spans,text\n"[]",short\n"[]",' + b"x" * 200_000 + b"\n"
    expect_one_line_error(read_toxic_spans, write(tmp_path, ".csv", data), line=3)


def test_a_truncated_jsonl_names_its_last_line(tmp_path: Path) -> None:
    lines = (FIXTURES / "rtp_small.jsonl").read_bytes().splitlines(keepends=True)
    data = b"".join(lines[:3]) + lines[3][: len(lines[3]) // 2]
    expect_one_line_error(read_prompts, write(tmp_path, ".jsonl", data), line=4)


@pytest.mark.parametrize("name", sorted(READERS))
@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.binary(max_size=400))
def test_random_bytes_never_escape_as_another_exception(
    name: str, data: bytes, tmp_path: Path
) -> None:
    reader, suffix, _ = READERS[name]
    try:
        reader(write(tmp_path, suffix, data))
    except DetoxError as exc:
        assert "\n" not in str(exc)


def test_cli_on_a_latin1_prompts_file_is_one_line_exit_2(tmp_path: Path) -> None:
    path = write(tmp_path, ".txt", b"caf\xe9 society\n")
    result = subprocess.run(
        [sys.executable, "-m", "detox_cli.app", "generate", "--prompts", str(path)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 2
    err = result.stderr.strip().splitlines()
    assert len(err) == 1 and f"{path}:1" in err[0] and "UTF-8" in err[0]
