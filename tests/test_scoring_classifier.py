"""The ``classifier:PATH[#LABEL]`` scorer against tiny random BERT checkpoints built here."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from detox_core.errors import DetoxError
from detox_core.scoring import load_scorer
from detox_core.scoring.classifier import ClassifierScorer, parse_classifier_spec

WORDS = [
    "you",
    "are",
    "a",
    "the",
    "idiot",
    "lovely",
    "day",
    "what",
    "stupid",
    "nice",
    "go",
    "away",
    "fool",
    "i",
    "hate",
    "love",
    "this",
]
MAX_POSITIONS = 16


def make_wordpiece_tokenizer() -> Any:
    """A lower-casing WordPiece tokenizer over WORDS with BERT's special tokens."""
    import transformers
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

    lib: Any = transformers

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab = {token: i for i, token in enumerate(specials + WORDS)}
    tok = Tokenizer(models.WordPiece(vocab=vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    return lib.PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )


def save_tiny_classifier(
    path: Path, labels: list[str], problem_type: str | None = None, seed: int = 0
) -> Path:
    """A random 1-layer BERT classifier with ``labels`` and only 16 positions."""
    import transformers

    lib: Any = transformers
    torch.manual_seed(seed)
    tokenizer = make_wordpiece_tokenizer()
    config = lib.BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=MAX_POSITIONS,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={name: i for i, name in enumerate(labels)},
        problem_type=problem_type,
    )
    model = lib.BertForSequenceClassification(config).eval()
    model.save_pretrained(str(path))
    tokenizer.save_pretrained(str(path))
    return path


@pytest.fixture(scope="module")
def three_label_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_classifier(tmp_path_factory.mktemp("clf3"), ["neutral", "insult", "Toxic"])


def direct_logits(path: Path, text: str) -> torch.Tensor:
    """Logits of one text computed with plain transformers calls."""
    import transformers

    lib: Any = transformers
    tok = lib.AutoTokenizer.from_pretrained(str(path))
    model = lib.AutoModelForSequenceClassification.from_pretrained(str(path)).eval()
    with torch.no_grad():
        logits: torch.Tensor = model(**tok(text, return_tensors="pt")).logits[0]
    return logits


TEXTS = ["you are a stupid idiot", "what a lovely day", "go away", "i hate this fool"]


def test_default_label_by_name_and_softmax(three_label_dir: Path) -> None:
    scorer = ClassifierScorer(three_label_dir, device="cpu")
    assert scorer.label_index == 2
    assert not scorer.sigmoid
    expected = torch.softmax(direct_logits(three_label_dir, TEXTS[0]), -1)[2].item()
    assert scorer.score([TEXTS[0]])[0] == pytest.approx(expected, abs=1e-5)
    assert scorer.name == f"classifier:{three_label_dir.name}#Toxic"
    assert len(scorer.version) == 12


def test_label_by_name_or_index(three_label_dir: Path) -> None:
    by_name = ClassifierScorer(three_label_dir, "INSULT", device="cpu")
    by_index = ClassifierScorer(three_label_dir, "1", device="cpu")
    assert by_name.label_index == by_index.label_index == 1
    probs = torch.softmax(direct_logits(three_label_dir, TEXTS[1]), -1)
    assert by_index.score([TEXTS[1]])[0] == pytest.approx(probs[1].item(), abs=1e-5)
    first = ClassifierScorer(three_label_dir, "0", device="cpu").score([TEXTS[1]])[0]
    assert first == pytest.approx(probs[0].item(), abs=1e-5)
    with pytest.raises(DetoxError, match="no label named"):
        ClassifierScorer(three_label_dir, "spam", device="cpu")
    with pytest.raises(DetoxError, match="out of range"):
        ClassifierScorer(three_label_dir, "3", device="cpu")


def test_batch_equals_one_by_one(three_label_dir: Path) -> None:
    scorer = ClassifierScorer(three_label_dir, device="cpu", batch_size=3)
    batched = scorer.score(TEXTS)
    singles = [scorer.score([t])[0] for t in TEXTS]
    assert batched == pytest.approx(singles, abs=1e-5)
    assert len(set(batched)) > 1


def test_long_text_is_truncated_to_the_model_length(three_label_dir: Path) -> None:
    scorer = ClassifierScorer(three_label_dir, device="cpu")
    assert scorer.max_length == MAX_POSITIONS  # the tokenizer itself sets no limit here
    words = (WORDS * 10)[:100]
    long_score = scorer.score([" ".join(words)])[0]
    # [CLS] + 14 words + [SEP] fill the 16 positions: the rest is cut.
    prefix_score = scorer.score([" ".join(words[: MAX_POSITIONS - 2])])[0]
    assert long_score == pytest.approx(prefix_score, abs=1e-5)


def test_two_label_and_multi_label_defaults(tmp_path: Path) -> None:
    two = save_tiny_classifier(tmp_path / "two", ["LABEL_0", "LABEL_1"])
    scorer = ClassifierScorer(two, device="cpu")
    assert (scorer.label_index, scorer.sigmoid) == (1, False)
    plain = save_tiny_classifier(tmp_path / "plain", ["safe", "bad"])
    assert ClassifierScorer(plain, device="cpu").label_index == 1
    multi = save_tiny_classifier(
        tmp_path / "multi", ["obscene", "toxicity", "threat"], "multi_label_classification"
    )
    scorer = ClassifierScorer(multi, device="cpu")
    assert (scorer.label_index, scorer.sigmoid) == (1, True)
    expected = torch.sigmoid(direct_logits(multi, TEXTS[2])[1]).item()
    assert scorer.score([TEXTS[2]])[0] == pytest.approx(expected, abs=1e-5)
    unclear = save_tiny_classifier(tmp_path / "unclear", ["a", "b", "c"])
    with pytest.raises(DetoxError, match="which of the 3 labels"):
        ClassifierScorer(unclear, device="cpu")


def test_version_follows_the_checkpoint(tmp_path: Path, three_label_dir: Path) -> None:
    other = save_tiny_classifier(tmp_path / "other", ["neutral", "insult", "Toxic"], seed=1)
    a = ClassifierScorer(three_label_dir, device="cpu")
    b = ClassifierScorer(other, device="cpu")
    assert a.version == ClassifierScorer(three_label_dir, device="cpu").version
    assert a.version != b.version


def test_registry_spec(three_label_dir: Path, tmp_path: Path) -> None:
    assert parse_classifier_spec(f"classifier:{three_label_dir}#insult") == (
        three_label_dir,
        "insult",
    )
    scorer = load_scorer(f"classifier:{three_label_dir}#insult", device="cpu")
    assert scorer.name.endswith("#insult")
    assert scorer.score(TEXTS[:2]) == pytest.approx(
        ClassifierScorer(three_label_dir, "1", device="cpu").score(TEXTS[:2])
    )
    with pytest.raises(DetoxError, match="not found"):
        load_scorer(f"classifier:{tmp_path / 'nothing'}")
    with pytest.raises(DetoxError, match="unknown scorer"):
        load_scorer("magic")
