"""Text encoders: the shipped MiniLM (offline), local Hugging Face directories (BERT-like, T5),
the caches, and the model-free HashTextEncoder."""

import shutil
import socket

import pytest
import torch

from spacetime.text import HashTextEncoder, TextEncoder, minilm_path


def _no_network(*args, **kwargs):
    raise AssertionError(f"the text encoder tried to open a network connection: {args}")


@pytest.fixture(scope="module")
def minilm():
    """Loaded once, with HF_HUB_OFFLINE=1 and every socket connection failing the test."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setattr(socket.socket, "connect", _no_network)
        mp.setattr(socket, "create_connection", _no_network)
        enc = TextEncoder(cache_size=0)  # no in-memory cache: the tests below see the model itself
        enc.encode(["a red ball"])  # encoding, too, stays offline
    return enc


class CountCalls:
    """Counts forward calls of the encoder's transformer and the rows it saw."""

    def __init__(self, enc: TextEncoder):
        self.rows = []
        self.handle = enc.model.register_forward_hook(lambda m, args, kwargs, out: self.rows.append(
            kwargs["input_ids"].shape[0]), with_kwargs=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.handle.remove()


def test_minilm_shapes_mask_and_frozen(minilm):
    assert minilm.dim == 384 and minilm.max_length == 64
    assert not minilm.model.training and not any(p.requires_grad for p in minilm.model.parameters())
    emb, mask = minilm.encode(["a red ball", "", "a small blue square bounces to the left"])
    assert emb.shape == (3, 64, 384) and emb.dtype == torch.float32
    assert mask.shape == (3, 64) and mask.dtype == torch.bool
    # [CLS] a red ball [SEP]; the empty prompt is [CLS] [SEP]; "bounces" is two word pieces
    assert mask.sum(1).tolist() == [5, 2, 11]
    assert torch.equal(mask, torch.arange(64)[None] < mask.sum(1, keepdim=True))  # real tokens first
    assert (emb[~mask] == 0).all() and (emb[mask].abs().sum(-1) > 0).all()
    assert not emb.requires_grad


def test_minilm_same_prompt_same_embedding_different_prompts_differ(minilm):
    a, ma = minilm.encode(["a red ball"])
    b, mb = minilm.encode(["a green square falls", "a red ball", "x"])  # other batch-mates, other padding
    assert torch.equal(ma[0], mb[1])
    torch.testing.assert_close(a[0], b[1], atol=1e-5, rtol=1e-5)
    c, _ = minilm.encode(["a blue ball"])
    assert (a[0, 1:4] - c[0, 1:4]).abs().max() > 0.1  # a different colour word changes the embeddings
    assert (a[0] - b[0]).abs().max() > 0.1


def test_minilm_truncates_long_prompts(minilm, caplog):
    long = " ".join(["ball"] * 100)
    with caplog.at_level("WARNING"):
        emb, mask = minilm.encode([long, "ball"])
    assert mask.sum(1).tolist() == [64, 3]
    assert "truncated to max_length=64" in caplog.text


def test_memory_cache_hits_skip_the_model(tmp_path):
    enc = TextEncoder(cache_size=2)
    with CountCalls(enc) as calls:
        a = enc.encode(["a red ball", "a green square", "a red ball"])
        assert calls.rows == [2]  # a repeated prompt is encoded once
        b = enc.encode(["a green square", "a red ball"])
        assert calls.rows == [2]  # both from the cache
        assert torch.equal(b[0], a[0][[1, 0]]) and torch.equal(b[1], a[1][[1, 0]])
        enc.encode(["a blue triangle"])  # evicts the least recently used ("a green square")
        enc.encode(["a red ball"])
        assert calls.rows == [2, 1]
        enc.encode(["a green square"])
        assert calls.rows == [2, 1, 1]
    assert (enc.hits, enc.misses) == (3, 4)

    # the disk cache: a fresh memory reads the saved files, bit for bit, without the model
    disk = TextEncoder(cache_dir=tmp_path / "text-cache")
    disk.model = enc.model  # the same weights: skip a second load
    with CountCalls(disk) as calls:
        first = disk.encode(["a red ball", ""])
        files = sorted((tmp_path / "text-cache").glob("*.safetensors"))
        assert len(files) == 2 and calls.rows == [2]
        disk.clear_cache()
        again = disk.encode(["", "a red ball"])
        assert calls.rows == [2] and disk.disk_hits == 2
    assert torch.equal(again[0], first[0][[1, 0]]) and torch.equal(again[1], first[1][[1, 0]])
    assert not list((tmp_path / "text-cache").glob(".*"))  # no temporary files left behind
    # the key covers the settings: another max_length never reads these entries
    other = HashTextEncoder(dim=384, max_length=64, cache_dir=tmp_path / "text-cache")
    assert other.cache_path("a red ball") != disk.cache_path("a red ball")


def test_missing_or_unfit_paths_are_named(tmp_path):
    with pytest.raises(ValueError, match="nope.*does not exist"):
        TextEncoder(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="empty.*not a Hugging Face model directory"):
        TextEncoder(tmp_path / "empty")
    (tmp_path / "pickled").mkdir()
    (tmp_path / "pickled" / "config.json").write_text("{}")
    (tmp_path / "pickled" / "pytorch_model.bin").write_bytes(b"")
    with pytest.raises(ValueError, match="pickled.*no \\*.safetensors"):
        TextEncoder.from_pretrained(tmp_path / "pickled")
    with pytest.raises(ValueError, match="max_length must be >= 1, got 0"):
        HashTextEncoder(max_length=0)
    # a config.json that names no architecture, or one transformers does not know: our words, naming the file
    (tmp_path / "untyped").mkdir()
    (tmp_path / "untyped" / "config.json").write_text('{"hidden_size": 8}')
    (tmp_path / "untyped" / "model.safetensors").write_bytes(b"")
    with pytest.raises(ValueError, match='untyped/config.json: no "model_type"'):
        TextEncoder(tmp_path / "untyped")
    (tmp_path / "untyped" / "config.json").write_text('{"model_type": "no-such-encoder"}')
    with pytest.raises(ValueError, match="untyped/config.json: transformers .* cannot build model type 'no-such"):
        TextEncoder(tmp_path / "untyped")
    (tmp_path / "untyped" / "config.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match='untyped/config.json: no "model_type"'):
        TextEncoder(tmp_path / "untyped")


def _with_minilm_tokenizer(model, path):
    model.save_pretrained(path)
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copy(minilm_path() / name, path / name)
    return path


def test_local_bert_and_t5_directories(tmp_path):
    from transformers import BertConfig, BertModel, T5Config, T5EncoderModel

    torch.manual_seed(0)
    bert = BertModel(BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                intermediate_size=64, max_position_embeddings=32))
    path = _with_minilm_tokenizer(bert, tmp_path / "bert")
    enc = TextEncoder.from_pretrained(path, max_length=16)
    emb, mask = enc.encode(["a red ball", ""])
    assert enc.dim == 32 and emb.shape == (2, 16, 32) and mask.sum(1).tolist() == [5, 2]
    with pytest.raises(ValueError, match="max_length 64 exceeds the 32 positions"):
        TextEncoder(path, max_length=64)
    with pytest.raises(ValueError, match=r"max_length must be at least 2 \(this tokenizer's special tokens\), got 1"):
        TextEncoder(path, max_length=1)  # [CLS] [SEP] cannot be cut: it was a shape error in encode()

    t5 = T5EncoderModel(T5Config(vocab_size=30522, d_model=24, d_kv=8, d_ff=48, num_layers=1, num_heads=2))
    path = _with_minilm_tokenizer(t5, tmp_path / "t5")
    enc = TextEncoder(path=path, max_length=16)
    assert type(enc.model).__name__ == "T5EncoderModel" and enc.dim == 24
    emb, mask = enc.encode(["a red ball", ""])
    assert emb.shape == (2, 16, 24) and mask.sum(1).tolist() == [5, 2]
    # the last hidden state of the encoder
    ids = enc.tokenizer(["a red ball"], return_tensors="pt")["input_ids"]
    with torch.no_grad():
        ref = t5.eval()(input_ids=ids).last_hidden_state[0]
    torch.testing.assert_close(emb[0, :5], ref, atol=1e-5, rtol=1e-5)


def test_hash_encoder():
    enc = HashTextEncoder(dim=16, max_length=6)
    emb, mask = enc.encode(["A red ball", "", "a red ball, bouncing", "one two three four five six seven"])
    assert emb.shape == (4, 6, 16) and mask.sum(1).tolist() == [4, 1, 5, 6]
    assert torch.equal(emb[0, :4], emb[2, :4])  # case and punctuation are ignored; words are fixed vectors
    assert torch.equal(emb[1, 0], emb[0, 0])  # the empty prompt is the BOS token alone
    assert (emb[~mask] == 0).all()
    again = HashTextEncoder(dim=16, max_length=6).encode(["a red ball"])[0]
    assert torch.equal(again[0], emb[0])  # deterministic across instances
    assert not torch.equal(HashTextEncoder(dim=16, seed=1).encode(["red"])[0][0, 1], emb[0, 2])
    words = torch.cat([HashTextEncoder(dim=256).encode([f"w{i}"])[0][0, 1] for i in range(40)])
    assert abs(words.mean().item()) < 0.05 and abs(words.std().item() - 1) < 0.05  # unit variance


def test_truncation_warns_once_per_encoder_then_counts(caplog):
    enc = HashTextEncoder(max_length=8)
    with caplog.at_level("WARNING"):
        enc.encode([" ".join(["ball"] * 20), " ".join(["box"] * 30)])
        enc.encode([" ".join(["disc"] * 40)])
    warnings = [r for r in caplog.records if "truncated to max_length=8" in r.getMessage()]
    assert len(warnings) == 1  # a training run on long captions would otherwise warn every step
    assert enc.truncated == 3


def test_a_plain_bert_runs_as_transformers_would_without_importing_it(minilm, tmp_path):
    """MiniLM and any plain BERT with a tokenizer.json run as spacetime's BertEncoder: the same
    token ids and hidden states as transformers' tokenizer and BertModel, and the process that
    encodes never imports transformers (5 s of a `spacetime generate` on an AVX2 CPU)."""
    import os
    import subprocess
    import sys

    from transformers import AutoTokenizer, BertConfig, BertForMaskedLM, BertModel

    from spacetime.text import BertEncoder

    prompts = ["a red ball bounces off the left wall", "", "a small blue square moves to the right, then cut to "
               "a close-up of the blue square", "Ünïcode, CAPITALS and   spaces!"]
    torch.manual_seed(0)
    small = BertModel(BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                 intermediate_size=64, max_position_embeddings=32))
    for reference, path, max_length in ((None, minilm_path(), 64), (small, _with_minilm_tokenizer(small, tmp_path / "b"), 16)):
        enc = TextEncoder(path, max_length=max_length, cache_size=0)
        assert isinstance(enc.model, BertEncoder)
        emb, mask = enc.encode(prompts)
        tokenizer = AutoTokenizer.from_pretrained(path)
        batch = tokenizer(prompts, padding="longest", truncation=True, max_length=max_length, return_tensors="pt")
        assert mask.sum(1).tolist() == batch["attention_mask"].sum(1).tolist()
        assert torch.equal(enc.tokenizer(prompts, padding="longest", truncation=True, max_length=max_length,
                                         return_tensors="pt")["input_ids"], batch["input_ids"])
        reference = reference or BertModel.from_pretrained(path)
        with torch.no_grad():
            ref = reference.eval()(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
        for i, n in enumerate(mask.sum(1).tolist()):
            torch.testing.assert_close(emb[i, :n], ref[i, :n], atol=2e-5, rtol=1e-5)
    # weights under a head model's prefix, or another activation: transformers loads it, as before
    masked = BertForMaskedLM(small.config)
    assert not isinstance(TextEncoder(_with_minilm_tokenizer(masked, tmp_path / "m"), max_length=16).model, BertEncoder)
    gelu_new = BertModel(BertConfig(**{**small.config.to_dict(), "hidden_act": "gelu_new"}))
    assert not isinstance(TextEncoder(_with_minilm_tokenizer(gelu_new, tmp_path / "g"), max_length=16).model, BertEncoder)
    code = ("import sys; from spacetime.text import TextEncoder; TextEncoder().encode(['a red ball']); "
            "assert 'transformers' not in sys.modules, 'transformers was imported'")
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})


def test_encoding_from_several_threads_cuts_each_prompt_as_alone(minilm):
    """A server's workers share one encoder: the tokenizer's truncation is never switched per call
    (which let one thread's untruncated count run with another's cut, or the reverse)."""
    from concurrent.futures import ThreadPoolExecutor

    long, short = " ".join(["ball"] * 100), "a red ball"
    alone = {p: minilm.encode([p]) for p in (long, short)}

    def encode(i: int):
        p = (long, short)[i % 2]
        return p, minilm.encode([p])

    with ThreadPoolExecutor(4) as pool:
        for p, (emb, mask) in pool.map(encode, range(40)):
            assert torch.equal(mask, alone[p][1])
            torch.testing.assert_close(emb, alone[p][0], atol=1e-5, rtol=1e-5)
