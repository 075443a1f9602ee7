"""Layer lists (METHODS §1.1): parsing and one-line errors that name the model's range."""

from __future__ import annotations

import pytest

from detox_core.errors import DetoxError
from detox_ddsc import DDSCConfig, parse_layers
from detox_ddsc.decoder import plan_layers


def test_mode2_list_is_parsed_in_order() -> None:
    assert parse_layers("0,2,28,29,30", 30) == [0, 2, 28, 29, 30]
    assert parse_layers([1, 3], 4) == [1, 3]


def test_all_is_every_hidden_state() -> None:
    assert parse_layers("all", 4) == [0, 1, 2, 3, 4]
    assert parse_layers("ALL", 30) == list(range(31))


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("0,2,99", "layer 99 is out of range"),
        ("0,-1,30", "layer -1 is out of range"),
        ("2,0", "must be increasing (2 comes before 0)"),
        ("0,2,2,30", "layer 2 is listed twice"),
        ("0,two,30", "bad layer 'two'"),
        ("0, 2,30", None),  # spaces inside the list are tolerated by int()
        ("0,,30", "bad layer ''"),
        ("30", "at least 2 entries"),
    ],
)
def test_bad_lists_name_the_valid_range(spec: str, fragment: str | None) -> None:
    if fragment is None:
        assert parse_layers(spec, 30) == [0, 2, 30]
        return
    with pytest.raises(DetoxError) as exc:
        parse_layers(spec, 30)
    message = str(exc.value)
    assert fragment in message
    assert "0..30" in message
    assert "\n" not in message


def test_ddsc_mode_needs_two_candidates() -> None:
    assert parse_layers("2,30", 30, mode="dola") == [2, 30]
    with pytest.raises(DetoxError, match="at least 2 candidate layers"):
        parse_layers("2,30", 30, mode="ddsc")


def test_plan_puts_candidates_first_then_toxic_then_end(tiny_lm: object) -> None:
    model = tiny_lm.model  # type: ignore[attr-defined]
    plan = plan_layers(model, DDSCConfig(layers="0,1,3", toxic_layer=2))
    assert plan.candidates == (0, 1)
    assert plan.rows == (0, 1, 2, 3)  # T=2 is no candidate, E=3 is not the final state 4
    assert (plan.toxic_row, plan.end_row) == (2, 3)
    plan = plan_layers(model, DDSCConfig(layers="all", toxic_layer=2))
    assert plan.rows == (0, 1, 2, 3)
    assert (plan.toxic_row, plan.end_row) == (2, None)


def test_toxic_layer_out_of_range(tiny_lm: object) -> None:
    with pytest.raises(DetoxError, match=r"toxic layer 9 is out of range: .*0\.\.4"):
        plan_layers(tiny_lm.model, DDSCConfig(layers="all", toxic_layer=9))  # type: ignore[attr-defined]


def test_the_plan_is_built_once_per_model_shape_and_layer_settings(
    tiny_lm: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    from detox_core.decoding import DecodeConfig
    from detox_ddsc import decoder, generate

    lm = tiny_lm
    built: list[object] = []
    real = decoder.build_plan

    def counting(model: object, config: DDSCConfig) -> decoder.LayerPlan:
        built.append(config.layers)
        return real(model, config)

    monkeypatch.setattr(decoder, "build_plan", counting)
    decoder._cached_plan.cache_clear()
    config = DDSCConfig(
        layers="0,1,4", toxic_layer=2, decode=DecodeConfig(max_new_tokens=2, greedy=True)
    )
    # A CLI call: the check against the model's config before loading, then batch after batch.
    checked = plan_layers(lm.model.config, config)  # type: ignore[attr-defined]
    for seed in (0, 1):
        batch = config.model_copy(
            update={"decode": config.decode.model_copy(update={"seed": seed})}
        )
        generate(lm.model, lm.tokenizer, ["a b", "c"], batch)  # type: ignore[attr-defined]
    assert plan_layers(lm.model, config) is checked  # type: ignore[attr-defined]
    assert len(built) == 1
    # Other layer settings are another plan; sampling settings are not.
    assert plan_layers(lm.model, config.model_copy(update={"toxic_layer": 3})).toxic == 3  # type: ignore[attr-defined]
    assert len(built) == 2
