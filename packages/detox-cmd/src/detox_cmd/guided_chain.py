"""Template-guided reasoning for CMD chain inference: the model writes only the chain's slots.

A CMD chain (``chain.TOXIC_TEMPLATE`` / ``NONTOXIC_TEMPLATE``) is fixed text around three
slots: the masked prompt, its rephrasing and the generation. In *free* inference the model
writes the fixed text too, and a small model sometimes does not: it continues the prompt instead
of opening the chain, or skips or garbles a label, so the chain has no ``# Generation:`` marker.
Guided inference writes the fixed text itself and asks the model only for what it must decide:

1. the label: after ``# Let's detoxify step by step. # The context is`` the model chooses between
   the first tokens of `` toxic.`` and `` non-toxic.`` (sampled from its own probabilities of the
   two under the same sampling settings; greedy takes the likelier);
2. each slot of a toxic chain (masked, rephrased), decoded until the model closes it with ``#``
   (at most ``slot_tokens`` tokens), followed by the template's next label.

The text is the same as the training chains', so the ids of a guided context are those the
model was trained on. A slot the model does not close within its budget is cut there and the
chain is flagged (``closed`` False): guiding repairs labels, never a slot.
"""

from __future__ import annotations

import string
from typing import Any

import torch
from pydantic import BaseModel

from detox_cmd.chain import NONTOXIC_TEMPLATE, TOXIC_TEMPLATE
from detox_cmd.training.data import SplitInputTokenizer
from detox_core.decoding import DecodeConfig, decode
from detox_core.errors import DetoxError

# Every slot (and the generation) ends at this character; the template writes it as " #".
SLOT_END = "#"
# Seed offsets of the guided phases (the generation phase uses 1 << 32), so draws are unrelated.
LABEL_SEED_OFFSET = 2 << 32
SLOT_SEED_OFFSET = 3 << 32


def _literals_after_input(template: str) -> list[str]:
    """The fixed text of ``template`` between its slots, after the input (``# Text: {prompt} ``),
    each without the space that the next slot or the input already carries."""
    literals = [literal for literal, _, _, _ in string.Formatter().parse(template)]
    # literals[0] is "# Text: "; literals[1] starts with the space that ends the input.
    return [literals[1][1:].rstrip(" "), *(lit.rstrip(" ") for lit in literals[2:-1])]


class ChainLabels(BaseModel):
    """The fixed text of both templates, split where the model has to decide something."""

    opening: str  # shared by both templates, up to the label
    toxic: list[str]  # the toxic label with the text up to the masked slot, then the next labels
    clean: str  # the non-toxic label up to ``# Generation:``

    @classmethod
    def from_templates(cls) -> ChainLabels:
        """Read them off ``TOXIC_TEMPLATE`` and ``NONTOXIC_TEMPLATE``."""
        toxic = _literals_after_input(TOXIC_TEMPLATE)
        (clean,) = _literals_after_input(NONTOXIC_TEMPLATE)
        shared = 0
        while toxic[0][shared] == clean[shared]:
            shared += 1
        opening = toxic[0][:shared].rstrip(" ")
        return cls(
            opening=opening,
            toxic=[toxic[0][len(opening) :], *toxic[1:]],
            clean=clean[len(opening) :],
        )


CHAIN_LABELS = ChainLabels.from_templates()


class _ChoiceScorer:
    """Plain decoding restricted to a few token ids (every other score is -inf)."""

    output_hidden_states = False

    def __init__(self, allowed: list[int]) -> None:
        self.allowed = allowed

    def __call__(self, logits: torch.Tensor, outputs: Any) -> torch.Tensor:
        scores = torch.full_like(logits, float("-inf"), dtype=torch.float32)
        scores[:, self.allowed] = logits[:, self.allowed].float()
        return scores


def _first_label_token(tokenizer: Any, text: str, context: str, label: str) -> int:
    """The id of ``label``'s first token right after ``context`` (which starts with the input
    ``text``), tokenised as the chain is in training."""
    split = SplitInputTokenizer(tokenizer, {context: text, context + label: text})
    head = split.encode_ids(context)
    whole = split.encode_ids(context + label)
    if whole[: len(head)] != head or len(whole) <= len(head):
        raise DetoxError(
            "this tokenizer does not split the CMD chain's labels at word boundaries",
            "use the free chain (--free-chain)",
        )
    return whole[len(head)]


def guided_reasoning(
    model: Any,
    tokenizer: Any,
    inputs: list[str],
    config: DecodeConfig,
    slot_tokens: int,
    close_slots: bool = True,
) -> tuple[list[str], list[bool]]:
    """The reasoning part of each chain, up to and including ``# Generation:``, and whether the
    model closed every slot of it within ``slot_tokens`` tokens. ``close_slots`` bans
    end-of-sequence inside a slot (it ends at ``#`` or its budget)."""
    labels = CHAIN_LABELS
    contexts = [text + labels.opening for text in inputs]
    split = SplitInputTokenizer(tokenizer, dict(zip(contexts, inputs, strict=True)))
    toxic_id = _first_label_token(tokenizer, inputs[0], contexts[0], labels.toxic[0])
    clean_id = _first_label_token(tokenizer, inputs[0], contexts[0], labels.clean)
    if toxic_id == clean_id:
        raise DetoxError("the CMD chain's two labels start with the same token", "use --free-chain")
    choice = config.model_copy(
        update={"max_new_tokens": 1, "stop": (), "seed": config.seed + LABEL_SEED_OFFSET}
    )
    chosen = decode(model, split, contexts, choice, _ChoiceScorer([toxic_id, clean_id]))
    toxic_rows = [i for i, ids in enumerate(chosen.token_ids) if ids[:1] == [toxic_id]]
    closed = [True] * len(inputs)
    for i in set(range(len(inputs))) - set(toxic_rows):
        contexts[i] += labels.clean
    for row in toxic_rows:
        contexts[row] += labels.toxic[0]
    for slot, next_label in enumerate(labels.toxic[1:]):
        if not toxic_rows:
            break
        slot_config = config.model_copy(
            update={
                "max_new_tokens": slot_tokens,
                "min_new_tokens": slot_tokens if close_slots else 0,
                "stop": (SLOT_END,),
                "seed": config.seed + SLOT_SEED_OFFSET + slot,
                "sync_every": min(config.sync_every, 8),
            }
        )
        rows = [contexts[i] for i in toxic_rows]
        split = SplitInputTokenizer(tokenizer, {contexts[i]: inputs[i] for i in toxic_rows})
        out = decode(model, split, rows, slot_config)
        for i, text, reason in zip(toxic_rows, out.texts, out.stopped, strict=True):
            closed[i] = closed[i] and reason == "stop"
            contexts[i] += text.rstrip(" ") + next_label
    return [c[len(text) :] for c, text in zip(contexts, inputs, strict=True)], closed
