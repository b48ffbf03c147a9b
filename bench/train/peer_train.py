"""PyTorch peer of `genecompass-train pretrain` for the training-throughput benchmark.

Same weights (the inference bench's official-layout model.safetensors), same cells, same
objective: 15 % of real gene positions masked (80 % <mask>, 10 % random id, 10 % kept; value
-1 at every masked position), loss 0.2 * CE(id) + 0.8 * MSE(value) over masked positions, AdamW,
gradient clipping at 1.0 (the HF Trainer default the official run used), and the checkpoint's
hidden and attention-probability dropout (config.json), as in the official pretraining.

Modes:
  official  every cell padded to 2048 and both heads run on every position (the official
            BertForMaskedLM), masked positions picked afterwards;
  dynamic   batches of similar length padded to their longest cell, heads only at masked
            positions (what the Rust trainer does).
Prints one JSON line: cells/s over one timed pass of all cells (after a warm-up step).
"""
import argparse
import importlib.util
import json
import os
import time

import torch
from torch import nn
from safetensors.torch import load_file

HERE = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("peer", os.path.join(HERE, "..", "inference", "peer.py"))
peer = importlib.util.module_from_spec(spec)
spec.loader.exec_module(peer)


class Transform(nn.Module):
    def __init__(self, h, eps):
        super().__init__()
        self.dense = nn.Linear(h, h)
        self.LayerNorm = nn.LayerNorm(h, eps=eps)

    def forward(self, x):
        return self.LayerNorm(nn.functional.gelu(self.dense(x)))


class MlmHeads(nn.Module):
    """`cls.predictions` (decoder tied to the word embeddings) and `cls4value.predictions`."""

    def __init__(self, word_embeddings, h, v, eps):
        super().__init__()
        self.id_transform = Transform(h, eps)
        self.word = word_embeddings
        self.bias = nn.Parameter(torch.zeros(v))
        self.value_transform = Transform(h, eps)
        self.value = nn.Linear(h, 1)

    def forward(self, x):
        ids = self.id_transform(x) @ self.word.weight.t() + self.bias
        return ids, self.value(self.value_transform(x)).squeeze(-1)


def mask(ids, values, lengths, vocab, gen):
    b, l = ids.shape
    real = torch.arange(l)[None, :] < lengths[:, None]
    chosen = (torch.rand(b, l, generator=gen) < 0.15) & real
    roll = torch.rand(b, l, generator=gen)
    new_ids = ids.clone()
    new_ids[chosen & (roll < 0.8)] = 1
    rnd = chosen & (roll >= 0.8) & (roll < 0.9)
    new_ids[rnd] = torch.randint(0, vocab, (int(rnd.sum()),), generator=gen)
    new_values = values.clone()
    new_values[chosen] = -1.0
    return new_ids, new_values, chosen


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model_dir")
    ap.add_argument("cells")
    ap.add_argument("--mode", choices=["official", "dynamic"], required=True)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu", help="cpu or cuda (float32, no TF32)")
    a = ap.parse_args()
    dev = torch.device(a.device)
    torch.set_num_threads(a.threads)
    torch.set_num_interop_threads(1)
    torch.manual_seed(0)
    with open(os.path.join(a.model_dir, "config.json")) as f:
        c = json.load(f)
    model = peer.load_model(a.model_dir, "sdpa", train=True).to(dev).train()
    h, v = c["hidden_size"], c["vocab_size"]
    heads = MlmHeads(model.embeddings.word_embeddings, h, v, c.get("layer_norm_eps", 1e-12)).to(dev)
    params = [p for p in list(model.parameters()) + list(heads.parameters()) if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-5, weight_decay=0.01)
    cells = load_file(a.cells)
    ids, values, species, attn = cells["input_ids"], cells["values"], cells["species"], cells["attention_mask"]
    lengths = attn.sum(1)
    gen = torch.Generator().manual_seed(1)
    batches = peer.plan(lengths, a.batch_size, "padded" if a.mode == "official" else "dynamic")
    timed_cells, timed = 0, 0.0
    # Step 0 (batch 0 again) warms up; then one timed pass over every batch.
    for step in range(len(batches) + 1):
        idx, length = batches[max(step - 1, 0)]
        t = torch.tensor(idx)
        sl = slice(None) if length is None else slice(0, length)
        b_ids, b_vals, b_attn = ids[t][:, sl], values[t][:, sl], attn[t][:, sl]
        m_ids, m_vals, chosen = mask(b_ids, b_vals, lengths[t], v, gen)
        b_ids, b_vals, b_attn, m_ids, m_vals, chosen, b_species = (
            x.to(dev) for x in (b_ids, b_vals, b_attn, m_ids, m_vals, chosen, species[t])
        )
        if dev.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        genes = model(m_ids, m_vals, b_species, b_attn)[:, 1:]
        if a.mode == "official":
            logits, vpred = heads(genes)
            logits, vpred = logits[chosen], vpred[chosen]
        else:
            logits, vpred = heads(genes[chosen])
        loss = 0.2 * nn.functional.cross_entropy(logits, b_ids[chosen]) + 0.8 * nn.functional.mse_loss(
            vpred, b_vals[chosen]
        )
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        loss_value = float(loss)  # waits for the step, as the Rust trainer's loss report does
        secs = time.perf_counter() - start
        if step > 0:
            timed_cells += len(idx)
            timed += secs
    print(json.dumps({"side": "peer", "mode": a.mode, "cells": timed_cells, "seconds": timed,
                      "cells_per_s": timed_cells / timed, "batch_size": a.batch_size,
                      "last_loss": loss_value, "device": str(dev),
                      "padded_to": "2048" if a.mode == "official" else "longest in batch"}))


if __name__ == "__main__":
    main()
