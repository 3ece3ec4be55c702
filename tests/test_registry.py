"""The dataset registry: the 12 benchmarks load with the expected counts and types; bad input is named."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from benchmark_files import require_dataset_files

from exgrpo.data.registry import DatasetEntry, builtin_entries, custom_entry, load_examples, register
from exgrpo.data.schema import AnswerType
from exgrpo.errors import ConfigError, DataError

# name -> (eval split size, answer types present)
EXPECTED = {
    "strategyqa": (687, {"yes_no"}),
    "commonsenseqa": (1221, {"letter"}),
    "arc_challenge": (1172, {"letter"}),
    "math": (500, {"math"}),
    "gsm8k": (1319, {"number"}),
    "tabmwp": (7685, {"number", "letter"}),
    "anli": (1000, {"nli"}),
    "date_understanding": (131, {"date"}),
    "boolq": (3270, {"yes_no"}),
    "openbookqa": (500, {"letter"}),
    "esnli": (9824, {"nli"}),
    "gsm8k_reversal": (777, {"number"}),
}


def test_registry_has_the_twelve_paper_benchmarks_in_their_groups() -> None:
    entries = builtin_entries()
    assert {name for name, entry in entries.items() if entry.group != "other"} == set(EXPECTED)
    assert [n for n, e in entries.items() if e.group == "held_in"] == [
        "strategyqa", "commonsenseqa", "arc_challenge", "math", "gsm8k", "tabmwp", "anli", "date_understanding"]
    held_out = {n: e.paired_with for n, e in entries.items() if e.group == "held_out"}
    assert held_out == {"boolq": "strategyqa", "openbookqa": "arc_challenge", "esnli": "anli",
                        "gsm8k_reversal": "gsm8k"}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_benchmark_loads_with_expected_count_and_type(name: str) -> None:
    require_dataset_files(name)
    examples = load_examples(name)
    count, types = EXPECTED[name]
    assert len(examples) == count
    assert {str(e.answer_type) for e in examples} == types
    assert len({e.id for e in examples}) == count, "ids must be unique within a split"
    assert all(e.question.strip() and e.answer.strip() and e.source == name for e in examples)
    for example in examples:
        if example.answer_type is AnswerType.letter:
            assert example.choices and example.answer in "ABCDEFGHIJ"[: len(example.choices)]


def test_train_and_test_partitions_are_disjoint_and_cover_single_file_datasets() -> None:
    require_dataset_files("strategyqa", "date_understanding", "math")
    for name, total in (("strategyqa", 2290), ("date_understanding", 369)):
        train, test = load_examples(name, "train"), load_examples(name, "test")
        assert len(train) + len(test) == total
        assert not {e.location for e in train} & {e.location for e in test}
    math_train, math_test = load_examples("math", "train"), load_examples("math", "test")
    assert len(math_train) == 4500
    assert not {e.question for e in math_train} & {e.question for e in math_test}


def test_svamp_answers_are_the_values_of_the_dss_equations() -> None:
    require_dataset_files("svamp")
    train, test = load_examples("svamp", "train"), load_examples("svamp", "test")
    assert (len(train), len(test)) == (800, 200)
    assert (train[0].answer, train[1].answer) == ("42", "210")  # ( 84.0 / 2.0 ) and ( 7.0 * 30.0 )


def test_svamp_full_holds_all_1000_problems_and_the_dss_test_split() -> None:
    require_dataset_files("svamp")
    full = load_examples("svamp_full")
    assert len(full) == 1000 and full[0].id == "chal-1" and full[0].answer == "51"  # ( 76.0 - 25.0 )
    assert full[0].question.startswith("Each pack of dvds costs 76 dollars.") and "pack How much" in full[0].question
    words = {" ".join(example.question.split()) for example in full}
    assert all(" ".join(example.question.split()) in words for example in load_examples("svamp", "test"))


def test_date_options_are_shuffled_deterministically_not_answer_first() -> None:
    require_dataset_files("date_understanding")
    examples = load_examples("date_understanding")
    first_is_answer = sum(e.choices[0] == e.answer for e in examples)
    assert first_is_answer < len(examples) / 2  # in the raw file the answer is listed first 364/369 times
    assert [e.choices for e in examples] == [e.choices for e in load_examples("date_understanding")]


def test_arc_numeric_labels_become_letters() -> None:
    require_dataset_files("arc_challenge")
    raw = [json.loads(line) for line in (Path(load_examples("arc_challenge", limit=1)[0].location.rsplit(":", 1)[0])
                                         .read_text().splitlines())]
    numeric = [r for r in raw if r["answerKey"] in "1234"]
    assert numeric
    examples = {e.id: e for e in load_examples("arc_challenge")}
    for record in numeric:
        assert examples[record["id"]].answer == "ABCD"[int(record["answerKey"]) - 1]


def test_tabmwp_renders_the_table_into_the_question() -> None:
    require_dataset_files("tabmwp")
    example = load_examples("tabmwp", limit=1)[0]
    assert "Friday | 163" in example.question and example.question.endswith("than on Sunday?")
    kinds = Counter(e.answer_type for e in load_examples("tabmwp", "test1k"))
    assert kinds == {AnswerType.number: 751, AnswerType.letter: 249}


def test_limit_keeps_the_first_examples() -> None:
    require_dataset_files("gsm8k")
    assert [e.id for e in load_examples("gsm8k", limit=3)] == [e.id for e in load_examples("gsm8k")[:3]]


def test_unknown_dataset_and_split_name_the_choices() -> None:
    with pytest.raises(ConfigError, match="unknown dataset 'gsm9k'.*gsm8k"):
        load_examples("gsm9k")
    with pytest.raises(ConfigError, match="no split 'validation'.*test"):
        load_examples("gsm8k", "validation")


def test_missing_file_names_the_path_and_the_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXGRPO_DATA_DIR", str(tmp_path))
    with pytest.raises(DataError, match=r"gsm8k/test.jsonl.*EXGRPO_DATA_DIR"):
        load_examples("gsm8k")


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def test_malformed_jsonl_line_is_named(tmp_path: Path) -> None:
    path = _write(tmp_path / "bad.jsonl", ['{"question": "q1", "answer": "1"}', '{"question": "q2", "answer": '])
    register(custom_entry("bad_json", path, "number"))
    with pytest.raises(DataError, match=r"bad.jsonl:2: malformed JSON"):
        load_examples("bad_json")


def test_record_without_answer_names_file_line_and_field(tmp_path: Path) -> None:
    path = _write(tmp_path / "noanswer.jsonl", ['{"question": "q1", "answer": "1"}', '{"question": "q2"}'])
    register(custom_entry("no_answer", path, "number"))
    with pytest.raises(DataError, match=r"noanswer.jsonl:2 field 'answer'"):
        load_examples("no_answer")


def test_invalid_gold_answer_is_rejected_with_its_location(tmp_path: Path) -> None:
    path = _write(tmp_path / "words.jsonl", ['{"question": "q1", "answer": "many"}'])
    register(custom_entry("words", path, "number"))
    with pytest.raises(DataError, match=r"words.jsonl:1 field 'answer'.*not a valid number"):
        load_examples("words")


def test_custom_csv_with_column_mapping_and_choices(tmp_path: Path) -> None:
    path = tmp_path / "mine.csv"
    path.write_text("Problem Text,Gold,qid\nWhat is 2+2?,4,a\nHow many legs has a cat?,4,b\n")
    register(custom_entry("mine", path, "number", question="Problem Text", answer="Gold", id="qid"))
    examples = load_examples("mine")
    assert [(e.id, e.question, e.answer) for e in examples] == [("a", "What is 2+2?", "4"),
                                                                ("b", "How many legs has a cat?", "4")]
    mc = _write(tmp_path / "mc.jsonl", ['{"q": "Pick", "opts": ["x", "y"], "gold": "B"}'])
    register(custom_entry("mc", mc, "letter", question="q", answer="gold", choices="opts"))
    assert load_examples("mc")[0].choices == ("x", "y")


def test_invalid_jinja_in_an_entry_fails_at_definition() -> None:
    with pytest.raises(ValueError, match="field 'answer': invalid Jinja"):
        DatasetEntry(name="x", answer_type="number", question="{{ q }}", answer="a |",
                     splits={"test": {"files": ["x.jsonl"]}})


def test_hub_path_loads_through_datasets_with_its_own_field_mapping(tmp_path: Path) -> None:
    # The hub code path is datasets.load_dataset(path, name, split); a local folder laid out like the hub
    # repo exercises it without the network (ARC's hub layout differs from the local files).
    hub_dir = tmp_path / "ai2_arc"
    (hub_dir / "ARC-Challenge").mkdir(parents=True)
    rows = [{"id": "q1", "question": "Which is a planet?",
             "choices": {"text": ["Moon", "Mars", "Sun"], "label": ["1", "2", "3"]}, "answerKey": "2"}]
    _write(hub_dir / "ARC-Challenge" / "test.jsonl", [json.dumps(r) for r in rows])
    entry = builtin_entries()["arc_challenge"].model_copy(deep=True)
    entry.name = "arc_hub_copy"
    assert entry.hub is not None
    entry.hub.path = str(hub_dir)
    entry.hub.name = None
    entry.hub.split_map = {"test": "test"}
    register(entry)
    (example,) = load_examples("arc_hub_copy", source="hub")
    assert (example.id, example.choices, example.answer) == ("q1", ("Moon", "Mars", "Sun"), "B")
