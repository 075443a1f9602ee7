"""DDSC / DoLa layer-contrast decoding for ``model.generate`` (detox-ddsc, offline).

Put this ``custom_generate/`` folder in a model repository (or any local folder) and call::

    model.generate(
        **inputs,
        custom_generate="OWNER/REPO",  # or a local folder holding custom_generate/
        trust_remote_code=True,
        ddsc_layers=[0, 2, 28, 29, 30],
        do_sample=True,
        top_p=0.9,
    )

The ``ddsc_*`` arguments are those of ``detox_ddsc.custom_generate``; everything else is
transformers' usual ``generate``, which this function runs with the detox-ddsc decoding loop.
"""

from typing import Any

from transformers import GenerationMixin


def generate(model: Any, *args: Any, **kwargs: Any) -> Any:
    """transformers' ``generate`` with ``detox_ddsc.custom_generate`` as the decoding loop."""
    from detox_ddsc import custom_generate

    kwargs["custom_generate"] = custom_generate
    return GenerationMixin.generate(model, *args, **kwargs)
