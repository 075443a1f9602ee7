"""DDSC decoder settings (METHODS §1.3), one pydantic model."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from detox_core.decoding import DecodeConfig
from detox_ddsc.types import Divergence as Divergence
from detox_ddsc.types import Mode as Mode
from detox_ddsc.types import Preset as Preset
from detox_ddsc.types import Selection as Selection


class DDSCConfig(BaseModel):
    """Everything that defines one DDSC (or DoLa) decoding run.

    - ``layers``: hidden-state indices, the last one the end layer E, the others the candidate
      layers C (a spec such as ``"0,2,28,29,30"``, ``"all"`` for MODE-1, or a list of ints);
      validated against the model by ``detox_ddsc.layers.parse_layers``.
    - ``toxic_layer`` (T, a hidden-state index) or ``profile`` (a JSON file written by
      ``detox ddsc locate``); with neither, ``toxic_layer_from_end`` k gives T = N - k (N the
      final hidden state; measured, not a preset's choice), and without it the shipped default
      profile is used when it fits the model. Ignored in ``dola`` mode.
    - ``alpha``: the adaptive plausibility constraint: the head is ``{x : p_E(x) >= alpha * max
      p_E}``.
    - ``divergence``: ``reference`` (JSD' of DoLa/DDSC code, averaged over the vocabulary) or
      ``jsd`` (the true Jensen-Shannon divergence).
    - ``selection``: ``per-row`` (H and S chosen for each row) or ``batch-mean`` (the reference:
      divergences averaged over the batch, then one argmax for every row).
    - ``early_norm``: pass early layers through the model's final norm before ``lm_head`` (off in
      the reference code and in DoLa).
    - ``mode``: ``ddsc`` (contrast with ``z_H + z_T - z_S``) or ``dola`` (contrast with ``z_H``).
    - ``contrast_weight`` w: the score is ``log p_E - w * log q_B`` on the head; ``w = 1`` is the
      reference formula, ``w = 0`` is plain decoding restricted to the head.
    - ``contrast_temperature`` tau: the score is divided by tau before the usual logits processors
      and temperature/top-p sampling (tau > 1 flattens the contrast, tau < 1 sharpens it).
    - ``safety_only``: contrast with ``z_T - z_S`` only, without the hallucination layer H
      (``ddsc`` mode): the toxic direction without DoLa's factuality contrast, which is what
      sharpens the distribution; off in the reference.
    - ``penalty_only``: a one-sided contrast: ``score = log p_E - w * max(0, log q_B - log(1/n))``
      on the head of n tokens, so tokens the contrast favours more than uniform are pushed down
      and no token is lifted above its plain score (the two-sided reference both penalises and
      boosts, which concentrates the mass); off in the reference.
    - ``boost_only``: the other side: ``score = log p_E + w * max(0, log(1/n) - log q_B)``, so
      only the tokens the contrast disfavours (those the safe layer prefers) are lifted and none
      is pushed down; off in the reference, and not together with ``penalty_only``.
    - ``contrast_gate`` g: contrast only the rows whose toxic and safe layers disagree: where the
      divergence of T from S exceeds g (``V * JSD'`` under the reference divergence, whose JSD' is
      a mean over the V vocabulary entries; the JSD under ``jsd``); the other rows of the step are
      scored ``log p_E``, plain decoding (``ddsc`` mode only). 0 (the reference) contrasts every
      step.
    - ``decode``: greedy or sampling, temperature, top-p, repetition penalty, seed, max new
      tokens, stop strings, chat template (shared with plain decoding).
    """

    model_config = ConfigDict(frozen=True)

    layers: str | list[int] = "all"
    toxic_layer: int | None = Field(None, ge=0)
    profile: str | None = None
    toxic_layer_from_end: int | None = Field(None, ge=0)
    alpha: float = Field(0.1, gt=0, le=1)
    divergence: Divergence = "reference"
    selection: Selection = "per-row"
    early_norm: bool = False
    mode: Mode = "ddsc"
    contrast_weight: float = Field(1.0, ge=0)
    contrast_temperature: float = Field(1.0, gt=0)
    safety_only: bool = False
    penalty_only: bool = False
    boost_only: bool = False
    contrast_gate: float = Field(0.0, ge=0)
    decode: DecodeConfig = Field(default_factory=DecodeConfig)

    @model_validator(mode="after")
    def _one_side(self) -> DDSCConfig:
        if self.penalty_only and self.boost_only:
            raise ValueError("penalty_only and boost_only exclude each other: choose one side")
        return self

    @property
    def method(self) -> str:
        """The method name written into generation records (``ddsc`` or ``dola``)."""
        return self.mode


# Named settings of the contrast (METHODS §1.3 and the frontier measurements of issue 12).
# faithful: the reference formula (greedy reproductions, classification).
# diverse: a small contrast weight on a wider APC head; on two sets of 40 toxic dev prompts
# (10 samples, top-p 0.9, tox-minilm) it kept 0.86x of plain sampling's distinct-2 at 0.80x of
# its EMT and 0.80x of its perplexity with MODE-2 layers (0.85x / 0.67x / 0.86x with the default
# MODE-1 layers), where the faithful setting keeps 0.14-0.2x of distinct-2. On this model much of
# that cut is degenerate text (digit runs, newline fragments: 32-37% of the samples), and the
# layers that keep the samples readable do not cut EMT on held-out prompts (README, "The toxic
# layer").
DDSC_PRESETS: dict[str, dict[str, float]] = {
    "faithful": {"alpha": 0.1, "contrast_weight": 1.0, "contrast_temperature": 1.0},
    "diverse": {"alpha": 0.05, "contrast_weight": 0.05, "contrast_temperature": 1.0},
}


def preset_settings(preset: Preset, greedy: bool) -> dict[str, float]:
    """The contrast settings of ``preset``; ``auto`` is faithful when greedy, diverse else."""
    if preset == "auto":
        preset = "faithful" if greedy else "diverse"
    return dict(DDSC_PRESETS[preset])
