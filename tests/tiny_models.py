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


TINY_BERT_WORDS = [
    "you", "are", "a", "an", "stupid", "idiot", "and", "i", "hate", "the", "weather", "is",
    "nice", "today", "what", "lovely", "day", "park", "walk", "we", "go", "to", "market",
    "damn", "fool", "people", "who", "think", "that", "this", "it", "so", "very", "good",
    ".", ",", "!", "?", "'", "-", "##s", "##ing", "##ed", "##ly",
]  # fmt: skip


def make_wordpiece_tokenizer(extra_words: list[str] | None = None) -> Any:
    """A BERT WordPiece tokenizer (uncased) over a small vocabulary: a few words, letters and
    ``##`` letter pieces, so any lowercase ASCII word can be split."""
    from transformers import BertTokenizer

    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)] + [str(d) for d in range(10)]
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    for piece in TINY_BERT_WORDS + (extra_words or []) + letters + [f"##{c}" for c in letters]:
        if piece not in vocab:
            vocab.append(piece)
    return BertTokenizer(vocab={piece: i for i, piece in enumerate(vocab)})


def save_tiny_bert(path: Path, hidden: int = 32, layers: int = 2, seed: int = 0) -> Path:
    """Save a tiny random BERT encoder (``AutoModel``) with its WordPiece tokenizer."""
    from transformers import BertConfig, BertModel

    tokenizer = make_wordpiece_tokenizer()
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        intermediate_size=2 * hidden,
        max_position_embeddings=128,
    )
    BertModel(config).save_pretrained(str(path))
    tokenizer.save_pretrained(str(path))
    return path


def write_tiny_toxic_spans_csv(path: Path, n_texts: int = 40, seed: int = 0) -> Path:
    """A SemEval-format CSV (``spans``, ``text``) of random sentences over the tiny BERT words;
    the toxic words (stupid, idiot, fool, damn, hate) are the gold spans."""
    import csv
    import json
    import random

    toxic = ["stupid", "idiot", "fool", "damn", "hate"]
    neutral = ["you", "are", "a", "the", "weather", "is", "nice", "today", "we", "go", "to",
               "park", "market", "people", "who", "think", "that", "this", "so", "very", "good"]  # fmt: skip
    rng = random.Random(seed)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["spans", "text"])
        for i in range(n_texts):
            words = [rng.choice(neutral) for _ in range(rng.randint(4, 12))]
            for _ in range(i % 3):  # a third of the texts have no toxic word
                words.insert(rng.randint(0, len(words)), rng.choice(toxic))
            text = ""
            spans: list[int] = []
            for word in words:
                if text:
                    text += " "
                if word in toxic:
                    spans += range(len(text), len(text) + len(word))
                text += word
            writer.writerow([json.dumps(spans), text + rng.choice([".", "!", ""])])
    return path
