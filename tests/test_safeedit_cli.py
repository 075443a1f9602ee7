"""``detox eval safeedit`` and ``detox ddsc classify`` on a tiny chat model; slow: the real one."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from detox_cli.app import main
from detox_eval.safeedit.metrics import METRICS

METHODS = ("vanilla", "ddsc", "dinm", "dinm+ddsc")  # the default --methods

FIXTURE = Path(__file__).parent / "fixtures" / "safeedit_small.json"
CHAT_TEMPLATE = (
    "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<assistant>{% endif %}"
)


@pytest.fixture(scope="module")
def tiny_chat_dir(tiny_lm_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny Llama checkpoint with a chat template (SafeEdit runs chat-formatted)."""
    from transformers import AutoTokenizer

    target = tmp_path_factory.mktemp("tiny-chat")
    shutil.copytree(tiny_lm_dir, target, dirs_exist_ok=True)
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_lm_dir))
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(str(target))
    return target


def safeedit_args(model: Path, out: Path, *extra: str) -> list[str]:
    return [
        "eval",
        "safeedit",
        "--data",
        str(FIXTURE),
        "--out",
        str(out),
        "--model",
        str(model),
        "--max-new-tokens",
        "3",
        "--max-input-tokens",
        "48",
        "--dinm-steps",
        "2",
        "--device",
        "cpu",
        "--judge",
        "profanity",
        *extra,
    ]


def read_jsonl(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_eval_safeedit_writes_the_report_and_resumes(tiny_chat_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    main(safeedit_args(tiny_chat_dir, out, "--limit", "2"))
    lines = read_jsonl(out / "generations.jsonl")
    assert sorted((str(r["method"]), r["instance_id"]) for r in lines) == sorted(
        (m, i) for m in METHODS for i in (20, 23)
    )
    for record in lines:
        assert list(record["responses"]) == list(METRICS)  # type: ignore[call-overload]
        uses_t = record["method"] != "vanilla"
        assert (record["toxic_layer"] is not None) == uses_t
        assert (record["edit"] is not None) == str(record["method"]).startswith("dinm")
    report = json.loads((out / "report.json").read_text())
    assert list(report["methods"]) == list(METHODS)
    for result in report["methods"].values():
        assert result["n_instances"] == 2
        assert result["n_responses"] == 10
        assert set(result["scores"]) == {*METRICS, "DG_avg"}
        assert result["seconds"] > 0
    assert report["judge"].startswith("profanity@")
    markdown = (out / "report.md").read_text()
    assert "| Method | DS | DG_onlyQ |" in markdown
    assert "| DINM+DSCD MODE-1 | 100.00 | 98.81 |" in markdown
    assert len(read_jsonl(out / "judgements.jsonl")) == 4 * 2 * 5

    # rerun with one more instance: only the new instance is generated
    before = (out / "generations.jsonl").read_text()
    main(safeedit_args(tiny_chat_dir, out))
    after = (out / "generations.jsonl").read_text()
    assert after.startswith(before)
    assert len(read_jsonl(out / "generations.jsonl")) == 4 * 3
    assert json.loads((out / "report.json").read_text())["n_instances"] == 3


def test_eval_safeedit_refuses_other_settings_in_the_same_directory(
    tiny_chat_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    main(safeedit_args(tiny_chat_dir, out, "--limit", "1", "--methods", "vanilla"))
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        args = safeedit_args(tiny_chat_dir, out, "--limit", "1", "--methods", "vanilla")
        main([*args, "--max-new-tokens", "5"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "max_new_tokens" in err
    assert len(err.splitlines()) == 1


def test_static_mode_needs_a_profile_that_fits(
    tiny_chat_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(safeedit_args(tiny_chat_dir, tmp_path / "run", "--limit", "1", "--mode", "static"))
    assert exc.value.code == 2
    assert "profile" in capsys.readouterr().err


def test_ddsc_classify_json(tiny_chat_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(
        [
            "ddsc",
            "classify",
            "--data",
            str(FIXTURE),
            "--model",
            str(tiny_chat_dir),
            "--layers",
            "0,2,3,4",
            "--limit",
            "2",
            "--json",
            "--device",
            "cpu",
        ]
    )
    result = json.loads(capsys.readouterr().out)
    assert result["n"] == 2
    assert result["layers"] == [0, 2, 3, 4]
    assert result["contrast"] == "ddsc"
    assert result["model"] == str(tiny_chat_dir)
    for key in ("defense_rate_plain", "defense_rate_ddsc"):
        assert 0.0 <= result[key] <= 1.0
    defended = [item["defended_plain"] for item in result["items"]]
    assert result["defense_rate_plain"] == pytest.approx(sum(defended) / 2)


@pytest.mark.slow
def test_real_model_safeedit_and_classify(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = FIXTURE  # three of the shortest real SafeEdit items
    out = tmp_path / "run"
    main(
        [
            "eval",
            "safeedit",
            "--data",
            str(data),
            "--out",
            str(out),
            "--limit",
            "2",
            "--max-new-tokens",
            "16",
            "--dinm-steps",
            "3",
        ]
    )
    report = json.loads((out / "report.json").read_text())
    assert list(report["methods"]) == list(METHODS)
    for result in report["methods"].values():
        assert result["n_instances"] == 2
        assert 0.0 <= result["scores"]["DS"] <= 100.0
        assert result["fluency"] > 0.0  # real text, not one repeated token
    records = read_jsonl(out / "generations.jsonl")
    assert all(0 <= int(r["toxic_layer"]) < 30 for r in records if r["method"] != "vanilla")  # type: ignore[call-overload]
    for record in records:
        edit = record["edit"]
        if isinstance(edit, dict):  # DINM lowered its loss on the real model
            assert edit["final_loss"] < edit["steps"][0]["loss"]
    capsys.readouterr()
    layers = "0,2,26,29,30"  # a MODE-2 list keeps the CPU time down; MODE-1 is tested on tiny
    main(["ddsc", "classify", "--data", str(data), "--limit", "3", "--layers", layers, "--json"])
    result = json.loads(capsys.readouterr().out)
    assert result["n"] == 3
    assert result["layers"] == [0, 2, 26, 29, 30]
    assert all(item["safe"]["n_tokens"] > 0 for item in result["items"])


def test_dynamic_toxic_layer_is_located_once_per_instance(
    tiny_chat_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from detox_core.data.safeedit import read_safeedit
    from detox_core.models import ModelOptions, load_model
    from detox_eval.safeedit import runner
    from detox_eval.safeedit.runner import SafeEditSettings, run_safeedit

    calls: list[int] = []
    real = runner.locate_toxic_layer

    def counting(*args: object, **kwargs: object) -> object:
        calls.append(1)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(runner, "locate_toxic_layer", counting)
    settings = SafeEditSettings(model=str(tiny_chat_dir))
    settings = settings.model_copy(
        update={"method": settings.method.with_decode(max_new_tokens=2, max_input_tokens=48)}
    )
    lm = load_model(str(tiny_chat_dir), ModelOptions(device="cpu"))
    items = read_safeedit(FIXTURE, limit=2)
    records = run_safeedit(lm, items, ["vanilla", "ddsc", "dola"], settings, tmp_path, False)
    assert len(records) == 6 and len(calls) == 2  # one location per instance, not per method
    by_item = {(r.instance_id, r.method): r.toxic_layer for r in records}
    for item in items:
        assert by_item[(item.id, "ddsc")] == by_item[(item.id, "dola")] is not None
        assert by_item[(item.id, "vanilla")] is None
