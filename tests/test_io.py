"""Atomic writes and the resumable JSONL writer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from detox_core.errors import DetoxError
from detox_core.io import JsonlWriter, atomic_write_json, iter_jsonl, read_jsonl_records
from detox_core.records import Generation, generation_key


def _gen(i: int) -> Generation:
    return Generation(prompt_id=f"p{i}", prompt="x", sample=0, text=f"t{i}")


def test_writer_resumes_and_skips_done(tmp_path: Path) -> None:
    out = tmp_path / "g.jsonl"
    with JsonlWriter(out, key=generation_key) as writer:
        writer.write(_gen(0))
        writer.write(_gen(1))
    with JsonlWriter(out, key=generation_key) as writer:
        assert writer.done == {("vanilla", "p0", 0), ("vanilla", "p1", 0)}
        writer.write(_gen(2))
    ids = [obj["prompt_id"] for _, obj in iter_jsonl(out)]
    assert ids == ["p0", "p1", "p2"]


def test_half_written_record_is_cut_on_resume(tmp_path: Path) -> None:
    out = tmp_path / "g.jsonl"
    with JsonlWriter(out, key=generation_key) as writer:
        writer.write(_gen(0))
    with out.open("a") as handle:  # a writer killed mid-record
        handle.write('{"prompt_id": "p1", "prom')
    with JsonlWriter(out, key=generation_key) as writer:
        assert writer.done == {("vanilla", "p0", 0)}
        writer.write(_gen(1))
    records = read_jsonl_records(out, Generation)
    assert [r.prompt_id for r in records] == ["p0", "p1"]


def test_fresh_starts_over(tmp_path: Path) -> None:
    out = tmp_path / "g.jsonl"
    with JsonlWriter(out, key=generation_key) as writer:
        writer.write(_gen(0))
    with JsonlWriter(out, key=generation_key, fresh=True) as writer:
        assert writer.done == set()
    assert out.read_text() == ""


def test_malformed_line_names_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"a": 1}\n{not json}\n')
    with pytest.raises(DetoxError, match=r"bad\.jsonl:2"):
        list(iter_jsonl(bad))


def test_invalid_record_names_line_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        json.dumps({"prompt_id": "a", "prompt": "b", "text": "c"})
        + "\n"
        + json.dumps({"prompt_id": "a", "prompt": "b"})
        + "\n"
    )
    with pytest.raises(DetoxError, match=r"bad\.jsonl:2.*text"):
        read_jsonl_records(bad, Generation)


def test_atomic_write_leaves_no_temp_files(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "report.json"
    atomic_write_json(target, {"a": 1})
    atomic_write_json(target, {"a": 2})
    assert json.loads(target.read_text()) == {"a": 2}
    assert [p.name for p in target.parent.iterdir()] == ["report.json"]
