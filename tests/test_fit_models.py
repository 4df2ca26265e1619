"""chexradi.train.fit for a model that is not an image classifier, and the model registry.

The model is ``toy_text.BagOfTokens`` on variable-length token sequences batched by
a ``collate_fn``; what is checked: it learns (against a shuffled-label negative
control), every evaluator selects what it says, resume reproduces the
uninterrupted run weight for weight, early stopping, AMP, checkpoints that load
by registered name, and the errors for what cannot work.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from toy_text import BagOfTokens, TokenDataset, TokenObjective, pad_collate

from chexradi.nn import create_model, list_models, load_model, model_spec, read_checkpoint, register_model
from chexradi.nn import registry
from chexradi.train import ClassifierEvaluator, Evaluation, LossEvaluator, fit

pytestmark = pytest.mark.usefixtures("torch_one_thread")

TRAIN = TokenDataset(192, seed=0)
VAL = TokenDataset(96, seed=1)
KEYS = ("tokens", "target")
FIT = dict(epochs=6, batch_size=16, lr=0.05, seed=0, patience=None, device="cpu", progress=False)


def text_fit(model=None, train=TRAIN, **kwargs):
    args = dict(FIT, objective=TokenObjective(), collate_fn=pad_collate,
                evaluator=ClassifierEvaluator(required_keys=KEYS))
    args.update(kwargs)
    if model is None:
        torch.manual_seed(0)  # the same initial weights in every call
        model = BagOfTokens()
    return model, fit(model, train, VAL, **args)


def weights(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def same_weights(a, b) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def no_seconds(history):
    return [{k: v for k, v in h.items() if k != "seconds"} for h in history]


@pytest.fixture(scope="module")
def learned():
    return text_fit()


# ----------------------------------------------------------------------------- learning, evaluators

def test_a_token_model_learns_through_a_collate_function(learned):
    _, result = learned
    assert result.criterion == "val_mean_auc"
    assert result.best_score > 0.9, result.history  # chance is 0.5; see the shuffled-label control
    assert result.history[0]["val_mean_auc"] < result.best_score
    assert len(result.history[0]["val_auc"]) == 2
    settings = result.history[-1]
    assert settings["steps"] == FIT["epochs"] * math.ceil(len(TRAIN) / FIT["batch_size"])


def test_shuffled_labels_do_not_learn():
    """Negative control: the same run with the training targets permuted across items stays near chance."""
    rng = np.random.default_rng(7)
    perm = rng.permutation(len(TRAIN))
    shuffled = TokenDataset(len(TRAIN), seed=0)
    shuffled.items = [{"tokens": it["tokens"], "target": TRAIN.items[int(j)]["target"]}
                      for it, j in zip(TRAIN.items, perm)]
    _, result = text_fit(train=shuffled)
    best_seen = max(h["val_mean_auc"] for h in result.history)
    assert best_seen < 0.7, result.history


def test_loss_evaluator_selects_the_lowest_validation_loss(tmp_path):
    model, result = text_fit(evaluator=LossEvaluator(required_keys=KEYS), out=tmp_path)
    losses = [h["val_loss"] for h in result.history]
    assert result.criterion == "-val_loss" and all(h["criterion"] == "-val_loss" for h in result.history)
    assert "val_mean_auc" not in result.history[0]
    assert result.best_epoch == int(np.argmin(losses)) + 1
    assert result.best_score == pytest.approx(-min(losses), rel=1e-12)
    best = read_checkpoint(tmp_path / "best.pt")
    assert best["epoch"] == result.best_epoch and best["criterion"] == "-val_loss"
    assert same_weights(best["state_dict"], weights(model))
    assert best["meta"]["fit"]["evaluator"] == "LossEvaluator"
    assert best["meta"]["fit"]["collate_fn"] == "pad_collate"


def test_loss_evaluator_weighs_a_short_last_batch_by_its_items(learned):
    """val_loss is the per-item mean whatever the batch size (96 = 6 x 16 = 4 x 20 + 16)."""
    model, _ = learned
    objective, ev = TokenObjective(), LossEvaluator(required_keys=KEYS)
    with torch.no_grad():
        full = pad_collate(VAL.items)
        expected = float(objective.loss(model, full)[0])
        for size in (16, 20, 96):
            pieces = [ev.step(model, objective, pad_collate(VAL.items[i:i + size]))
                      for i in range(0, len(VAL), size)]
            assert ev.finish(pieces).metrics["val_loss"] == pytest.approx(expected, rel=1e-6)


@dataclass
class AccuracyEvaluator:
    """A third-party evaluator: exact-match accuracy of the thresholded logits."""

    required_keys: tuple = KEYS

    def step(self, model, objective, batch):
        pred = objective.logits(model, batch) > 0
        return int((pred == batch["target"].bool()).all(1).sum()), len(pred)

    def finish(self, pieces):
        acc = sum(p[0] for p in pieces) / sum(p[1] for p in pieces)
        return Evaluation({"val_accuracy": acc}, acc, "val_accuracy", f"val accuracy {acc:.3f}")


def test_any_evaluator_plugs_in_and_selects_by_its_score():
    model, result = text_fit(evaluator=AccuracyEvaluator(), epochs=4)
    accs = [h["val_accuracy"] for h in result.history]
    assert result.criterion == "val_accuracy" and [h["score"] for h in result.history] == accs
    assert result.best_epoch == int(np.argmax(accs)) + 1  # the first of equal best scores
    assert max(accs) > 0.4  # exact match of two balanced labels by chance: 0.25


@dataclass
class OddEvaluator:
    """An evaluator returning what ``make(epoch)`` gives, to test what fit accepts."""

    make: object
    required_keys: tuple = KEYS
    calls: int = 0

    def step(self, model, objective, batch):
        return 0

    def finish(self, pieces):
        self.calls += 1
        return self.make(self.calls)


def test_evaluator_metrics_are_recorded_as_json_and_nan_as_null(tmp_path):
    ev = OddEvaluator(lambda e: Evaluation({"val_nan": float("nan"), "val_np": np.float32(0.5),
                                            "val_list": np.array([1.0, np.inf])}, float(e), "epoch_no"))
    _, result = text_fit(evaluator=ev, epochs=2, out=tmp_path)
    assert result.history[1]["val_nan"] is None and result.history[1]["val_np"] == 0.5
    assert result.history[1]["val_list"] == [1.0, None] and result.best_epoch == 2
    assert (tmp_path / "history.json").is_file()


@pytest.mark.parametrize("make, error, match", [
    (lambda e: Evaluation({}, float("nan"), "x"), FloatingPointError, r"validation score \(x\) is nan"),
    (lambda e: Evaluation({"epoch": 99}, 1.0, "x"), ValueError, r"\['epoch'\] are keys fit writes itself"),
    (lambda e: {"score": 1.0}, ValueError, "must return a chexradi.train.Evaluation"),
    (lambda e: Evaluation({"val_obj": object()}, 1.0, "x"), ValueError, "the history \\(JSON\\) cannot hold"),
])
def test_what_an_evaluator_must_return(make, error, match, tmp_path):
    with pytest.raises(error, match=match):
        text_fit(evaluator=OddEvaluator(make), epochs=1, out=tmp_path)


def test_the_default_evaluator_reads_the_objectives_keys():
    _, result = text_fit(evaluator=None, epochs=1)
    assert result.criterion == "val_mean_auc"


def test_batch_len_counts_items_not_transposed_fields():
    from chexradi.train.data import _batch_len

    batch = {"names": [("a", "b", "c"), ("d", "e", "f")], "tokens": torch.zeros(4, 7)}
    assert _batch_len(batch, ("names",)) == 4
    assert _batch_len({"ids": ["a", "b", "c"]}, ("ids",)) == 3
    with pytest.raises(ValueError, match="cannot tell how many items"):
        _batch_len({"pair": (torch.zeros(3), torch.zeros(3))[0:0]}, ("pair",))


# ----------------------------------------------------------------------------- resume, early stop, AMP

def test_an_interrupted_text_run_resumes_to_the_uninterrupted_one(tmp_path):
    class Stop(Exception):
        pass

    def stop_after_two(record):
        if record["epoch"] == 2:
            raise Stop

    full_model, full = text_fit(epochs=4, out=tmp_path / "full")
    with pytest.raises(Stop):
        text_fit(epochs=4, out=tmp_path / "cut", on_epoch_end=stop_after_two)
    assert [h["epoch"] for h in read_checkpoint(tmp_path / "cut" / "last.pt")["train_state"]["history"]] == [1, 2]
    resumed_model, resumed = text_fit(epochs=4, out=tmp_path / "cut")
    assert same_weights(weights(resumed_model), weights(full_model))
    assert no_seconds(resumed.history) == no_seconds(full.history)
    assert resumed.best_epoch == full.best_epoch


def test_resume_refuses_another_evaluator(tmp_path):
    text_fit(epochs=1, out=tmp_path)
    with pytest.raises(ValueError, match="evaluator"):
        text_fit(epochs=1, out=tmp_path, evaluator=LossEvaluator(required_keys=KEYS))


def test_early_stopping_on_the_evaluators_score():
    _, result = text_fit(patience=1, min_delta=10.0, epochs=5)
    assert result.stopped_early and len(result.history) == 2 and result.best_epoch == 1


def test_amp_on_cpu_trains_a_token_model_in_bfloat16():
    _, result = text_fit(amp=True, epochs=2)
    assert result.amp and result.history[-1]["train_loss"] is not None
    assert all(math.isfinite(h["val_loss"]) for h in result.history)


# ----------------------------------------------------------------------------- the registry

@pytest.fixture
def clean_registry(monkeypatch):
    """Registrations made by a test vanish with it."""
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    return registry


def register_bag(name="test_bag_of_tokens", family="text_encoder"):
    @register_model(name, family=family, description="mean of token embeddings")
    def bag(vocab_size: int = 24, dim: int = 8, num_classes: int = 2) -> BagOfTokens:
        return BagOfTokens(vocab_size, dim, num_classes, name=name)
    return bag


def test_a_registered_text_model_checkpoint_loads_by_name(clean_registry, tmp_path):
    register_bag()
    assert "test_bag_of_tokens" in list_models("text_encoder")
    assert "test_bag_of_tokens" not in list_models("classifier") and "resnet18_ta" in list_models("classifier")
    model = create_model("test_bag_of_tokens", dim=6)
    assert model.config == {"name": "test_bag_of_tokens", "vocab_size": 24, "dim": 6, "num_classes": 2}
    _, result = text_fit(model=model, epochs=2, out=tmp_path)
    loaded, ckpt = load_model(result.best_path)
    assert isinstance(loaded, BagOfTokens) and loaded.config == model.config and not loaded.training
    assert same_weights(weights(loaded), weights(model))
    assert ckpt["model_module"] == "test_fit_models"
    with pytest.raises(ValueError, match="holds a test_bag_of_tokens model, not resnet18_ta"):
        load_model(result.best_path, expect="resnet18_ta")


def test_a_checkpoint_of_an_unregistered_model_says_what_to_import(tmp_path):
    _, result = text_fit(epochs=1, out=tmp_path)  # BagOfTokens' name is not registered here
    with pytest.raises(ValueError, match=r"'test_bag_of_tokens', which is not registered.*import"):
        load_model(result.best_path)


def test_registry_refusals(clean_registry):
    register_bag()
    register_bag()  # the same factory again (a module imported twice): no error

    def other() -> BagOfTokens:
        return BagOfTokens(name="test_bag_of_tokens")

    with pytest.raises(ValueError, match="'test_bag_of_tokens' is already registered .a text_encoder"):
        register_model("test_bag_of_tokens", family="text_encoder")(other)
    register_model("test_bag_of_tokens", family="text_encoder", replace=True)(
        lambda: BagOfTokens(name="test_bag_of_tokens"))
    with pytest.raises(ValueError, match="is a text_encoder, not a classifier"):
        model_spec("test_bag_of_tokens", family="classifier")
    with pytest.raises(ValueError, match="unknown model 'nope'; known classifier models: .*resnet18_ta"):
        model_spec("nope", family="classifier")
    with pytest.raises(ValueError, match="non-empty family"):
        register_model("x", family="")(lambda: BagOfTokens())

    @register_model(family="text_encoder")
    def no_config() -> torch.nn.Module:
        return torch.nn.Linear(2, 2)

    with pytest.raises(ValueError, match=r"no_config.*has no config\['name'\]"):
        create_model("no_config")


def test_a_factory_taking_any_keywords_is_rebuilt_from_its_config(clean_registry, tmp_path):
    from chexradi.nn import save_checkpoint

    @register_model("test_kw_bag", family="text_encoder")
    def kw_bag(**kwargs) -> BagOfTokens:
        return BagOfTokens(name="test_kw_bag", **kwargs)

    model = create_model("test_kw_bag", dim=5)
    loaded, _ = load_model(save_checkpoint(tmp_path / "kw.pt", model))
    assert loaded.config == model.config and same_weights(weights(loaded), weights(model))
    with pytest.raises(ValueError, match=r"create_model\('test_kw_bag', ...\): .*unexpected keyword"):
        create_model("test_kw_bag", width=3)


def test_classifiers_are_rebuilt_from_their_config_by_the_registry(tmp_path):
    from chexradi.nn import save_checkpoint

    model = create_model("resnet18_ta", num_classes=3, in_chans=1, output_stride=16, drop_rate=0.1)
    path = save_checkpoint(tmp_path / "m.pt", model)
    loaded, ckpt = load_model(path)
    assert ckpt["model_module"] == "chexradi.nn.models"
    assert loaded.config == model.config and same_weights(weights(loaded), weights(model))


# ----------------------------------------------------------------------------- what cannot work

def failing_collate(items):
    raise KeyError("tokens")


@pytest.mark.parametrize("kwargs, match", [
    (dict(collate_fn=failing_collate), r"train: collate_fn failed on item 0 \(KeyError"),
    (dict(collate_fn="pad"), "collate_fn must be callable"),
    (dict(objective=type("NoKeys", (), {"loss": TokenObjective.loss, "logits": TokenObjective.logits})()),
     r"train batch of item 0 has no 'image'"),
    (dict(evaluator=ClassifierEvaluator()), r"val batch of item 0 has no 'image'"),
    (dict(evaluator=object()), "evaluator must have required_keys"),
    (dict(evaluator=LossEvaluator(required_keys=("tokens", "report"))), r"val batch of item 0 has no 'report'"),
])
def test_what_cannot_work_is_refused_before_training(kwargs, match):
    with pytest.raises(ValueError, match=match):
        text_fit(epochs=1, **kwargs)


def test_classifier_evaluator_needs_targets():
    with pytest.raises(ValueError, match="must include 'target'"):
        ClassifierEvaluator(required_keys=("tokens",))


def test_out_needs_a_named_model(tmp_path):
    model = BagOfTokens()
    del model.config
    with pytest.raises(ValueError, match="needs a chexradi model"):
        text_fit(model=model, epochs=1, out=tmp_path)
