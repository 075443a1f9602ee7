"""``detox generate``: plain decoding, the baseline every method is compared against."""

from __future__ import annotations

from detox_cli.common import prompts_from_options, sample_prompts
from detox_cli.options import (
    BatchOpt,
    ChatOpt,
    DeviceOpt,
    DtypeOpt,
    GreedyOpt,
    LimitOpt,
    MaxNewOpt,
    ModelOpt,
    OutOpt,
    PromptOpt,
    PromptsOpt,
    RepPenOpt,
    SamplesOpt,
    SeedOpt,
    TempOpt,
    TopPOpt,
    decode_config,
)


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
    from detox_core.models import ModelOptions, load_model
    from detox_eval.methods import MethodSettings, batch_decoder, get_method

    items = prompts_from_options(prompt, prompts, limit)
    settings = MethodSettings(
        decode=decode_config(
            max_new_tokens=max_new_tokens,
            greedy=greedy,
            top_p=top_p,
            temperature=temperature,
            seed=seed,
            chat=chat,
            repetition_penalty=repetition_penalty,
        )
    )
    lm = load_model(model, ModelOptions(device=device, dtype=dtype))
    sample_prompts(
        items,
        batch_decoder(get_method("vanilla"), lm, settings),
        samples=samples,
        batch_size=batch_size,
        seed=seed,
        method="vanilla",
        model_name=model,
        out=out,
    )
