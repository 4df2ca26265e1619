"""chexradi.reports: negation and uncertainty patterns, sections, vocabulary validation, IU X-ray scores."""
from __future__ import annotations

import pytest
from conftest import shared, write_file

from chexradi.reports import LabelSetError, classify, label, load_label_set
from chexradi.reports.reference import IU_MESH_MAP, mesh_reference, score
from chexradi.reports.text import find_sections, sections_to_read, sentences


# (sentence or report, {label: expected value}); labels not listed must be blank (None)
PATTERNS = [
    # plain mentions
    ("Cardiomegaly.", {"Cardiomegaly": 1}),
    ("There is a small left pleural effusion.", {"Effusion": 1}),
    ("Large right pneumothorax.", {"Pneumothorax": 1}),
    ("The heart is mildly enlarged.", {"Cardiomegaly": 1}),
    ("Heart size is moderately increased.", {"Cardiomegaly": 1}),
    ("Bibasilar subsegmental atelectasis.", {"Atelectasis": 1}),
    ("Small hiatal hernia.", {"Hernia": 1}),
    ("Emphysematous changes in both upper lobes.", {"Emphysema": 1}),
    ("Apical pleural thickening on the right.", {"Pleural_Thickening": 1}),
    ("Interstitial fibrosis at the bases.", {"Fibrosis": 1}),
    ("Right upper lobe consolidation.", {"Consolidation": 1}),
    ("Mild interstitial pulmonary edema.", {"Edema": 1}),
    ("A 2 cm nodule in the left upper lobe.", {"Nodule": 1}),
    ("Right hilar mass.", {"Mass": 1}),
    ("Patchy infiltrates in the right lower lobe.", {"Infiltration": 1}),
    ("Left lower lobe pneumonia.", {"Pneumonia": 1}),
    # forward negation, coordinated phrases
    ("No pneumothorax.", {"Pneumothorax": 0}),
    ("No pneumothorax, effusion, or focal consolidation.", {"Pneumothorax": 0, "Effusion": 0, "Consolidation": 0}),
    ("There is no evidence of pneumothorax or pleural effusion.", {"Pneumothorax": 0, "Effusion": 0}),
    ("The lungs are clear without focal consolidation, effusion or pneumothorax.",
     {"Consolidation": 0, "Effusion": 0, "Pneumothorax": 0}),
    ("Lungs are clear of focal airspace disease, pneumothorax, or pleural effusion.",
     {"Pneumothorax": 0, "Effusion": 0}),
    ("Negative for pneumonia.", {"Pneumonia": 0}),
    ("Free of edema.", {"Edema": 0}),
    ("Absence of pleural effusion.", {"Effusion": 0}),
    ("There are no XXXX of a pleural effusion.", {"Effusion": 0}),  # IU de-identification inside the scope
    ("No definite pneumothorax.", {"Pneumothorax": 0}),
    ("No new consolidation.", {"Consolidation": 0}),
    # backward negation
    ("Pneumothorax is not seen.", {"Pneumothorax": 0}),
    ("A pleural effusion is not identified.", {"Effusion": 0}),
    ("The previously seen pneumothorax has resolved.", {"Pneumothorax": 0}),
    ("Right lower lobe pneumonia has cleared.", {"Pneumonia": 0}),
    ("Left effusion is no longer seen.", {"Effusion": 0}),
    ("Heart size is not enlarged.", {"Cardiomegaly": 0}),  # trigger inside the mention
    # negative phrases (a statement of absence without a trigger)
    ("The heart is normal in size.", {"Cardiomegaly": 0}),
    ("Normal heart size.", {"Cardiomegaly": 0}),
    ("The cardiomediastinal silhouette is within normal limits.", {"Cardiomegaly": 0}),
    ("Costophrenic angles are sharp.", {"Effusion": 0}),
    # pseudo-negation
    ("No change in the cardiomegaly.", {"Cardiomegaly": 1}),
    ("No interval change in the small left pleural effusion.", {"Effusion": 1}),
    ("No significant change in the right upper lobe mass.", {"Mass": 1}),
    ("Cardiomegaly, not significantly changed.", {"Cardiomegaly": 1}),
    # uncertainty, forward and backward
    ("Possible small left pleural effusion.", {"Effusion": -1}),
    ("Probable right lower lobe pneumonia.", {"Pneumonia": -1}),
    ("Cannot exclude pneumonia.", {"Pneumonia": -1}),
    ("Pneumonia cannot be excluded.", {"Pneumonia": -1}),
    ("Early pneumonia is not excluded.", {"Pneumonia": -1}),
    ("Findings suspicious for pneumonia.", {"Pneumonia": -1}),
    ("Opacity may represent atelectasis.", {"Atelectasis": -1}),
    ("Atelectasis versus pneumonia in the left base.", {"Atelectasis": -1, "Pneumonia": -1}),
    ("Left basilar opacity, likely atelectasis.", {"Atelectasis": -1}),
    ("Borderline cardiomegaly.", {"Cardiomegaly": 1}),  # a degree, not a hedge (docs/reports.md, "Normal")
    ("Questionable nodule in the right midlung.", {"Nodule": -1}),
    ("Concern for pulmonary edema.", {"Edema": -1}),
    ("Differential considerations include pneumonia.", {"Pneumonia": -1}),
    ("Correlate clinically for pneumonia.", {"Pneumonia": -1}),
    ("Opacity which may be secondary to infiltrate.", {"Infiltration": -1}),
    # scope ends at terminators and at the next trigger
    ("There is no pleural effusion but there is atelectasis.", {"Effusion": 0, "Atelectasis": 1}),
    ("No pneumothorax; small right effusion.", {"Pneumothorax": 0, "Effusion": 1}),
    ("No pneumothorax. Small right effusion.", {"Pneumothorax": 0, "Effusion": 1}),
    ("No effusion, possible pneumothorax.", {"Effusion": 0, "Pneumothorax": -1}),
    ("No consolidation, however there is a large hiatal hernia.", {"Consolidation": 0, "Hernia": 1}),
    ("No pneumothorax and the heart is enlarged.", {"Pneumothorax": 0, "Cardiomegaly": 1}),
    ("No focal consolidation to suggest pneumonia.", {"Consolidation": 0, "Pneumonia": 0}),
    # excluded look-alikes
    ("Small pericardial effusion.", {}),
    ("Subcutaneous emphysema in the left chest wall.", {}),
    ("No mass effect.", {}),
    ("Cystic fibrosis.", {}),
    ("Stable heart size.", {}),
    # aggregation: positive beats uncertain beats negative
    ("No effusion on the left. Small effusion on the right.", {"Effusion": 1}),
    ("No pneumonia. Possible pneumonia at the left base.", {"Pneumonia": -1}),
    # sections: only Findings and Impression are read when present
    ("INDICATION: r/o pneumonia.\nFINDINGS: Heart size normal. No pneumothorax.\nIMPRESSION: No acute disease.",
     {"Cardiomegaly": 0, "Pneumothorax": 0}),
    ("COMPARISON: Prior study with effusion. FINDINGS: Emphysema.", {"Emphysema": 1}),
]


@pytest.mark.parametrize("text,expected", PATTERNS, ids=[p[0][:48] for p in PATTERNS])
def test_pattern(text, expected):
    res = label(text)
    got = {k: v for k, v in res.items() if v is not None and k not in ("No Finding", "Normal")}
    assert got == expected, f"{text!r}\n{res.explain()}"


def test_no_finding():
    assert label("Normal chest.")["No Finding"] == 1
    assert label("No pneumothorax or effusion.")["No Finding"] == 1
    assert label("Possible pneumonia.")["No Finding"] == 0  # uncertain clears it (CheXpert convention)
    assert label("Cardiomegaly.")["No Finding"] == 0
    assert list(label("Cardiomegaly."))[-2:] == ["No Finding", "Normal"]


def test_evidence_spans_point_into_the_report():
    text = "FINDINGS: The heart is enlarged. No pleural effusion or pneumothorax.\n\nIMPRESSION: Cardiomegaly."
    res = label(text)
    assert res["Cardiomegaly"] == 1 and res["Effusion"] == 0 and res["Pneumothorax"] == 0
    assert len([e for e in res.evidence if e.kind == "label"]) == 4
    for e in res.evidence:
        assert text[e.start:e.end] == e.mention
        assert e.sentence in text
    neg = [e for e in res.evidence if e.label == "Effusion"][0]
    assert neg.rule == "negated forward 'no'" and neg.trigger == "No" and neg.section == "findings"
    assert "Cardiomegaly=+1" in res.explain("Cardiomegaly")


def test_empty_report_is_refused():
    with pytest.raises(ValueError, match="no text to read"):
        label("   \n ")
    with pytest.raises(ValueError, match="no text to read"):
        label("INDICATION: cough.")  # only a section that is never read
    with pytest.raises(ValueError, match="must be a string"):
        label(None)


def test_sections_and_sentences():
    text = ("EXAMINATION: CHEST PA AND LAT.\nINDICATION: cough.\nFINDINGS: Heart size is 1.5 cm larger, e.g. "
            "enlarged. 1. Effusion.\n\nIMPRESSION: Cardiomegaly; no pneumothorax")
    names = [s.name for s in find_sections(text)]
    assert names == ["examination", "indication", "findings", "impression"]
    read = sections_to_read(text)
    assert [s.name for s in read] == ["findings", "impression"]
    sents = [s.text for s in sentences(text, read)]
    assert sents == ["Heart size is 1.5 cm larger, e.g. enlarged.", "1. Effusion.", "Cardiomegaly;",
                     "no pneumothorax"]
    # no header: the whole text; only skipped sections: nothing
    assert [s.name for s in sections_to_read("Cardiomegaly.")] == [""]
    assert sections_to_read("HISTORY: effusion.") == []


def test_classify_reports_offsets_within_the_sentence():
    ls = load_label_set("chestxray14")
    ms = classify("Small left effusion, no pneumothorax.", ls)
    assert [(m.label, m.value, m.text) for m in ms] == [("Effusion", 1, "effusion"),
                                                        ("Pneumothorax", 0, "pneumothorax")]
    assert classify("Normal chest.", ls) == []


# ---------------------------------------------------------------------------------------------
# label sets are data: validated on load, extendable
# ---------------------------------------------------------------------------------------------
def test_builtin_sets():
    ls = load_label_set("chestxray14")
    from chexradi.data.datasets import CHESTXRAY14_CLASSES

    assert ls.names == CHESTXRAY14_CLASSES and ls.columns[-2:] == ("No Finding", "Normal")
    assert load_label_set("chestxray14") is ls  # cached


def test_user_set_extends_and_overrides(tmp_path):
    p = write_file(tmp_path, """
name: mine
extends: chestxray14
labels:
  Effusion:
    mention: [hydrothorax fluid collection]
  Lesion:
    mention: ["re:lesions?"]
rules:
  - {phrase: "no change in", category: negated}
""")
    ls = load_label_set(p)
    assert ls.name == "mine" and ls.names[-1] == "Lesion" and len(ls.names) == 15
    res = label("Large lesion. No change in the cardiomegaly.", ls)
    assert res["Lesion"] == 1
    assert res["Cardiomegaly"] == 0  # the set's own rule wins over the default pseudo-trigger
    assert label("Small effusion.", ls)["Effusion"] == 1  # base phrases kept


@pytest.mark.parametrize("body,message", [
    ("labels: [a, b]", "'labels' must be a non-empty mapping"),
    ("labels:\n  A:\n    mention: []", "label 'A' has no 'mention' phrases"),
    ("labels:\n  A:\n    mention: [x, X]", "the phrase 'X' is listed twice"),
    ("labels:\n  A:\n    mention: ['re:(unclosed']", "does not compile"),
    ("labels:\n  A:\n    mention: ['re:x*']", "matches the empty string"),
    ("labels:\n  A:\n    mention: [x]\n    synonyms: [y]", "unknown keys ['synonyms']"),
    ("labels:\n  A:\n    mention: [x]\nfoo: 1", "unknown keys ['foo']"),
    ("labels:\n  A:\n    mention: [x]\nrules:\n  - {phrase: \"no\", category: maybe}", "category 'maybe'"),
    ("labels:\n  A:\n    mention: [x]\nrules:\n  - {phrase: \"no\", category: negated, direction: up}",
     "direction 'up'"),
    ("labels:\n  A:\n    mention: [x]\nrules:\n  - {phrase: \"no\", category: negated, labels: [B]}",
     "labels ['B'] are not labels of the set"),
    ("labels:\n  A:\n    mention: [x]\nrules:\n  - {phrase: \"no\", category: negated, max_words: 0}",
     "max_words must be a positive integer"),
    ("labels:\n  A:\n    mention: [x]\nrules:\n  - {phrase: no, category: negated}", "quote the phrase"),
    ("labels:\n  A:\n    mention: [x]\nno_finding: A", "is also a label"),
    ("labels:\n  A:\n    mention: [x]\nno_finding_ignores: [B]", "no_finding_ignores ['B'] are not labels"),
    ("labels:\n  A:\n    mention: [x]\n  B: [y]", "label 'B' must be a mapping"),
    ("labels:\n  A:\n    mention: [x\n", "not valid YAML at line"),
    ("labels:\n  A:\n    mention: [x]\nextends: nosuchset", "unknown label set 'nosuchset'"),
])
def test_bad_vocabulary_is_refused_with_file_and_fix(tmp_path, body, message):
    p = write_file(tmp_path, body)
    with pytest.raises(LabelSetError) as err:
        load_label_set(p)
    assert message in str(err.value)
    if "nosuchset" not in message:
        assert str(p) in str(err.value)


def test_unknown_label_set_names_the_choices(tmp_path):
    with pytest.raises(LabelSetError, match="use one of chestxray14, chexpert"):
        load_label_set("nosuchset")
    with pytest.raises(LabelSetError, match="not found"):
        load_label_set(str(tmp_path / "missing.yaml"))


def test_edited_vocabulary_is_reloaded(tmp_path):
    p = write_file(tmp_path, "labels:\n  A:\n    mention: [alpha]\n")
    assert label("alpha.", p)["A"] == 1
    import os
    import time

    p.write_text("labels:\n  A:\n    mention: [beta]\n")
    later = time.time() + 5
    os.utime(p, (later, later))
    assert label("alpha.", p)["A"] is None and label("beta.", p)["A"] == 1


# ---------------------------------------------------------------------------------------------
# the IU X-ray reference and the scores
# ---------------------------------------------------------------------------------------------
def test_mesh_reference_mapping():
    ref = mesh_reference(["Pleural Effusion/bilateral/small", "Cardiac Shadow/enlarged/mild",
                          "Thickening/pleura/apex", "Mass/breast/left", "subcutaneous  emphysema"])
    assert ref["Effusion"] == 1 and ref["Cardiomegaly"] == 1 and ref["Pleural_Thickening"] == 1
    assert ref["Mass"] == 0 and ref["Emphysema"] == 0 and ref["No Finding"] == 0
    assert mesh_reference(["normal"])["No Finding"] == 1
    assert mesh_reference(["Hydropneumothorax/right"])["Pneumothorax"] == 1
    assert mesh_reference(["Hydropneumothorax/right"])["Effusion"] == 1
    assert mesh_reference(["No Indexing"]) is None and mesh_reference([]) is None
    assert mesh_reference(["Technical Quality of Image Unsatisfactory", "Cardiomegaly"])["Cardiomegaly"] == 1


def test_score_counts_by_hand():
    gold = {"a": {"X": 1}, "b": {"X": 0}, "c": {"X": 1}, "d": {"X": 0}}
    pred = {"a": {"X": 1}, "b": {"X": 1}, "c": {"X": -1}, "d": {"X": None}}
    s = score(pred, gold, ["X"])[0]
    assert (s.tp, s.fp, s.fn, s.support) == (1, 1, 1, 2) and s.precision == 0.5 and s.f1 == 0.5
    s = score(pred, gold, ["X"], uncertain_positive=True)[0]
    assert (s.tp, s.fp, s.fn) == (2, 1, 0)


@pytest.mark.slow
def test_iu_xray_against_human_mesh():
    """All 3,955 IU X-ray reports against their MeSH indexing: floors under the figures in docs/reports.md."""
    from chexradi.reports import label_reports
    from chexradi.reports.reference import WANG2017_EIGHT

    table = label_reports(shared("iu-xray-reports", "NLMCXR_reports.tgz"))
    assert len(table.reports) == 3927 and len(table.errors) == 28
    assert all("no text" in e.message for e in table.errors)
    gold = {r["id"]: mesh_reference(r["meta"]["mesh"]) for r in table.reports}
    gold = {k: v for k, v in gold.items() if v is not None}
    pred = {r["id"]: r["labels"] for r in table.reports}
    assert len(gold) == 3826
    eight = score(pred, gold, WANG2017_EIGHT)[-1]
    all14 = score(pred, gold, list(IU_MESH_MAP))
    assert eight.precision > 0.94 and eight.recall > 0.85 and eight.f1 > 0.90, eight
    assert all14[-1].precision > 0.94 and all14[-1].recall > 0.85 and all14[-1].f1 > 0.90, all14[-1]
    for s in all14[:-1]:
        assert s.f1 > 0.75, s
