"""PyTorch peer of the GeneCompass encoder, for the inference benchmark.

Same architecture as the Rust model and the official code (spec §6):
- the knowledge embedding written in torch exactly as spec §6.2 (word + value + four prior
  tables [V, K] through their Linear, concat MLP with LayerNorm eps 1e-5 and QuickGELU,
  position + token type, LayerNorm eps 1e-12);
- the species CLS prepended after the embedding (§6.3);
- HF transformers' own `BertEncoder` with a `BertConfig` of the same shape (exact gelu).

It loads the official-layout `model.safetensors` the Rust bench exports, so both sides run
the same weights. Timing covers the batched forward passes only (not loading), like the
`embedded N cells in Xs` line of `genecompass-train embed`.

usage: peer.py MODEL_DIR CELLS.safetensors OUT.safetensors --mode padded|dynamic
               [--batch-size B] [--threads T] [--attn sdpa|eager] [--device cpu|cuda]

On `--device cuda` the model runs in float32 with PyTorch's default matmul precision (no TF32),
and each batch's CLS rows are copied back to the host before the next batch, as the Rust CLI does.
"""

import argparse
import json
import os
import time

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import BertConfig
from transformers.models.bert.modeling_bert import BertEncoder

PRIORS = ["promoter", "co_exp", "gene_family", "peca_grn"]


class PriorEmbedding(nn.Module):
    def __init__(self, k, h):
        super().__init__()
        self.linear1 = nn.Linear(k, h)

    def forward(self, x):
        return self.linear1(x)


class ConcatEmbeddings(nn.Module):
    def __init__(self, d_in, h):
        super().__init__()
        self.cat_fc = nn.Linear(d_in, h)
        self.cat_ln = nn.LayerNorm(h)  # PyTorch default eps 1e-5, as in the official code
        self.cat_proj = nn.Linear(h, h)

    def forward(self, x):
        x = self.cat_ln(self.cat_fc(x))
        x = x * torch.sigmoid(1.702 * x)  # QuickGELU
        return self.cat_proj(x)


class KnowledgeBertEmbeddings(nn.Module):
    """`genecompass/knowledge_embeddings.py`, spec §6.2."""

    def __init__(self, c, k, train=False):
        super().__init__()
        h, v = c["hidden_size"], c["vocab_size"]
        self.word_embeddings = nn.Embedding(v, h, padding_idx=c.get("pad_token_id", 0))
        for p in PRIORS:
            self.register_buffer(f"{p}_knowledge", torch.zeros(v, k))
            setattr(self, f"{p}_embeddings", PriorEmbedding(k, h))
        self.register_buffer("homologous_index", torch.arange(v))
        self.concat_embeddings = ConcatEmbeddings(5 * h + 1, h)
        self.position_embeddings = nn.Embedding(c["max_position_embeddings"], h)
        self.token_type_embeddings = nn.Embedding(c.get("type_vocab_size", 2), h)
        self.LayerNorm = nn.LayerNorm(h, eps=c.get("layer_norm_eps", 1e-12))
        self.dropout = nn.Dropout(c.get("hidden_dropout_prob", 0.1) if train else 0.0)
        self.register_buffer("position_ids", torch.arange(c["max_position_embeddings"]).unsqueeze(0))

    def forward(self, input_ids, values, species, alpha=1.0):
        seq_len = input_ids.shape[1]
        x = torch.cat([self.word_embeddings(input_ids), values.unsqueeze(-1).float()], dim=-1)
        kid = input_ids.clone()
        mouse = species[:, 0] == 1
        kid[mouse] = self.homologous_index[kid[mouse]]
        for p in PRIORS:
            table = getattr(self, f"{p}_knowledge")
            x = torch.cat([x, alpha * getattr(self, f"{p}_embeddings")(table[kid])], dim=-1)
        x = self.concat_embeddings(x)
        token_type = self.token_type_embeddings(torch.zeros_like(input_ids))
        pos = self.position_embeddings(self.position_ids[:, :seq_len])
        return self.dropout(self.LayerNorm(x + token_type + pos))


class GeneCompassBert(nn.Module):
    """`BertModel` with the species CLS (§6.3); the encoder is transformers' BertEncoder."""

    def __init__(self, c, k, attn, train=False):
        super().__init__()
        cfg = BertConfig(
            vocab_size=c["vocab_size"],
            hidden_size=c["hidden_size"],
            num_hidden_layers=c["num_hidden_layers"],
            num_attention_heads=c["num_attention_heads"],
            intermediate_size=c["intermediate_size"],
            hidden_act="gelu",  # exact erf GELU
            layer_norm_eps=c.get("layer_norm_eps", 1e-12),
            max_position_embeddings=c["max_position_embeddings"],
            # Training uses the checkpoint's dropout, as the official pretraining and the Rust
            # trainer do; inference has none.
            hidden_dropout_prob=c.get("hidden_dropout_prob", 0.1) if train else 0.0,
            attention_probs_dropout_prob=c.get("attention_probs_dropout_prob", 0.1) if train else 0.0,
            attn_implementation=attn,
        )
        cfg._attn_implementation = attn
        self.embeddings = KnowledgeBertEmbeddings(c, k, train)
        self.cls_embedding = nn.Embedding(2, c["hidden_size"])
        self.encoder = BertEncoder(cfg)

    def forward(self, input_ids, values, species, attention_mask):
        b = input_ids.shape[0]
        h0 = self.embeddings(input_ids, values, species)
        h0 = torch.cat([self.cls_embedding(species), h0], dim=1)
        ones = torch.ones(b, 1, dtype=attention_mask.dtype, device=attention_mask.device)
        mask = torch.cat([ones, attention_mask], dim=1)
        ext = (1.0 - mask[:, None, None, :].float()) * torch.finfo(torch.float32).min
        out = self.encoder(h0, attention_mask=ext)
        return out[0] if isinstance(out, tuple) else out.last_hidden_state


def load_model(model_dir, attn, train=False):
    with open(os.path.join(model_dir, "config.json")) as f:
        c = json.load(f)
    sd = load_file(os.path.join(model_dir, "model.safetensors"))
    k = sd["bert.embeddings.promoter_knowledge"].shape[1]
    model = GeneCompassBert(c, k, attn, train)
    bert = {key[len("bert."):]: t for key, t in sd.items() if key.startswith("bert.")}
    missing, unexpected = model.load_state_dict(bert, strict=False)
    if missing or unexpected:
        raise SystemExit(f"weights do not match the peer: missing {missing}, unexpected {unexpected}")
    return model.eval()


def plan(lengths, batch_size, mode):
    """Batches of cell indices and the length each is padded to."""
    n = len(lengths)
    if mode == "padded":  # the official layout: input order, every cell padded to 2048
        order = list(range(n))
        return [(order[i : i + batch_size], None) for i in range(0, n, batch_size)]
    order = sorted(range(n), key=lambda i: (-int(lengths[i]), i))  # like the Rust plan_batches
    out = []
    for i in range(0, n, batch_size):
        idx = order[i : i + batch_size]
        out.append((idx, int(max(lengths[j] for j in idx))))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model_dir")
    ap.add_argument("cells")
    ap.add_argument("output")
    ap.add_argument("--mode", choices=["padded", "dynamic"], required=True)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--attn", choices=["sdpa", "eager"], default="sdpa")
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    a = ap.parse_args()
    dev = torch.device(a.device)
    torch.set_num_threads(a.threads)
    torch.set_num_interop_threads(1)
    model = load_model(a.model_dir, a.attn).to(dev)
    cells = load_file(a.cells)
    ids, values, species, mask = cells["input_ids"], cells["values"], cells["species"], cells["attention_mask"]
    lengths = mask.sum(1)
    n, h = ids.shape[0], model.cls_embedding.weight.shape[1]
    cls = torch.zeros(n, h)
    start = time.perf_counter()
    with torch.inference_mode():
        for idx, length in plan(lengths, a.batch_size, a.mode):
            t = torch.tensor(idx)
            sl = slice(None) if length is None else slice(0, length)
            batch = [x.to(dev) for x in (ids[t][:, sl], values[t][:, sl], species[t], mask[t][:, sl])]
            cls[t] = model(*batch)[:, 0].cpu()
    secs = time.perf_counter() - start
    save_file({"cell_embedding": cls.contiguous()}, a.output)
    extra = ""
    if dev.type == "cuda":
        extra = f", peak GPU memory {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB"
    print(f"peer {a.mode}: embedded {n} cells in {secs:.2f}s ({n / secs:.2f} cells/s){extra}", flush=True)


if __name__ == "__main__":
    main()
