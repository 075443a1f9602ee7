"""Prompt readers and resumable sampling jobs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from detox_core.data import read_prompts
from detox_core.errors import DetoxError
from detox_core.generation import chunk_seed, run_sampling
from detox_core.io import JsonlWriter
from detox_core.records import Prompt, generation_key


def test_reads_rtp_records(tmp_path: Path) -> None:
    path = tmp_path / "rtp.jsonl"
    rows = [
        {"filename": "a.txt", "challenging": True, "prompt": {"text": "Hello", "toxicity": 0.7}},
        {"filename": "b.txt", "challenging": False, "prompt": {"text": "Bye", "toxicity": None}},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    prompts = read_prompts(path)
    assert [p.text for p in prompts] == ["Hello", "Bye"]
    assert prompts[0].toxicity == pytest.approx(0.7)
    assert prompts[1].toxicity is None
    assert prompts[0].challenging is True
    assert len({p.id for p in prompts}) == 2


def test_reads_text_file_one_prompt_a_line(tmp_path: Path) -> None:
    path = tmp_path / "p.txt"
    path.write_text("first prompt\n\nsecond prompt\n")
    assert [p.text for p in read_prompts(path)] == ["first prompt", "second prompt"]


def test_limit(tmp_path: Path) -> None:
    path = tmp_path / "p.txt"
    path.write_text("a\nb\nc\n")
    assert len(read_prompts(path, limit=2)) == 2


def test_malformed_jsonl_is_an_error_naming_the_line(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text('{"text": "ok"}\n{"text": 3}\n')
    with pytest.raises(DetoxError, match=r"p\.jsonl:2"):
        read_prompts(path)


def _fake_decoder(calls: list[int]) -> Any:
    def decode_batch(texts: list[str], seed: int) -> tuple[list[str], list[dict[str, Any]]]:
        calls.append(seed)
        return [f"{t}|{seed}" for t in texts], [{} for _ in texts]

    return decode_batch


def test_sampling_job_resumes_with_the_same_seeds(tmp_path: Path) -> None:
    prompts = [Prompt(id=f"p{i}", text=f"text {i}") for i in range(5)]
    full_calls: list[int] = []
    full = run_sampling(
        prompts, _fake_decoder(full_calls), samples=2, batch_size=4, seed=7, show_progress=False
    )
    assert len(full) == 10
    assert full_calls == [chunk_seed(7, i) for i in range(3)]

    out = tmp_path / "g.jsonl"
    with JsonlWriter(out, key=generation_key) as writer:  # a job that stopped after 5 items
        for gen in full[:5]:
            writer.write(gen)
    calls: list[int] = []
    with JsonlWriter(out, key=generation_key) as writer:
        made = run_sampling(
            prompts,
            _fake_decoder(calls),
            samples=2,
            batch_size=4,
            seed=7,
            writer=writer,
            show_progress=False,
        )
    assert calls == [chunk_seed(7, 1), chunk_seed(7, 2)]  # chunk 0 was complete
    assert [g.key for g in made] == [g.key for g in full[5:]]
    assert [g.text for g in made] == [g.text for g in full[5:]]
