"""Tiny random checkpoints of each encoder family kdnlp supports, saved with save_pretrained next to a matching
tokenizer built offline (no hub): WordPiece vocab.txt for BERT / ELECTRA / DistilBERT, a byte-level BPE trained on
the texts for RoBERTa, a SentencePiece unigram model trained on the texts for XLM-R and DeBERTa-v2.

Hidden 32, 4 layers, 2 heads: each builds in well under a second.
"""
from __future__ import annotations

import json
from pathlib import Path

FAMILIES = ("bert", "roberta", "xlm-roberta", "deberta-v2", "electra", "distilbert")
SIZE = dict(hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=64)


def _wordpiece_vocab(texts: list[str]) -> list[str]:
    from kdnlp.vocab import SPECIAL
    words = sorted({w for t in texts for w in t.lower().replace(",", " ").split()} | {c for t in texts for c in t if not c.isspace()})
    return SPECIAL + [w for w in words if w not in SPECIAL]


def _sentencepiece_vocab(texts: list[str], directory: Path) -> list[tuple[str, float]]:
    """(piece, score) of a unigram model trained on `texts`, specials first in XLM-R's order."""
    import sentencepiece as spm
    prefix = directory / "sp"
    spm.SentencePieceTrainer.train(sentence_iterator=iter(texts), model_prefix=str(prefix), vocab_size=120,
                                   model_type="unigram", character_coverage=1.0, hard_vocab_limit=False,
                                   bos_id=0, pad_id=1, eos_id=2, unk_id=3, user_defined_symbols=["<mask>"],
                                   minloglevel=2)
    sp = spm.SentencePieceProcessor(model_file=str(prefix) + ".model")
    pieces = [(sp.id_to_piece(i), sp.get_score(i)) for i in range(sp.get_piece_size())]
    for f in directory.glob("sp.*"):
        f.unlink()
    return pieces


def build_tokenizer(family: str, texts: list[str], directory: Path):
    import transformers
    directory.mkdir(parents=True, exist_ok=True)
    if family in ("bert", "electra", "distilbert"):
        (directory / "vocab.txt").write_text("\n".join(_wordpiece_vocab(texts)) + "\n", encoding="utf-8")
        cls = {"bert": "BertTokenizer", "electra": "ElectraTokenizer", "distilbert": "DistilBertTokenizer"}[family]
        return getattr(transformers, cls)(str(directory / "vocab.txt"))  # positional (see common notes)
    if family == "roberta":
        from tokenizers import ByteLevelBPETokenizer
        bpe = ByteLevelBPETokenizer()
        bpe.train_from_iterator(texts, vocab_size=400, min_frequency=1,
                                special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
        bpe.save_model(str(directory))
        tok = transformers.RobertaTokenizer(str(directory / "vocab.json"), str(directory / "merges.txt"))
        (directory / "vocab.json").unlink()
        (directory / "merges.txt").unlink()
        return tok
    vocab = _sentencepiece_vocab(texts, directory)
    if family == "xlm-roberta":
        return transformers.XLMRobertaTokenizer(vocab=vocab)
    # DeBERTa-v3's layout: [PAD] [CLS] [SEP] [UNK] first, then the unigram pieces, [MASK] last
    pieces = [(p, s) for p, s in vocab if p not in ("<s>", "<pad>", "</s>", "<unk>", "<mask>")]
    return transformers.DebertaV2Tokenizer(vocab=[("[PAD]", 0.0), ("[CLS]", 0.0), ("[SEP]", 0.0), ("[UNK]", 0.0),
                                                  *pieces, ("[MASK]", 0.0)])


def build_config(family: str, tokenizer, num_labels: int = 2):
    import transformers
    common = dict(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id, num_labels=num_labels,
                  max_position_embeddings=128)
    if family == "distilbert":
        return transformers.DistilBertConfig(dim=SIZE["hidden_size"], n_layers=SIZE["num_hidden_layers"],
                                             n_heads=SIZE["num_attention_heads"], hidden_dim=SIZE["intermediate_size"],
                                             **common)
    if family == "deberta-v2":  # the DeBERTa-v3 layout: relative attention, no absolute positions, no token types
        return transformers.DebertaV2Config(**SIZE, **common, relative_attention=True, position_biased_input=False,
                                            pos_att_type=["p2c", "c2p"], max_relative_positions=-1,
                                            position_buckets=16, norm_rel_ebd="layer_norm", share_att_key=True,
                                            type_vocab_size=0)
    if family == "electra":  # ELECTRA-small style: embeddings narrower than the hidden states
        return transformers.ElectraConfig(**SIZE, **common, embedding_size=16)
    cls = {"bert": "BertConfig", "roberta": "RobertaConfig", "xlm-roberta": "XLMRobertaConfig"}[family]
    extra = {"type_vocab_size": 1} if family in ("roberta", "xlm-roberta") else {}  # as roberta-base / xlm-roberta-base
    return getattr(transformers, cls)(**SIZE, **common, **extra)


def save_family(family: str, texts: list[str], directory: Path) -> Path:
    """A tiny random `family` checkpoint with its tokenizer in `directory` (plain save_pretrained, no kdnlp)."""
    import torch
    import transformers
    tokenizer = build_tokenizer(family, texts, directory)
    config = build_config(family, tokenizer)
    torch.manual_seed(0)
    model = transformers.AutoModelForSequenceClassification.from_config(config)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    assert json.loads((directory / "config.json").read_text())["model_type"] == family
    return directory


def save_hub_layout(family: str, texts: list[str], directory: Path) -> Path:
    """A checkpoint laid out as many hub repos are: the tokenizer only as its original files, no tokenizer.json
    (RoBERTa: vocab.json + merges.txt; DeBERTa-v3: spm.model), plus tokenizer_config.json naming its class."""
    import torch
    import transformers
    directory.mkdir(parents=True, exist_ok=True)
    if family == "roberta":
        from tokenizers import ByteLevelBPETokenizer
        bpe = ByteLevelBPETokenizer()
        bpe.train_from_iterator(texts, vocab_size=400, min_frequency=1,
                                special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
        bpe.save_model(str(directory))
        tokenizer_class = "RobertaTokenizer"
    elif family == "deberta-v2":  # deberta-v3-*'s spm.model: [PAD] [CLS] [SEP] [UNK] are pieces 0..3
        import sentencepiece as spm
        spm.SentencePieceTrainer.train(sentence_iterator=iter(texts), model_prefix=str(directory / "spm"),
                                       vocab_size=120, model_type="unigram", character_coverage=1.0,
                                       hard_vocab_limit=False, pad_id=0, pad_piece="[PAD]", bos_id=1,
                                       bos_piece="[CLS]", eos_id=2, eos_piece="[SEP]", unk_id=3, unk_piece="[UNK]",
                                       minloglevel=2)
        (directory / "spm.vocab").unlink()
        tokenizer_class = "DebertaV2Tokenizer"
    else:
        raise ValueError(family)
    (directory / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": tokenizer_class}))
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(directory))  # converted from the original files
    torch.manual_seed(0)
    transformers.AutoModelForSequenceClassification.from_config(build_config(family, tokenizer)).save_pretrained(directory)
    assert not (directory / "tokenizer.json").exists()
    return directory
