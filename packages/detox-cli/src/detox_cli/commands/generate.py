"""``detox generate``: plain decoding, the baseline every method is compared against."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from detox_cli.common import print_records, prompts_from_options
from detox_core.decoding import DecodeConfig, decode
from detox_core.generation import run_sampling
from detox_core.io import JsonlWriter
from detox_core.models import ModelOptions, load_model
from detox_core.records import generation_key

ModelOpt = Annotated[
    str,
    typer.Option(
        "--model", "-m", help="Model spec: default, a checkpoint dir, a .gguf file or a hub id."
    ),
]
PromptOpt = Annotated[list[str] | None, typer.Option("--prompt", help="A prompt (repeatable).")]
PromptsOpt = Annotated[
    Path | None,
    typer.Option("--prompts", help="Prompts file: RTP/detox JSONL or one prompt a line."),
]
OutOpt = Annotated[
    Path | None, typer.Option("--out", help="Write generations to this JSONL (resumes).")
]
SamplesOpt = Annotated[int, typer.Option("--samples", min=1, help="Samples per prompt.")]
MaxNewOpt = Annotated[int, typer.Option("--max-new-tokens", min=1)]
TopPOpt = Annotated[float, typer.Option("--top-p", min=0.0, max=1.0)]
TempOpt = Annotated[float, typer.Option("--temperature", min=0.0)]
GreedyOpt = Annotated[bool, typer.Option("--greedy", help="Greedy decoding instead of sampling.")]
SeedOpt = Annotated[int, typer.Option("--seed")]
BatchOpt = Annotated[int, typer.Option("--batch-size", min=1)]
DeviceOpt = Annotated[str, typer.Option("--device", help="auto, cpu, cuda, cuda:N.")]
DtypeOpt = Annotated[str, typer.Option("--dtype", help="auto, float32, bfloat16, float16.")]
LimitOpt = Annotated[
    int | None, typer.Option("--limit", min=1, help="Use only the first N prompts.")
]
ChatOpt = Annotated[bool, typer.Option("--chat", help="Wrap prompts in the model's chat template.")]
RepPenOpt = Annotated[float, typer.Option("--repetition-penalty", min=0.0)]


def generate(
    model: ModelOpt = "default",
    prompt: PromptOpt = None,
    prompts: PromptsOpt = None,
    out: OutOpt = None,
    samples: SamplesOpt = 1,
    max_new_tokens: MaxNewOpt = 20,
    top_p: TopPOpt = 0.9,
    temperature: TempOpt = 1.0,
    greedy: GreedyOpt = False,
    seed: SeedOpt = 0,
    batch_size: BatchOpt = 8,
    limit: LimitOpt = None,
    chat: ChatOpt = False,
    repetition_penalty: RepPenOpt = 1.0,
    device: DeviceOpt = "auto",
    dtype: DtypeOpt = "auto",
) -> None:
    """Continue prompts with plain decoding (the baseline)."""
    items = prompts_from_options(prompt, prompts, limit)
    config = DecodeConfig(
        max_new_tokens=max_new_tokens,
        greedy=greedy,
        top_p=top_p,
        temperature=max(temperature, 1e-5),
        seed=seed,
        chat=chat,
        repetition_penalty=repetition_penalty,
    )
    lm = load_model(model, ModelOptions(device=device, dtype=dtype))

    def decode_batch(texts: list[str], batch_seed: int) -> tuple[list[str], list[dict[str, Any]]]:
        result = decode(
            lm.model, lm.tokenizer, texts, config.model_copy(update={"seed": batch_seed})
        )
        return result.texts, [{"stopped": s} for s in result.stopped]

    writer = JsonlWriter(out, key=generation_key) if out is not None else None
    try:
        made = run_sampling(
            items,
            decode_batch,
            samples=samples,
            batch_size=batch_size,
            seed=seed,
            method="vanilla",
            model_name=model,
            writer=writer,
        )
    finally:
        if writer is not None:
            writer.close()
    if out is None:
        print_records(made)
    else:
        Console(stderr=True).print(f"wrote {len(made)} generations to {out}")
