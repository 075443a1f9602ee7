"""Dataset readers on real samples (tests/fixtures) and on malformed files made here."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from detox_core.data import (
    read_generations,
    read_jigsaw,
    read_safeedit,
    read_toxic_spans,
)
from detox_core.errors import DetoxError
from detox_core.records import Generation, Score

FIXTURES = Path(__file__).parent / "fixtures"


# --- Jigsaw -------------------------------------------------------------------------------


def test_jigsaw_sample() -> None:
    path = FIXTURES / "jigsaw_sample.csv"
    rows = read_jigsaw(path)
    with path.open(encoding="utf-8", newline="") as handle:
        raw = list(csv.DictReader(handle))
    assert len(rows) == len(raw) == 30
    assert [r.id for r in rows] == [r["id"] for r in raw]
    assert [r.comment_text for r in rows] == [r["comment_text"] for r in raw]
    assert sum(r.toxic for r in rows) == sum(int(r["toxic"]) for r in raw) > 0
    assert all(r.insult in (0, 1) for r in rows)
    assert len(read_jigsaw(path, limit=5)) == 5


def test_jigsaw_only_required_columns(tmp_path: Path) -> None:
    path = tmp_path / "small.csv"
    path.write_text('id,comment_text,toxic\na1,"hello, world",0\n', encoding="utf-8")
    [row] = read_jigsaw(path)
    assert (row.id, row.comment_text, row.toxic, row.obscene) == ("a1", "hello, world", 0, None)


@pytest.mark.parametrize(
    ("body", "line", "message"),
    [
        ('a1,"multi\nline text",0\nb2,fine,maybe\n', 4, "toxic must be 0 or 1"),
        ("a1,fine,0\nb2,too few\n", 3, "expected 3 fields"),
        ('a1,fine,0\nb2,"fine",0,extra\n', 3, "expected 3 fields"),
        ('a1,fine,0\nb2,"broken"quote,0\n', 3, "malformed CSV row"),
    ],
)
def test_jigsaw_malformed_row_names_file_and_line(
    tmp_path: Path, body: str, line: int, message: str
) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("id,comment_text,toxic\n" + body, encoding="utf-8")
    with pytest.raises(DetoxError, match=message) as err:
        read_jigsaw(path)
    assert f"{path}:{line}:" in str(err.value)


def test_jigsaw_missing_column(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("id,text\n1,hi\n", encoding="utf-8")
    with pytest.raises(DetoxError, match="missing column"):
        read_jigsaw(path)


# --- SemEval toxic spans ------------------------------------------------------------------


def test_toxic_spans_sample() -> None:
    path = FIXTURES / "toxic_spans_trial.csv"
    examples = read_toxic_spans(path)
    assert len(examples) == 25
    first = examples[0]
    assert first.text.startswith("Because he's a moron and a bigot.")
    assert first.ranges == [(15, 20), (27, 32)]
    assert [first.text[a:b] for a, b in first.ranges] == ["moron", "bigot"]
    assert sum(first.toxic_mask) == len(first.spans) == 10
    assert len({e.id for e in examples}) == 25
    assert any(not e.spans for e in examples) or all(e.spans for e in examples)
    for example in examples:
        assert all(0 <= s < len(example.text) for s in example.spans)


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ('"[1, 2",hello there', "not a JSON list"),
        ('"[1, 200]",hello there', "outside the text"),
        ('"{""a"": 1}",hello there', "list of integers"),
    ],
)
def test_toxic_spans_malformed(tmp_path: Path, row: str, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(f'spans,text\n"[0, 1]",ok text\n{row}\n', encoding="utf-8")
    with pytest.raises(DetoxError, match=message) as err:
        read_toxic_spans(path)
    assert f"{path}:3:" in str(err.value)


# --- SafeEdit -----------------------------------------------------------------------------


def test_safeedit_sample_round_trips() -> None:
    path = FIXTURES / "safeedit_dev3.json"
    items = read_safeedit(path)
    raw = json.loads(path.read_text(encoding="utf-8"))
    assert len(items) == len(raw) == 3
    assert [item.model_dump(by_alias=True) for item in items] == raw
    first = items[0]
    assert first.question == raw[0]["question"]
    assert first.adversarial_prompt.endswith(first.question)
    assert first.knowledge_constrain.answer == raw[0]["knowledge constrain"]["answer"]
    inputs = first.generalization_inputs
    assert set(inputs) == {"DG_onlyQ", "DG_otherA", "DG_otherQ", "DG_otherAQ"}
    assert (
        inputs["DG_onlyQ"] == raw[0]["generalization test"]["test input of only harmful question"]
    )


def test_safeedit_malformed_item_names_its_line(tmp_path: Path) -> None:
    items = json.loads((FIXTURES / "safeedit_dev3.json").read_text(encoding="utf-8"))
    del items[1]["question"]
    path = tmp_path / "bad.json"
    text = json.dumps(items, indent=1)
    path.write_text(text, encoding="utf-8")
    starts = [n for n, line in enumerate(text.splitlines(), start=1) if line == " {"]
    start_of_second = starts[1]
    with pytest.raises(DetoxError, match="question") as err:
        read_safeedit(path)
    assert f"{path}:{start_of_second}:" in str(err.value)
    assert "#2" in str(err.value)


def test_safeedit_bad_json_and_jsonl(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('[\n {"id": 1,\n  "question": }\n]\n', encoding="utf-8")
    with pytest.raises(DetoxError, match="malformed JSON") as err:
        read_safeedit(path)
    assert f"{path}:3:" in str(err.value)
    items = json.loads((FIXTURES / "safeedit_dev3.json").read_text(encoding="utf-8"))
    lines = tmp_path / "items.jsonl"
    lines.write_text("".join(json.dumps(i) + "\n" for i in items), encoding="utf-8")
    assert [i.id for i in read_safeedit(lines)] == [i["id"] for i in items]


# --- generations JSONL --------------------------------------------------------------------


def test_generations_round_trip_and_malformed_line(tmp_path: Path) -> None:
    gens = [
        Generation(prompt_id="p1", prompt="Hi", sample=0, text=" there"),
        Generation(
            prompt_id="p1",
            prompt="Hi",
            sample=1,
            text=" you",
            toxicity=Score(value=0.25, scorer="profanity", version="1"),
        ),
    ]
    path = tmp_path / "gens.jsonl"
    path.write_text("".join(g.model_dump_json() + "\n" for g in gens), encoding="utf-8")
    assert read_generations(path) == gens
    with path.open("a", encoding="utf-8") as handle:
        handle.write('{"prompt_id": "p2", "prompt": "x"\n')
    with pytest.raises(DetoxError) as err:
        read_generations(path)
    assert f"{path}:3:" in str(err.value)
    path.write_text('{"prompt_id": "p2", "prompt": "x"}\n', encoding="utf-8")
    with pytest.raises(DetoxError, match="text") as err:
        read_generations(path)
    assert f"{path}:1:" in str(err.value)


def test_generate_with_malformed_prompts_is_one_line_exit_2(tmp_path: Path) -> None:
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text('{"id": "a", "text": "Hello"}\n{"id": "b", "text": \n', encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "detox_cli.app", "generate", "--prompts", str(prompts)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: ")
    assert f"{prompts}:2:" in lines[0]
    assert result.stdout == ""
