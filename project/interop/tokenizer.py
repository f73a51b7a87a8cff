"""RoBERTa's byte-level BPE tokenizer between Hugging Face files (``tokenizer.json``, or
``vocab.json`` + ``merges.txt``) and keras-hub's ``RobertaTokenizer``, giving the same ids.

Example:

>>> from project.paths import asset
>>> vocabulary, merges = read_hf_tokenizer(asset("qqp_tokenizer"))
>>> vocabulary["<pad>"], merges[0]
(1, 'Ġ t')
"""

from __future__ import annotations

import json
from pathlib import Path

from project.errors import InputError
from project.io import write_json, write_text

#: The special tokens keras-hub's RobertaTokenizer and preprocessor need.
SPECIAL_TOKENS = ("<s>", "<pad>", "</s>", "<mask>")


def load_json(path: Path, what: str = "JSON", object_only: bool = False):
    """The decoded file; one-line InputError if unreadable (or, ``object_only``, not an object)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputError(f"{path}: unreadable {what} ({str(err).splitlines()[0]})") from None
    if object_only and not isinstance(data, dict):
        raise InputError(f"{path}: not a JSON object")
    return data


def _from_tokenizer_json(path: Path) -> tuple[dict, list]:
    data = load_json(path, "tokenizer.json")
    model = data.get("model") if isinstance(data, dict) else None
    if not isinstance(model, dict) or model.get("type") != "BPE":
        raise InputError(f"{path}: not a BPE tokenizer (model.type "
                         f"{model.get('type') if isinstance(model, dict) else None!r})")
    pre = data.get("pre_tokenizer") or {}
    if pre.get("type") != "ByteLevel":
        raise InputError(f"{path}: pre_tokenizer {pre.get('type')!r} is not RoBERTa's ByteLevel")
    if pre.get("add_prefix_space"):
        raise InputError(f"{path}: add_prefix_space=true is not supported by keras-hub's "
                         "RobertaTokenizer")
    if data.get("normalizer"):
        raise InputError(f"{path}: a normalizer ({data['normalizer'].get('type')}) is not "
                         "supported by keras-hub's RobertaTokenizer")
    vocabulary = dict(model.get("vocab") or {})
    for token in data.get("added_tokens") or []:
        vocabulary.setdefault(token["content"], int(token["id"]))
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges") or []]
    return vocabulary, merges


def _from_vocab_and_merges(vocab: Path, merges_path: Path) -> tuple[dict, list]:
    vocabulary = load_json(vocab, "vocab.json")
    if not isinstance(vocabulary, dict):
        raise InputError(f"{vocab}: not a token -> id JSON object")
    try:
        lines = merges_path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"{merges_path}: unreadable merges ({err})") from None
    merges = [line for line in lines if line and not line.startswith("#version")]
    return vocabulary, merges


def read_hf_tokenizer(folder) -> tuple[dict, list]:
    """``(vocabulary, merges)``, ``{token: id}`` and ``["a b", ...]``, of the tokenizer saved in
    ``folder``. InputError: no or unreadable files, not byte-level BPE, or no special tokens."""
    folder = Path(folder)
    if (folder / "tokenizer.json").is_file():
        vocabulary, merges = _from_tokenizer_json(folder / "tokenizer.json")
        source = folder / "tokenizer.json"
    elif (folder / "vocab.json").is_file() and (folder / "merges.txt").is_file():
        vocabulary, merges = _from_vocab_and_merges(folder / "vocab.json", folder / "merges.txt")
        source = folder / "vocab.json"
    else:
        raise InputError(f"{folder}: no tokenizer (tokenizer.json, or vocab.json + merges.txt)")
    missing = [t for t in SPECIAL_TOKENS if t not in vocabulary]
    if missing:
        raise InputError(f"{source}: lacks RoBERTa's special token(s) {', '.join(missing)}")
    ids = sorted(int(i) for i in vocabulary.values())
    if ids != list(range(len(ids))):
        raise InputError(f"{source}: token ids are not 0..{len(ids) - 1} without gaps")
    return {str(k): int(v) for k, v in vocabulary.items()}, merges


def _tokenizer_json(vocabulary: dict, merges: list) -> dict:
    """transformers' own ``tokenizer.json`` layout for a RoBERTa tokenizer."""
    start, end = vocabulary["<s>"], vocabulary["</s>"]
    byte_level = dict(type="ByteLevel", add_prefix_space=False, trim_offsets=True, use_regex=True)
    specials = [t for t in ("<s>", "<pad>", "</s>", "<unk>", "<mask>") if t in vocabulary]
    return {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [{"id": vocabulary[t], "content": t, "single_word": False,
                          "lstrip": False, "rstrip": False, "normalized": False, "special": True}
                         for t in specials],
        "normalizer": None, "pre_tokenizer": byte_level,
        "post_processor": {"type": "RobertaProcessing", "sep": ["</s>", end], "cls": ["<s>", start],
                           "trim_offsets": True, "add_prefix_space": False},
        "decoder": dict(byte_level, add_prefix_space=True),
        "model": {
            "type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "",
            "end_of_word_suffix": "", "fuse_unk": False, "byte_fallback": False,
            "ignore_merges": False, "vocab": vocabulary, "merges": [m.split(" ") for m in merges],
        },
    }


def write_hf_tokenizer(folder, tokenizer, model_max_length: int) -> None:
    """Write a keras-hub ``RobertaTokenizer`` as the files ``AutoTokenizer`` loads."""
    folder = Path(folder)
    vocabulary = {str(k): int(v) for k, v in dict(tokenizer.vocabulary).items()}
    merges = [m for m in tokenizer.merges if m and not m.startswith("#version")]
    write_json(folder / "vocab.json", vocabulary)
    write_text(folder / "merges.txt", "#version: 0.2\n" + "\n".join(merges) + "\n")
    write_json(folder / "tokenizer.json", _tokenizer_json(vocabulary, merges))
    specials = {"bos_token": "<s>", "cls_token": "<s>", "eos_token": "</s>",
                "sep_token": "</s>", "pad_token": "<pad>", "mask_token": "<mask>"}
    if "<unk>" in vocabulary:
        specials["unk_token"] = "<unk>"
    write_json(folder / "tokenizer_config.json", {
        "tokenizer_class": "RobertaTokenizer", "add_prefix_space": False, "errors": "replace",
        "trim_offsets": True, "model_max_length": int(model_max_length), **specials})
    write_json(folder / "special_tokens_map.json", specials)
