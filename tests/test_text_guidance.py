"""Report text as a teacher: the tandem and vkd sources, their objective modules, the data that carries reports,
the loop and CLI with them, the report branches on real IU X-ray reports, and bad input."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import chexradi
from chexradi.guidance import RoundContext, get_source, list_sources
from chexradi.guidance.objective import ImageFeatures, image_features
from chexradi.guidance.tandem import TextReference
from chexradi.guidance.text import ReportTokens, encode_split, pad_tokens, report_texts
from chexradi.guidance.variational import VariationalTeacher, cyclical_annealing
from chexradi.reports.tokenizer import Tokenizer
from conftest import SHARED_DATA

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("torch_one_thread")]   # slow: whole runs (make test-fast skips)

SPEC = "phantom:n_train=24,n_val=12,n_test=12,size=64"
KW = dict(model="resnet18", train={"epochs": 1, "batch_size": 12}, progress=False)
IU = SHARED_DATA / "iu-xray-reports"


def _tok() -> Tokenizer:
    return Tokenizer.fit(["the heart is normal. no effusion.", "small left effusion. the heart is large."] * 3,
                         min_count=1)


def _batch(tok: Tokenizer, texts: list, b: int = 4) -> dict:
    ids = [torch.tensor(tok.encode(t) if t else [], dtype=torch.long) for t in texts]
    torch.manual_seed(0)
    return {"image": torch.randn(b, 1, 32, 32), "target": torch.randint(0, 2, (b, 3)).float(),
            "tandem_tokens": pad_tokens(tok.pad_id)(ids), "vkd_tokens": pad_tokens(tok.pad_id)(ids)}


def _model():
    torch.manual_seed(0)
    return chexradi.nn.create_model("resnet18", num_classes=3, in_chans=1).eval()


# -- the objective modules -----------------------------------------------------------------------------------------
def test_text_reference_image_only_head_ignores_the_report_and_the_report_head_does_not():
    tok, model = _tok(), _model()
    m = TextReference(model.num_features, tok.vocab_size, 3, pad_id=tok.pad_id, stop_id=tok.stoi["."],
                      ignore_ids=(tok.bos_id, tok.eos_id), text_drop=0.0).eval()
    a = _batch(tok, ["the heart is normal. no effusion."] * 4)
    b = dict(a, tandem_tokens=_batch(tok, ["small left effusion. the heart is large."] * 4)["tandem_tokens"])
    with torch.no_grad():
        fa, fb = image_features(model, a["image"]), image_features(model, b["image"])
        assert torch.equal(m.head_logits("tandem", fa, a), m.head_logits("tandem", fb, b))
        assert not torch.allclose(m.head_logits("tandem_report", fa, a), m.head_logits("tandem_report", fb, b))
    with pytest.raises(ValueError, match="no 'fused' head"):
        m.head_logits("fused", fa, a)


def test_text_reference_heatmap_is_the_image_attention_in_0_1_for_every_class():
    tok, model = _tok(), _model()
    m = TextReference(model.num_features, tok.vocab_size, 3, pad_id=tok.pad_id, stop_id=tok.stoi["."])
    x = torch.randn(2, 1, 64, 64)
    maps, logits = m.heatmap_methods["tandem"](model, x)
    assert maps.shape == (2, 3, 64, 64) and logits.shape == (2, 3)
    assert float(maps.min()) >= 0.0 and float(maps.max()) == pytest.approx(1.0)
    assert torch.equal(maps[:, 0], maps[:, 2])  # one attention distribution, repeated per class
    assert m.training  # the heatmap is computed in eval mode and leaves the module as it was
    m.eval()
    with torch.no_grad():
        want = m.head_logits("tandem", image_features(model, x), {})
        a = m.attention(model.forward_features(x)).region_attention  # (2, 4, 4) at stride 16
    assert torch.allclose(logits, want)
    lo, hi = a.amin((1, 2), keepdim=True), a.amax((1, 2), keepdim=True)
    scaled = torch.nn.functional.interpolate(((a - lo) / (hi - lo)).unsqueeze(1), size=(64, 64), mode="bilinear")
    assert torch.allclose(maps[:, :1], scaled, atol=1e-6)


def test_text_reference_trains_the_backbone_through_its_term():
    tok, model = _tok(), _model().train()
    m = TextReference(model.num_features, tok.vocab_size, 3, pad_id=tok.pad_id, stop_id=tok.stoi["."])
    batch = _batch(tok, ["the heart is normal. no effusion.", "", "small left effusion.", "the heart is large."])
    loss, logits = m.loss(model, batch)
    loss.backward()
    assert torch.isfinite(loss) and logits.shape == (4, 3)
    assert model.backbone.conv1.weight.grad is not None and m.encoder.embed.weight.grad is not None
    assert set(m.last_terms) >= {"bce_image", "bce_tandem", "text_used", "loss"}


def test_vkd_annealing_steps_only_in_training_and_follows_the_schedule():
    tok, model = _tok(), _model()
    m = VariationalTeacher(model.num_features, tok.vocab_size, 3, pad_id=tok.pad_id, z_dim=8, hidden=16,
                           text_dim=16, heads=2, total_steps=8, cycles=2)
    batch = _batch(tok, ["the heart is normal."] * 4)
    betas = []
    for _ in range(6):
        betas.append(m.beta())
        m.terms(image_features(model, batch["image"]), batch, batch["target"])
    assert betas == [cyclical_annealing(i, 8, cycles=2) for i in range(6)] and int(m.step) == 6
    m.eval()
    m.terms(image_features(model, batch["image"]), batch, batch["target"])
    assert int(m.step) == 6


def test_vkd_kl_is_over_reports_only_and_image_only_heads_ignore_the_text():
    tok, model = _tok(), _model()
    m = VariationalTeacher(model.num_features, tok.vocab_size, 3, pad_id=tok.pad_id, z_dim=8, hidden=16,
                           text_dim=16, heads=2).eval()
    none = _batch(tok, ["", "", "", ""])
    with torch.no_grad():
        f = image_features(model, none["image"])
        _, _, named = m.terms(f, none, none["target"])
        assert float(named["kl"]) == 0.0 and float(named["text_used"]) == 0.0
        some = _batch(tok, ["the heart is normal.", "", "small left effusion.", ""])
        _, _, named = m.terms(f, some, some["target"])
        assert float(named["kl"]) > 0.0 and float(named["text_used"]) == 0.5
        assert torch.equal(m.head_logits("vkd", f, none), m.head_logits("vkd", f, some))
        rep_none, rep_some = m.head_logits("vkd_report", f, none), m.head_logits("vkd_report", f, some)
        assert torch.equal(rep_none[1], rep_some[1]) and not torch.allclose(rep_none[0], rep_some[0])
        m.inference = "samples"
        s1, s2 = m.head_logits("vkd", f, none), m.head_logits("vkd", f, none)
        assert torch.equal(s1, s2)  # a fixed seed per batch: evaluation repeats
        m.inference = "prior_mean"
        assert not torch.allclose(s1, m.head_logits("vkd", f, none))


def test_modules_refuse_bad_settings_and_batches_without_tokens():
    tok, model = _tok(), _model()
    with pytest.raises(ValueError, match="inference"):
        VariationalTeacher(8, 10, 3, pad_id=0, inference="median")
    with pytest.raises(ValueError, match="total_steps"):
        VariationalTeacher(8, 10, 3, pad_id=0, total_steps=2, cycles=4)
    with pytest.raises(ValueError, match="text_drop"):
        TextReference(8, 10, 3, pad_id=0, stop_id=4, text_drop=1.5)
    m = TextReference(model.num_features, tok.vocab_size, 3, pad_id=0, stop_id=tok.stoi["."])
    with pytest.raises(ValueError, match="tandem_tokens"):
        m.terms(ImageFeatures(torch.zeros(2, model.num_features, 2, 2), torch.zeros(2, model.num_features)),
                {"image": torch.zeros(2, 1, 8, 8)}, torch.zeros(2, 3))


# -- the source: reports, vocabulary, counts -------------------------------------------------------------------------
class _Reports(torch.utils.data.Dataset):
    def __init__(self, reports: list) -> None:
        self.reports = reports

    def __len__(self) -> int:
        return len(self.reports)

    def __getitem__(self, i: int) -> dict:
        return {"image": torch.zeros(1, 8, 8), "target": torch.zeros(3), "index": i}

    def report_at(self, i: int):
        return self.reports[i]


def _ctx(tmp_path: Path, parts: dict, **settings) -> RoundContext:
    src = get_source("tandem")
    s = {**src.defaults, **settings}
    src.check_settings(s)
    return RoundContext(k=0, parts=parts, class_names=["a", "b", "c"], run_dir=tmp_path, round_dir=tmp_path / "r0",
                        seed=0, settings=s, dist=None, progress=False, say=lambda m: None,
                        train={"epochs": 2, "batch_size": 4})


def test_the_text_sources_are_registered_static_and_need_no_masks():
    assert {"radiomics", "tandem", "vkd"} <= set(list_sources())
    for name in ("tandem", "vkd"):
        src = get_source(name)
        assert src.static and not src.needs_masks and src.name == name


def test_report_texts_reads_the_sections_and_falls_back_to_the_whole_text():
    from chexradi.data.reports_join import ReportText

    ds = _Reports([ReportText("1", "FINDINGS: a. IMPRESSION: b.", {"findings": "a.", "impression": "b."}),
                   ReportText("2", "INDICATION: cough. IMPRESSION: clear.", {"indication": "cough.",
                                                                              "impression": "clear."}),
                   ReportText("3", "just words", {}), None, "a plain string"])
    assert report_texts(ds) == ["a. b.", "clear.", "just words", None, "a plain string"]
    assert report_texts(ds, "impression") == ["b.", "clear.", "just words", None, "a plain string"]


def test_vocabulary_from_training_reports_only_and_bad_reports_are_counted(tmp_path):
    long = " ".join(["effusion"] * 150) + "."
    train = _Reports(["the heart is normal. no effusion."] * 3 + [None, "", "...", long])
    test = _Reports(["pneumothorax zebra quagga.", "the heart is normal.", None])
    src = get_source("tandem")
    ctx = _ctx(tmp_path, {"train": train, "val": test, "test": test}, min_count=1)
    src.setup(ctx)
    tok = Tokenizer.load(tmp_path / "tandem" / "tokenizer.json")
    assert "pneumothorax" not in tok.stoi and "effusion" in tok.stoi  # fitted on the training split alone
    prep = src.prepare(ctx)
    assert prep.record["train"] == {"reports": 4, "missing": 1, "empty": 2, "truncated": 1, "unknown": 0,
                                    "only_unknown": 0}
    assert prep.record["test"] == {"reports": 2, "missing": 1, "empty": 0, "truncated": 0, "unknown": 3,
                                   "only_unknown": 1}
    assert prep.data["total_steps"] == 2 * 2  # epochs x ceil(7 / 4)
    wrapped = src.wrap(train, prep, "train")
    assert wrapped[3]["tandem_tokens"].numel() == 0 and not bool(wrapped[3]["tandem_has_text"])
    assert wrapped[0]["tandem_tokens"].tolist() == tok.encode("the heart is normal. no effusion.")
    batch = src.collate(prep)["tandem_tokens"]([wrapped[i]["tandem_tokens"] for i in range(4)])
    assert batch.shape == (4, len(tok.encode("the heart is normal. no effusion."))) and (batch[3] == 0).all()


def test_no_report_in_training_and_another_vocabulary_on_resume_are_refused(tmp_path):
    src = get_source("tandem")
    with pytest.raises(ValueError, match="none of the 2 training images has a report"):
        src.setup(_ctx(tmp_path / "a", {"train": _Reports([None, None])}))
    ctx = _ctx(tmp_path / "b", {"train": _Reports(["the heart is normal."] * 3)}, min_count=1)
    src.setup(ctx)
    other = Tokenizer.fit(["a different vocabulary entirely"], min_count=1)
    other.save(tmp_path / "other.json")
    with pytest.raises(ValueError, match="other.json"):
        src.setup(_ctx(tmp_path / "b", {"train": _Reports(["the heart is normal."] * 3)},
                       vocabulary=str(tmp_path / "other.json")))


@pytest.mark.parametrize("name, key, value, match", [
    ("tandem", "text_drop", 1.5, r"text_drop"), ("tandem", "max_sentences", 0, r"max_sentences"),
    ("tandem", "vocabulary", "/no/such/tokenizer.json", r"vocabulary"), ("tandem", "sections", "", "sections"),
    ("vkd", "inference", "mode", r"inference"), ("vkd", "text_dim", 30, r"multiple"), ("vkd", "weight", 0, "weight"),
])
def test_bad_text_settings_name_the_setting(name, key, value, match):
    src = get_source(name)
    with pytest.raises(ValueError, match=match):
        src.check_settings({**src.defaults, key: value})
    with pytest.raises(ValueError, match=match):
        chexradi.iterate(SPEC, out="/nonexistent/never", guidance={"sources": [name]}, sources={name: {key: value}},
                         **KW)


def test_the_phantom_reports_are_the_ones_write_phantom_writes():
    from chexradi.data.phantom import generate
    from chexradi.data.phantom_reports import write_report
    from chexradi.data.sources import open_data

    splits = open_data("phantom:n_train=6,n_val=2,n_test=2,size=64,seed=3")
    ps = generate(10, size=64, seed=3)
    assert splits.train.report_at(0).text == write_report(ps.cases[0], seed=3).text
    assert splits.test.report_at(1).text == write_report(ps.cases[9], seed=3).text


def test_csv_text_columns_become_reports(tmp_path):
    from PIL import Image

    from chexradi.data.datasets import csv_dataset

    for n in ("a.png", "b.png"):
        Image.fromarray(np.zeros((16, 16), np.uint8)).save(tmp_path / n)
    (tmp_path / "t.csv").write_text("Image,Effusion,findings,impression\na.png,1,Small left effusion.,Effusion.\n"
                                    "b.png,0,,\n")
    sp = csv_dataset(tmp_path / "t.csv", size=32)
    assert sp.class_names == ("Effusion",)
    assert report_texts(sp.train) == ["Small left effusion. Effusion.", None]
    with pytest.raises(ValueError, match="report text"):
        csv_dataset(tmp_path / "t.csv", size=32, text_cols="notes")


# -- the loop and the CLI --------------------------------------------------------------------------------------------
def _numbers(h) -> list:
    return [(r["round"], r["mean_auc"], r["auc"], r["loc_iou"], r["sources"], r["val_score"]) for r in h.rounds]


def test_text_sources_guide_from_round_0_and_a_resumed_run_gives_the_same_numbers(tmp_path):
    kw = dict(KW, guidance={"sources": ["tandem", "vkd"]}, heatmap={"method": "tandem"})
    whole = chexradi.iterate(SPEC, rounds=2, out=tmp_path / "whole", **kw)
    r0 = whole.rounds[0]
    assert r0["guided"] and set(r0["mean_auc"]) == {"image", "tandem", "tandem_report", "vkd", "vkd_report"}
    assert r0["sources"]["tandem"]["train"]["reports"] == 24 and r0["sources"]["vkd"]["train"]["missing"] == 0
    chexradi.iterate(SPEC, rounds=1, out=tmp_path / "cut", **kw)  # interrupted after round 0 ...
    resumed = chexradi.iterate(SPEC, rounds=2, out=tmp_path / "cut", **kw)  # ... and resumed
    assert _numbers(resumed) == _numbers(whole)
    ckpt = torch.load(tmp_path / "whole" / "round_1" / "fit" / "last.pt", weights_only=False)
    assert int(ckpt["train_state"]["objective"]["sources.vkd.step"]) == 2  # the round's 1 epoch x 2 batches


def test_tandem_heatmaps_need_the_tandem_source(tmp_path):
    with pytest.raises(ValueError, match="tandem"):
        chexradi.iterate(SPEC, rounds=1, out=tmp_path / "x", heatmap={"method": "tandem"}, **KW)
    with pytest.raises(ValueError, match="tandem"):
        chexradi.iterate(SPEC, rounds=1, out=tmp_path / "y", heatmap={"method": "tandem"},
                         guidance={"enabled": False}, **KW)


def test_images_without_reports_train_without_the_text_term(tmp_path):
    from chexradi.data.sources import open_data

    splits = open_data(SPEC)
    keep = splits.train._reports
    splits.train._reports = [r if i % 3 else None for i, r in enumerate(keep)]  # every third has no report
    h = chexradi.iterate(splits, rounds=1, out=tmp_path / "run", guidance={"sources": ["vkd"]}, **KW)
    assert h.rounds[0]["sources"]["vkd"]["train"]["missing"] == 8 and h.rounds[0]["mean_auc"]["vkd"] is not None


def test_cli_iterate_with_text_guidance(tmp_path):
    from click.testing import CliRunner

    from chexradi.cli import cli as main

    (tmp_path / "c.yaml").write_text("tandem:\n  text_drop: 0\n")
    res = CliRunner().invoke(main, ["iterate", "--data", SPEC, "--model", "resnet18", "--rounds", "1", "--epochs",
                                    "1", "--batch-size", "12", "--guidance", "tandem", "--method", "tandem",
                                    "--config", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "run")])
    assert res.exit_code == 0, res.output
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["tandem"]["text_drop"] == 0 and run["heatmap"]["method"] == "tandem"
    h = chexradi.History.load(tmp_path / "run")
    assert "tandem" in h.rounds[0]["mean_auc"]
    helptext = CliRunner().invoke(main, ["iterate", "--help"]).output
    assert "tandem" in helptext and "vkd" in helptext and "iu_xray:DIR" in helptext


def test_compare_names_text_arms_by_their_sources_and_labels():
    from chexradi.loop.arms import arm_label

    assert arm_label({"enabled": True, "masks": "cam", "sources": ["radiomics"]}) == "cam"
    assert arm_label({"enabled": True, "masks": "truth", "sources": ["radiomics", "tandem"]}) == "truth+tandem"
    assert arm_label({"enabled": True, "masks": "cam", "sources": ["vkd"]}) == "vkd"
    assert arm_label({"enabled": False, "sources": ["vkd"]}) == "control"
    assert arm_label({"enabled": True, "sources": ["tandem"], "label": "tandem-drop0"}) == "tandem-drop0"


# -- the report branches on real IU X-ray reports --------------------------------------------------------------------
@pytest.mark.skipif(not (IU / "r2gen_annotation.json").is_file(), reason="../shared/data/iu-xray-reports is absent")
def test_the_report_branch_reads_real_iu_xray_reports(tmp_path):
    import sys

    from conftest import REPO

    sys.path.insert(0, str(REPO / "examples"))
    import text_branch_iu as tb

    texts, labels, names = tb.load(IU)
    assert [len(texts[s]) for s in ("train", "val", "test")] == [2069, 296, 590]
    y, p = tb.train_branch("report_transformer", texts, labels, seed=0, epochs=3, out=tmp_path / "fit")
    mean, lo, hi = tb.mean_auc_ci(y, p, n=200)
    assert mean > 0.75 and lo < mean < hi  # held-out reports: the branch reads the language, not a phantom grammar


# -- a user's local Hugging Face model as VKD's report encoder -------------------------------------------------------
@pytest.fixture
def tiny_bert(tmp_path):
    """A tiny BERT and its WordPiece tokenizer saved locally (random weights: nothing is downloaded)."""
    tf = pytest.importorskip("transformers", reason="transformers (the text extra) is not installed")
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", "the", "heart", "is", "normal", "no", "effusion",
             "small", "left", "large", "nodule", "mass", "pneumothorax", "cardiomegaly", "infiltrate", "lungs", "are",
             "clear", "pleural", "right", "upper", "lower", "zone", "seen", "possible", "moderate", "mild"]
    d = tmp_path / "bert"
    d.mkdir()
    (d / "vocab.txt").write_text("\n".join(words) + "\n")
    tf.BertTokenizerFast(vocab_file=str(d / "vocab.txt")).save_pretrained(str(d))
    torch.manual_seed(0)
    cfg = tf.BertConfig(vocab_size=len(words), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=128)
    tf.BertModel(cfg).save_pretrained(str(d))
    return d


def test_vkd_with_a_local_hugging_face_encoder(tmp_path, tiny_bert):
    h = chexradi.iterate(SPEC, rounds=1, out=tmp_path / "run", guidance={"sources": ["vkd"]},
                         sources={"vkd": {"text_encoder": str(tiny_bert), "z_dim": 8, "hidden": 16}}, **KW)
    r0 = h.rounds[0]
    assert r0["sources"]["vkd"]["train"]["reports"] == 24 and r0["mean_auc"]["vkd"] is not None
    saved = json.loads((tmp_path / "run" / "vkd" / "tokenizer.json").read_text())
    assert saved["path"] == str(tiny_bert) and saved["format"].startswith("chexradi-pretrained-tokenizer")
    state = torch.load(tmp_path / "run" / "round_0" / "fit" / "best.pt", weights_only=False)["objective"]
    assert any(k.startswith("sources.vkd.encoder.model.") for k in state)  # the BERT is fine-tuned with the rest


def test_a_missing_transformers_gives_the_install_hint(monkeypatch, tmp_path):
    import sys

    (tmp_path / "config.json").write_text("{}")
    monkeypatch.setitem(sys.modules, "transformers", None)
    src = get_source("vkd")
    with pytest.raises(ImportError, match=r"chexradi\[text\]"):
        src.check_settings({**src.defaults, "text_encoder": str(tmp_path)})
    with pytest.raises(ValueError, match="text_encoder"):
        src.check_settings({**src.defaults, "text_encoder": str(tmp_path / "nowhere")})


def test_text_reference_is_an_objective_for_fit(tmp_path):
    from chexradi.data.sources import open_data
    from chexradi.guidance import KeyCollate, TextReference
    from chexradi.train import fit, predict

    splits = open_data(SPEC)
    tok = Tokenizer.fit(report_texts(splits.train), min_count=1)
    data = {s: ReportTokens(ds, encode_split(report_texts(ds), tok)[0], "tandem")
            for s, ds in (("train", splits.train), ("val", splits.val))}
    collate = KeyCollate({"tandem_tokens": pad_tokens(tok.pad_id)})
    torch.manual_seed(0)
    model = chexradi.nn.create_model("resnet18", num_classes=6, in_chans=1)
    obj = TextReference(model.num_features, tok.vocab_size, 6, pad_id=tok.pad_id, stop_id=tok.stoi["."],
                        ignore_ids=(tok.bos_id, tok.eos_id))
    res = fit(model, data["train"], data["val"], epochs=1, batch_size=12, objective=obj, collate_fn=collate,
              out=tmp_path / "fit", progress=False, device="cpu")
    assert res.best_epoch == 1
    p = predict(model, data["val"], objective=obj, collate_fn=collate, device="cpu")  # the image-only "tandem" head
    assert p.probs.shape == (12, 6)
