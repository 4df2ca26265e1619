"""chexradi.reports.tokenizer: R2Gen's cleaning by hand, the vocabulary on the real R2Gen split, encode/decode,
truncation, unknown words, files and fingerprints."""
from __future__ import annotations

import json

import pytest

from chexradi.reports.tokenizer import BOS, EOS, SPECIAL_TOKENS, UNK, Tokenizer, clean_report
from conftest import shared


def test_clean_report_as_r2gen_does():
    text = 'The heart is normal.. No "focal" consolidation/effusion (right). Lungs: clear; XXXX intact!'
    assert clean_report(text) == ("the heart is normal . no focal consolidationeffusion right . "
                                  "lungs clear xxxx intact .")
    assert clean_report("") == "" and clean_report(" . . ") == ""
    assert clean_report("One sentence") == "one sentence ."


def test_vocabulary_encode_decode_and_truncation():
    train = ["no pleural effusion.", "no pneumothorax. no pleural effusion.", "no pleural effusion or pneumothorax."]
    tok = Tokenizer.fit(train, min_count=2, max_length=4)
    assert tok.itos[:4] == list(SPECIAL_TOKENS)
    assert tok.itos[4:] == sorted(["no", "pleural", "effusion", ".", "pneumothorax"])  # "or" seen once: unknown
    enc = tok.encode_report("No pleural effusion or cardiomegaly.")
    assert enc.ids[0] == tok.bos_id and enc.ids[-1] == tok.eos_id and len(enc.ids) == 4 + 2
    assert enc.truncated and enc.n_words == 6 and enc.n_unknown == 1  # "or" (kept), "cardiomegaly" (cut)
    assert tok.decode(enc.ids) == "no pleural effusion " + UNK
    full = Tokenizer(tok.itos[4:], max_length=60)
    assert full.decode(full.encode("no pneumothorax.")) == "no pneumothorax ."
    assert full.encode("") == [full.bos_id, full.eos_id]
    assert full.decode([full.bos_id, full.stoi["no"], full.eos_id, full.stoi["."]]) == "no"
    with pytest.raises(ValueError, match="outside this vocabulary"):
        full.decode([999])
    with pytest.raises(ValueError, match="no word occurs 5 times"):
        Tokenizer.fit(train, min_count=5)
    with pytest.raises(ValueError, match="special tokens"):
        Tokenizer([BOS, "a"])
    with pytest.raises(ValueError, match="more than once"):
        Tokenizer(["a", "a"])
    with pytest.raises(ValueError, match="max_length"):
        Tokenizer(["a"], max_length=0)


def test_files_and_fingerprints(tmp_path):
    a = Tokenizer(["no", "effusion", "."])
    b = Tokenizer(["no", "effusion", ".", "pneumothorax"])
    p = a.save(tmp_path / "tok.json")
    assert Tokenizer.load(p) == a and Tokenizer.load(p).fingerprint == a.fingerprint
    a.check_same(Tokenizer.load(p))
    with pytest.raises(ValueError, match=r"another vocabulary \(7 ids.*\(8 ids"):
        a.check_same(b)
    d = json.loads(p.read_text())
    d["words"].append("edited")
    (tmp_path / "bad.json").write_text(json.dumps(d))
    with pytest.raises(ValueError, match="fingerprint"):
        Tokenizer.load(tmp_path / "bad.json")
    (tmp_path / "other.json").write_text("{}")
    with pytest.raises(ValueError, match="not a chexradi tokenizer"):
        Tokenizer.load(tmp_path / "other.json")
    with pytest.raises(FileNotFoundError):
        Tokenizer.load(tmp_path / "missing.json")


def test_r2gen_iu_xray_vocabulary():
    """Fitted on R2Gen's 2,069 training reports: 760 words seen three times (+ 4 special tokens); the test reports
    are 32.5 words long on average, 27 of 590 longer than 60."""
    d = json.loads(shared("iu-xray-reports", "r2gen_annotation.json").read_text())
    tok = Tokenizer.fit([e["report"] for e in d["train"]])
    assert tok.vocab_size == 764
    lengths = [len(tok.tokens(e["report"])) for e in d["test"]]
    assert sum(lengths) / len(lengths) == pytest.approx(32.5, abs=0.05)
    assert sum(n > 60 for n in lengths) == 27
    # fitted on training reports only: a word seen only outside them is unknown
    train_words = {w for e in d["train"] for w in tok.tokens(e["report"])}
    unseen = sorted({w for e in d["test"] for w in tok.tokens(e["report"])} - train_words)
    assert unseen and all(tok.encode(w)[1] == tok.unk_id for w in unseen[:20])
