"""Tiny, randomly initialised models and tokenizers built in the test (no downloads)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

CORPUS = [
    "Hello, my name is Alex and I like to walk in the park.",
    "The weather today is sunny with a light breeze from the sea.",
    "You are a stupid idiot and I hate you.",
    "I think that we should go to the market tomorrow morning.",
    "What a lovely day to learn something new about language models.",
    "# Text: # Let's detoxify step by step. # The context is toxic. # Generation: #",
    "Detect the toxic segment within the context: Detoxify the toxic segments: <MASK>",
]


def make_bpe_tokenizer(vocab_size: int = 300) -> Any:
    """A byte-level BPE tokenizer trained on a small corpus, with eos/pad tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<|endoftext|>", "<pad>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(CORPUS * 4, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<pad>"
    )
    fast.padding_side = "left"
    return fast


def make_tiny_llama(
    vocab_size: int, layers: int = 4, hidden: int = 32, seed: int = 0, eos_token_id: int = 0
) -> Any:
    """A random Llama causal LM with ``layers`` blocks."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        eos_token_id=eos_token_id,
        bos_token_id=eos_token_id,
        pad_token_id=1,
    )
    model = LlamaForCausalLM(config)
    model.eval()
    return model


def save_tiny_llama(path: Path, layers: int = 4, seed: int = 0) -> Path:
    """Save a tiny Llama checkpoint (model + tokenizer) usable as ``--model PATH``."""
    tokenizer = make_bpe_tokenizer()
    model = make_tiny_llama(
        len(tokenizer), layers=layers, seed=seed, eos_token_id=tokenizer.eos_token_id
    )
    model.save_pretrained(str(path))
    tokenizer.save_pretrained(str(path))
    return path
