"""The Segment-CNN heads and loss against direct computations."""

from __future__ import annotations

import math

import torch
from transformers import BertConfig, BertModel

from detox_cmd.spans.model import (
    SegmentCNN,
    SegmentCNNConfig,
    SegmentCNNOutput,
    masked_mean,
    pair_convolution,
    segment_cnn_loss,
)


def _tiny_model(seed: int = 0) -> SegmentCNN:
    torch.manual_seed(seed)
    encoder = BertModel(
        BertConfig(
            vocab_size=50,
            hidden_size=16,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=32,
            max_position_embeddings=32,
        )
    )
    return SegmentCNN(encoder, SegmentCNNConfig(hidden_size=16, dropout=0.0)).eval()


def test_pair_convolution_matches_a_loop() -> None:
    torch.manual_seed(1)
    hidden = torch.randn(2, 5, 3)
    w0, w1, b = torch.tensor(0.7), torch.tensor(-1.3), torch.tensor(0.2)
    out = pair_convolution(hidden, w0, w1, b)
    assert out.shape == (2, 4, 3)
    for batch in range(2):
        for j in range(4):
            for d in range(3):
                expected = math.tanh(
                    0.7 * hidden[batch, j, d].item() - 1.3 * hidden[batch, j + 1, d].item() + 0.2
                )
                assert abs(out[batch, j, d].item() - expected) < 1e-5


def test_pair_convolution_equals_a_one_channel_conv1d() -> None:
    torch.manual_seed(2)
    hidden = torch.randn(3, 6, 4)
    conv = torch.nn.Conv1d(1, 1, kernel_size=2)
    assert conv.bias is not None
    w0, w1 = conv.weight[0, 0, 0], conv.weight[0, 0, 1]
    ours = pair_convolution(hidden, w0, w1, conv.bias[0])
    # Conv1d over the sequence axis, each hidden dimension as a separate 1-channel signal.
    signal = hidden.permute(0, 2, 1).reshape(-1, 1, 6)
    theirs = torch.tanh(conv(signal)).reshape(3, 4, 5).permute(0, 2, 1)
    assert torch.allclose(ours, theirs, atol=1e-5)


def test_forward_shapes_and_heads_use_the_conv() -> None:
    model = _tiny_model()
    ids = torch.tensor([[2, 7, 8, 9, 3], [2, 7, 3, 0, 0]])
    mask = (ids != 0).long()
    out = model(ids, mask)
    assert out.segment_logits.shape == (2, 4, 2)
    assert out.sentence_logits.shape == (2, 2)
    hidden = model.encoder(input_ids=ids, attention_mask=mask).last_hidden_state
    pairs = torch.tanh(model.w0 * hidden[:, :-1] + model.w1 * hidden[:, 1:] + model.conv_bias)
    assert torch.allclose(out.segment_logits, model.segment_head(pairs), atol=1e-5)
    pooled = (hidden * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True)
    assert torch.allclose(out.sentence_logits, model.sentence_head(pooled), atol=1e-5)


def test_masked_mean_ignores_padding() -> None:
    hidden = torch.tensor([[[1.0], [3.0], [100.0]]])
    assert masked_mean(hidden, torch.tensor([[1, 1, 0]])).item() == 2.0


def test_loss_ignores_padding_and_weights_toxic_segments() -> None:
    torch.manual_seed(3)
    segment_logits = torch.randn(2, 4, 2)
    sentence_logits = torch.randn(2, 2)
    labels = torch.tensor([[0, 1, 0, -100], [1, 0, -100, -100]])
    sentence = torch.tensor([1, 0])
    output = SegmentCNNOutput(segment_logits, sentence_logits)
    loss = segment_cnn_loss(output, labels, sentence, toxic_weight=3.0, segment_weight=0.5)

    log_p = torch.log_softmax(segment_logits, dim=-1)
    num = den = 0.0
    for b in range(2):
        for j in range(4):
            y = int(labels[b, j])
            if y == -100:
                continue
            w = 3.0 if y == 1 else 1.0
            num += -w * log_p[b, j, y].item()
            den += w
    sent = -torch.log_softmax(sentence_logits, -1)[[0, 1], [1, 0]].mean().item()
    assert abs(loss.item() - (sent + 0.5 * num / den)) < 1e-5

    # Changing the logits of ignored (padding) pairs changes nothing.
    changed = segment_logits.clone()
    changed[0, 3] += 50.0
    changed[1, 2:] -= 50.0
    again = segment_cnn_loss(SegmentCNNOutput(changed, sentence_logits), labels, sentence, 3.0, 0.5)
    assert torch.isclose(loss, again)


def test_toxic_weight_raises_the_cost_of_missing_toxic_segments() -> None:
    # A model that calls every segment non-toxic loses more when toxic segments weigh more.
    segment_logits = torch.tensor([[[2.0, -2.0], [2.0, -2.0], [2.0, -2.0]]])
    output = SegmentCNNOutput(segment_logits, torch.zeros(1, 2))
    labels = torch.tensor([[0, 1, 0]])
    sentence = torch.tensor([1])
    low = segment_cnn_loss(output, labels, sentence, toxic_weight=1.0)
    high = segment_cnn_loss(output, labels, sentence, toxic_weight=8.0)
    assert high > low
    only_padding = segment_cnn_loss(output, torch.full((1, 3), -100), sentence)
    assert torch.isclose(only_padding, torch.tensor(math.log(2.0)))
