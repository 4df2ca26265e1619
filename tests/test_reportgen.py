"""Report generation: decoding, the model, training runs (resume), evaluation, the CLI and bad input."""
from __future__ import annotations

import csv
import itertools
import json
import math
import shutil

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from chexradi.cli import cli
from chexradi.data.sources import open_data
from chexradi.reportgen import (StudyDataset, beam_search, collate_studies, evaluate_run, greedy_decode,
                                load_generator, show_attend_tell, train_report_generator)
from chexradi.reportgen.decode import length_normalised
from chexradi.reports.tokenizer import Tokenizer

pytestmark = pytest.mark.slow   # whole runs and subprocesses (make test-fast skips them)

PAD, BOS, EOS, A, B, C = 0, 1, 2, 3, 4, 5
TINY = "phantom:n_train=16,n_val=6,n_test=6,size=64"
SMALL = {"encoder": "resnet18", "hidden": 32, "embed_dim": 16, "feature_dim": 32, "batch_size": 8, "epochs": 2,
         "select": "loss"}


# -- decoding on hand-built decoders -------------------------------------------------------------------
def table_step(table: dict[int, dict[int, float]], vocab: int = 6):
    """A Markov decoder: the next-token distribution depends on the last token only (probabilities by hand)."""
    logp = torch.full((vocab, vocab), -1e9)
    for prev, nxt in table.items():
        for tok, p in nxt.items():
            logp[prev, tok] = math.log(p)

    def step(tokens, state):
        return logp[tokens], state

    return step


# From <bos>: A 0.6, B 0.4. After A: <eos> 0.4, A 0.3, B 0.3. After B: <eos> 0.9, C 0.1. After C: <eos> 1.
TOY = {BOS: {A: 0.6, B: 0.4}, A: {EOS: 0.4, A: 0.3, B: 0.3}, B: {EOS: 0.9, C: 0.1}, C: {EOS: 1.0}}


def brute_force_best(table, max_length):
    best, best_p = None, -1.0
    for n in range(1, max_length + 1):
        for seq in itertools.product([A, B, C], repeat=n - 1):
            p, prev = 1.0, BOS
            for t in (*seq, EOS):
                p *= table.get(prev, {}).get(t, 0.0)
                prev = t
            if p > best_p:
                best, best_p = list(seq), p
    return best, best_p


def test_beam_search_finds_the_known_best_sequence_greedy_does_not():
    step = table_step(TOY)
    state = (torch.zeros(1, 1),)
    best, p = brute_force_best(TOY, 5)
    assert best == [B] and p == pytest.approx(0.36)  # by hand: 0.4 * 0.9; greedy's A<eos> is 0.6 * 0.4 = 0.24
    g = greedy_decode(step, state, 1, bos_id=BOS, eos_id=EOS, max_length=5)
    assert g.ids == [[A]] and g.log_prob[0] == pytest.approx(math.log(0.24), abs=1e-5)
    b = beam_search(step, state, 1, bos_id=BOS, eos_id=EOS, beam_size=2, max_length=5)
    assert b.ids == [[B]] and b.log_prob[0] == pytest.approx(math.log(0.36)) and b.finished == [True]


def test_beam_search_is_batched_and_rows_stay_with_their_items():
    """Two items with different tables (through the state) decode as each would alone."""
    other = {BOS: {C: 0.9, A: 0.1}, C: {EOS: 0.2, B: 0.8}, B: {EOS: 1.0}, A: {EOS: 1.0}}
    s1, s2 = table_step(TOY), table_step(other)

    def step(tokens, state):
        which = state[0][:, 0]
        lp = torch.where(which[:, None] == 0, s1(tokens, state)[0], s2(tokens, state)[0])
        return lp, state

    state = (torch.tensor([[0.0], [1.0]]),)
    both = beam_search(step, state, 2, bos_id=BOS, eos_id=EOS, beam_size=2, max_length=5)
    assert both.ids == [[B], [C, B]]  # other: C B <eos> = 0.9 * 0.8 = 0.72
    assert both.log_prob[1] == pytest.approx(math.log(0.72))


def test_length_penalty_follows_gnmt():
    # short: <eos> right away (p 0.5); long: A A A <eos> (0.5 * 0.9^2 * 0.9 ~ 0.36): alpha decides
    table = {BOS: {EOS: 0.5, A: 0.5}, A: {A: 0.9, EOS: 0.1}}
    step = table_step(table)
    state = (torch.zeros(1, 1),)
    plain = beam_search(step, state, 1, bos_id=BOS, eos_id=EOS, beam_size=2, max_length=3)
    assert plain.ids == [[]]
    long = beam_search(step, state, 1, bos_id=BOS, eos_id=EOS, beam_size=2, max_length=3, length_penalty=3.0)
    # finished candidates: [] (0.5), [A] (0.05), [A, A] (0.045), and [A, A, A] cut at max_length (0.405)
    cands = {(): (math.log(0.5), 1), (A,): (math.log(0.05), 2), (A, A): (math.log(0.045), 3),
             (A, A, A): (math.log(0.405), 3)}
    want = max(cands, key=lambda k: length_normalised(cands[k][0], cands[k][1], 3.0))
    assert long.ids == [list(want)] and want == (A, A, A)
    assert long.finished == [False]
    assert long.score[0] == pytest.approx(length_normalised(math.log(0.405), 3, 3.0))


def test_trigram_blocking():
    loop = {BOS: {A: 1.0}, A: {B: 0.9, EOS: 0.1}, B: {A: 0.9, EOS: 0.1}}
    step = table_step(loop)
    state = (torch.zeros(1, 1),)
    free = greedy_decode(step, state, 1, bos_id=BOS, eos_id=EOS, max_length=8)
    assert free.ids == [[A, B, A, B, A, B, A, B]]
    greedy = greedy_decode(step, state, 1, bos_id=BOS, eos_id=EOS, max_length=8, block_trigrams=True)
    # <bos> A B A B, then A would repeat "A B A": blocked, so <eos> (by hand)
    assert greedy.ids == [[A, B, A, B]]
    beam = beam_search(step, state, 1, bos_id=BOS, eos_id=EOS, beam_size=2, max_length=8, block_trigrams=True)
    assert beam.ids == [[A]]  # A <eos> = 0.1 beats A B <eos> = 0.09 and every longer report
    for dec in (greedy, beam):
        ids = [BOS, *dec.ids[0]]
        grams = [tuple(ids[i:i + 3]) for i in range(len(ids) - 2)]
        assert len(grams) == len(set(grams))


def test_bad_decoding_settings_are_named():
    step = table_step(TOY)
    with pytest.raises(ValueError, match="beam_size"):
        beam_search(step, (torch.zeros(1, 1),), 1, bos_id=BOS, eos_id=EOS, beam_size=0)
    with pytest.raises(ValueError, match="length_penalty"):
        beam_search(step, (torch.zeros(1, 1),), 1, bos_id=BOS, eos_id=EOS, length_penalty=float("nan"))


# -- the model ------------------------------------------------------------------------------------
def small_model(**kw):
    torch.manual_seed(0)
    args = dict(vocab_size=40, encoder="resnet18", class_names=["a", "b", "c"], hidden=32, embed_dim=16,
                feature_dim=32, att_dim=16, label_dim=8)
    args.update(kw)
    return show_attend_tell(**args).eval()


@pytest.mark.parametrize("labels", [False, True])
def test_beam_width_one_is_greedy_on_the_generator(labels):
    model = small_model(label_conditioning=labels)
    images = torch.randn(8, 2, 1, 64, 64)
    views = torch.tensor([[True, True], [True, False]] * 4)
    with torch.no_grad():  # a bias on <eos> that makes it the first word of about half the studies
        lp, _ = model.step(torch.ones(8, dtype=torch.long), model.initial_state(model.encode(images, views)))
        margin = lp[:, 3:].max(1).values - lp[:, 2]
    m = margin.sort().values
    base = model.out.bias[2].item()
    mixed = 0
    for eos_bias in (0.0, float(m[3] + m[4]) / 2, float(m[1] + m[2]) / 2):  # between studies: no exact tie
        with torch.no_grad():
            model.out.bias[2] = base + eos_bias  # some studies end early, others run to max_length
        for block in (False, True):
            enc = model.encode(images, views)
            g = greedy_decode(model.step, model.initial_state(enc), 8, bos_id=1, eos_id=2, max_length=12,
                              block_trigrams=block)
            b = beam_search(model.step, model.initial_state(enc), 8, bos_id=1, eos_id=2, beam_size=1,
                            max_length=12, block_trigrams=block)
            assert b.ids == g.ids and b.finished == g.finished
            assert np.allclose(b.log_prob, g.log_prob, atol=1e-4)
            assert all(t not in (0, 1) for ids in g.ids for t in ids)  # <pad> and <bos> are never generated
            mixed += 0 < sum(g.finished) < 8
    assert mixed  # the early-finish and dead-row paths were exercised


def test_padding_views_are_masked_and_teacher_forcing_matches_steps():
    model = small_model()
    x = torch.randn(1, 2, 1, 64, 64)
    y = x.clone()
    y[0, 1] = torch.randn(1, 64, 64) * 5  # the padded view's content must not matter
    views = torch.tensor([[True, False]])
    tokens = torch.tensor([[1, 5, 6, 7, 2]])
    lx, _ = model(x, tokens, views)
    ly, _ = model(y, tokens, views)
    assert torch.allclose(lx, ly, atol=1e-6)
    lz, _ = model(x, tokens, torch.tensor([[True, True]]))
    assert not torch.allclose(lx, lz)
    # one decoding step at a time gives the teacher-forced log-probabilities
    state = model.initial_state(model.encode(x, views))
    for t in range(tokens.shape[1] - 1):
        lp, state = model.step(tokens[:, t], state)
        assert torch.allclose(lp[:, 2:], torch.log_softmax(lx[:, t], -1)[:, 2:], atol=1e-5)
        assert torch.isinf(lp[:, :2]).all()  # <pad> and <bos> are never generated


def test_frozen_encoder_stays_fixed_and_fine_tuning_moves_it():
    for freeze in (True, False):
        model = small_model(freeze_encoder=freeze).train()
        before = {k: v.clone() for k, v in model.encoder.state_dict().items()}
        opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
        logits, _ = model(torch.randn(2, 2, 1, 64, 64), torch.tensor([[1, 5, 6, 2], [1, 7, 2, 0]]))
        logits.sum().backward()
        opt.step()
        after = model.encoder.state_dict()
        same = all(torch.equal(before[k], after[k]) for k in before)
        assert same is freeze  # frozen: weights and batch-norm statistics untouched


def test_padding_views_never_reach_a_fine_tuned_encoder():
    model = small_model(freeze_encoder=False, dropout=0.0).train()
    x = torch.randn(2, 2, 1, 64, 64)
    views = torch.tensor([[True, False], [True, True]])
    y = x.clone()
    y[0, 1] = 7.0  # the padded view of study 0
    state = {k: v.clone() for k, v in model.encoder.state_dict().items()}
    lx, _ = model(x, torch.tensor([[1, 5, 6, 2], [1, 7, 2, 0]]), views)
    after_x = {k: v.clone() for k, v in model.encoder.state_dict().items()}
    model.encoder.load_state_dict(state)
    ly, _ = model(y, torch.tensor([[1, 5, 6, 2], [1, 7, 2, 0]]), views)
    assert torch.allclose(lx, ly, atol=1e-6)  # batch-norm batch statistics: real views only
    assert all(torch.equal(after_x[k], v) for k, v in model.encoder.state_dict().items())


def test_label_conditioning_uses_the_classifier_probabilities():
    model = small_model(label_conditioning=True)
    x = torch.randn(1, 1, 1, 64, 64)
    tokens = torch.tensor([[1, 5, 6, 2]])
    base, _ = model(x, tokens)
    with torch.no_grad():
        model.encoder.head.bias += 5.0  # other predicted labels, same regions
    moved, _ = model(x, tokens)
    assert not torch.allclose(base, moved)
    plain = small_model(label_conditioning=False)
    p0, _ = plain(x, tokens)
    with torch.no_grad():
        plain.encoder.head.bias += 5.0
    p1, _ = plain(x, tokens)
    assert torch.allclose(p0, p1)


# -- studies ---------------------------------------------------------------------------------------
class _Hidden:
    """The phantom with some reports missing and one empty."""

    def __init__(self, ds, missing=(), empty=()):
        self.ds, self.missing, self.empty = ds, set(missing), set(empty)

    def __len__(self):
        return len(self.ds)

    def __getitem__(self, i):
        return self.ds[i]

    @property
    def targets(self):
        return self.ds.targets

    @property
    def class_names(self):
        return self.ds.class_names

    def report_at(self, i):
        if i in self.missing:
            return None
        return "" if i in self.empty else self.ds.report_at(i)


def test_images_without_reports_are_counted_and_left_out():
    splits = open_data(TINY)
    tok = Tokenizer.fit([splits.train.report_at(i).findings for i in range(len(splits.train))], min_count=1)
    ds = StudyDataset(_Hidden(splits.train, missing=(0, 3), empty=(5,)), tok, split="train")
    assert ds.counts["missing"] == 2 and ds.counts["empty"] == 1 and len(ds) == len(splits.train) - 3
    assert 0 not in [s.views[0] for s in ds.studies]
    with pytest.raises(ValueError, match=r"1 reference report\(s\) of the test split have no words: test-5"):
        StudyDataset(_Hidden(splits.train, empty=(5,)), tok, split="test", on_empty="fail")
    batch = collate_studies(tok.pad_id)([ds[0], ds[1]])
    assert batch["images"].shape == (2, 2, 1, 64, 64) and batch["views"].tolist() == [[True, False]] * 2
    assert batch["tokens"][0, 0] == tok.bos_id


def test_studies_group_views_by_report_id():
    from chexradi.data.reports_join import ReportText

    class TwoViews(_Hidden):
        def report_at(self, i):
            return ReportText(id=f"r{i // 2}", text="t", sections={"findings": f"finding {i // 2} ."})

    splits = open_data(TINY)
    tok = Tokenizer(["finding", "."] + [str(k) for k in range(8)], max_length=10)
    ds = StudyDataset(TwoViews(splits.train), tok, views=2)
    assert len(ds) == 8 and ds.studies[3].views == [6, 7] and ds.study_ids[3] == "r3"
    assert torch.equal(ds[3]["images"][1], splits.train[7]["image"])
    three = StudyDataset(TwoViews(splits.train), tok, views=1)
    assert three.counts["extra_views"] == 8 and three[0]["views"].tolist() == [True]


# -- runs ------------------------------------------------------------------------------------------
def test_a_run_killed_mid_training_resumes_to_the_same_weights(tmp_path):
    settings = dict(SMALL, epochs=3)
    full = train_report_generator(TINY, tmp_path / "full", progress=False, **settings)

    class Killed(Exception):
        pass

    def kill(record):
        if record["epoch"] == 2:
            raise Killed

    with pytest.raises(Killed):
        train_report_generator(TINY, tmp_path / "cut", progress=False, on_epoch_end=kill, **settings)
    assert json.loads((tmp_path / "cut" / "fit" / "history.json").read_text())["history"][-1]["epoch"] == 2
    resumed = train_report_generator(TINY, tmp_path / "cut", progress=False, **settings)
    assert [h["train_loss"] for h in resumed.history] == [h["train_loss"] for h in full.history]
    a, _, _ = load_generator(tmp_path / "full")
    b, _, _ = load_generator(tmp_path / "cut")
    sa, sb = a.state_dict(), b.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    with pytest.raises(ValueError, match="other settings.*hidden: 32 in the run, 64 now"):
        train_report_generator(TINY, tmp_path / "cut", progress=False, **dict(settings, hidden=64))


def test_evaluation_and_a_tokenizer_that_is_not_the_checkpoints(tmp_path):
    run = tmp_path / "run"
    train_report_generator(TINY, run, progress=False, **SMALL)
    res = evaluate_run(run, beams=(1, 2), meteor=False, progress=False)
    assert set(res) == {"beam1", "beam2"}
    row = res["beam2"]["row"]
    assert set(row) >= {"BLEU_1", "BLEU_4", "METEOR", "ROUGE_L", "CIDEr", "CE_F1"} and row["METEOR"] is None
    with open(run / "eval" / "test_beam2_reports.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 6 and rows[0]["reference"]
    # read back, not recomputed, with the same settings and checkpoint
    (run / "eval" / "test_beam1_reports.csv").unlink()
    again = evaluate_run(run, beams=(1,), meteor=False, progress=False)
    assert again["beam1"] == res["beam1"] and not (run / "eval" / "test_beam1_reports.csv").exists()
    # a new best.pt (training went on) is evaluated again
    best = run / "fit" / "best.pt"
    best.write_bytes(best.read_bytes())
    evaluate_run(run, beams=(1,), meteor=False, progress=False)
    assert (run / "eval" / "test_beam1_reports.csv").exists()
    # another vocabulary in the run folder: refused with both fingerprints
    Tokenizer(["other", "words"]).save(run / "tokenizer.json")
    with pytest.raises(ValueError, match="another vocabulary"):
        evaluate_run(run, beams=(1,), meteor=False, progress=False)
    with pytest.raises(ValueError, match="not the vocabulary"):
        train_report_generator(TINY, run, progress=False, **SMALL)


def test_cli_train_evaluate_generate(tmp_path):
    run = tmp_path / "rg"
    runner = CliRunner()
    args = ["reportgen", "train", "--data", TINY, "--out", str(run), "--encoder", "resnet18", "--epochs", "1",
            "--batch-size", "8", "--select", "loss", "-s", "hidden:32", "-s", "embed_dim:16", "-s", "feature_dim:32",
            "-q"]
    r = runner.invoke(cli, args)
    assert r.exit_code == 0, r.output
    assert "16 studies from 16 images" in r.output
    r = runner.invoke(cli, args)  # re-running resumes (finished: nothing to train)
    assert r.exit_code == 0, r.output
    r = runner.invoke(cli, ["reportgen", "evaluate", str(run), "--beam", "1", "--beam", "3", "-q"])
    assert r.exit_code == 0, r.output
    assert "greedy" in r.output and "beam 3" in r.output and "CE_F1" in r.output
    from chexradi.data.phantom import write_phantom

    imgs = write_phantom(tmp_path / "ph", n=2, size=64)
    png = sorted((tmp_path / "ph").rglob("*.png"))[:2]
    assert png, imgs
    out = tmp_path / "reports.csv"
    r = runner.invoke(cli, ["reportgen", "generate", str(run / "fit" / "best.pt"), str(png[0]),
                            f"{png[0]},{png[1]}", "--beam", "3", "--out", str(out)])
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader(out.open()))
    assert [r_["study"] for r_ in rows] == ["1", "2"] and rows[1]["images"].count(";") == 1
    other = tmp_path / "other.json"
    Tokenizer(["x", "y"]).save(other)
    r = runner.invoke(cli, ["reportgen", "generate", str(run), str(png[0]), "--tokenizer", str(other)])
    assert r.exit_code == 2 and "another vocabulary" in r.output
    r = runner.invoke(cli, ["reportgen", "generate", str(run), str(tmp_path / "missing.png")])
    assert r.exit_code == 2 and "missing.png does not exist" in r.output
    r = runner.invoke(cli, ["reportgen", "generate", str(run), ","])
    assert r.exit_code == 2 and "study 1 names no image" in r.output
    shutil.rmtree(run / "fit")
    r = runner.invoke(cli, ["reportgen", "evaluate", str(run)])
    assert r.exit_code == 2 and "has not finished an epoch" in r.output


def test_r2gen_studies_bring_their_second_view(tmp_path):
    from PIL import Image

    from chexradi.data.sources import iu_xray_splits

    ann = {"train": [], "val": [], "test": []}
    rng = np.random.default_rng(0)
    for k, split in enumerate(["train", "train", "val", "test"]):
        rid = f"CXR{k}_IM-{k}"
        for v in (0, 1):
            (tmp_path / "images" / rid).mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 255, (48, 48), dtype=np.uint8)).save(tmp_path / "images" / rid / f"{v}.png")
        ann[split].append({"id": rid, "report": f"The heart is normal {k}. No effusion.", "split": split,
                           "image_path": [f"{rid}/0.png", f"{rid}/1.png"]})
    (tmp_path / "annotation.json").write_text(json.dumps(ann))
    splits = iu_xray_splits(tmp_path, size=32, cache_dir=tmp_path / "cache")
    tok = Tokenizer.fit(["the heart is normal . no effusion ."], min_count=1)
    ds = StudyDataset(splits.train, tok)
    assert len(ds) == 2 and len(ds.studies[0].views) == 2 and ds.counts["images"] == 2
    item = ds[1]
    assert item["views"].tolist() == [True, True]
    second = splits.train.load_file(tmp_path / "images" / "CXR1_IM-1" / "1.png")
    assert np.array_equal(item["images"][1].numpy(), second) and not torch.equal(item["images"][0], item["images"][1])


def test_bad_settings_are_named(tmp_path):
    with pytest.raises(ValueError, match="unknown report-generation setting"):
        train_report_generator(TINY, tmp_path / "x", beam=3)
    with pytest.raises(ValueError, match="select must be one of"):
        train_report_generator(TINY, tmp_path / "x", select="BLEU")
    with pytest.raises(ValueError, match="randomly initialised encoder"):
        train_report_generator(TINY, tmp_path / "x", encoder="resnet18", freeze_encoder=True)
    with pytest.raises(ValueError, match="untrained classifier head"):
        train_report_generator(TINY, tmp_path / "x", encoder="resnet18", freeze_encoder=True, weights="w.pth",
                               label_conditioning=True)
    assert not (tmp_path / "x" / "run.json").exists()  # a refused first run leaves no record
    with pytest.raises(ValueError, match="has no reports"):
        StudyDataset(torch.utils.data.TensorDataset(torch.zeros(2, 1, 8, 8)))
