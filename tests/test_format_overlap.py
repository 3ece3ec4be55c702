"""The format-overlap check: names, numbers and filler words masked, sentences and whole questions compared; on
texts written here, on a world written at small sizes, and through `exgrpo overlap`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from exgrpo.cli import app
from exgrpo.errors import DataError
from exgrpo.evaluation.format_overlap import format_overlap, proper_names, training_texts
from exgrpo.world.datasets import write_world

TRAIN = ["Ivy has 11 apples. She buys 2 more. How many apples does Ivy have now?",
         "Hal has 4 pens. He gives 1 to a friend. How many pens does Hal have now?"]


def test_the_same_template_with_other_names_and_numbers_is_the_same_format() -> None:
    same = format_overlap(TRAIN, ["Bea has 3 apples. She buys 9 more. How many apples does Bea have now?"])
    assert (same.sentences, same.whole_questions) == (1.0, 1.0)
    assert same.question_patterns == (1, 1) and same.sentence_patterns == (3, 3)


def test_more_steps_reuse_sentences_but_not_whole_questions_and_new_templates_share_neither() -> None:
    longer = format_overlap(TRAIN, ["Ivy has 1 apples. She buys 2 more. She buys 5 more. "
                                    "How many apples does Ivy have now?"])
    assert longer.sentences == 1.0 and longer.whole_questions == 0.0
    new = format_overlap(TRAIN, ["Pip owns 20 stamps. Then Pip receives 3 extra stamps. "
                                 "How many stamps are left with Pip in the end?"])
    assert new.sentences == 0.0 and new.whole_questions == 0.0


def test_filler_words_make_a_template_with_other_items_the_same_format() -> None:
    other_item = ["Ivy has 11 cards. She buys 2 more. How many cards does Ivy have now?"]
    assert format_overlap(TRAIN, other_item).whole_questions == 0.0
    assert format_overlap(TRAIN, other_item, fillers=["apples", "pens", "Cards"]).whole_questions == 1.0


def test_names_are_capitalised_words_inside_a_clause_not_at_its_start() -> None:
    assert proper_names(["Start: 11. Then Ann adds 2.", "Step 1: She buys one. Is Eve warm?"]) == {"Ann", "Eve"}


def test_training_texts_read_questions_probes_chat_turns_and_name_a_bad_record(tmp_path: Path) -> None:
    data = tmp_path / "ei.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in [
        {"question": "Q1?", "probes": [{"rule": "R4", "question": "P1?"}, {"rule": "R1", "question": "P2?"}]},
        {"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "U1?"},
                      {"role": "assistant", "content": "A"}, {"role": "user", "content": "U2?"}]},
        {"prompt": "R?"}]) + "\n")
    assert training_texts(data) == ["Q1?", "P1?", "P2?", "U1?", "U2?", "R?"]
    assert training_texts(data, probes=False) == ["Q1?", "U1?", "U2?", "R?"]
    data.write_text(json.dumps({"question": "Q?"}) + "\n" + json.dumps({"answer": "3"}) + "\n")
    with pytest.raises(DataError, match="no question, probes, messages or prompt") as error:
        training_texts(data)
    assert error.value.line == 2 and str(data) in str(error.value)


def test_exgrpo_overlap_on_a_world_tells_held_in_from_unseen_formats(tmp_path: Path) -> None:
    run = tmp_path / "run"
    write_world(run / "world", seed=0, train_size=8, test_size=4, ood_size=4)
    train = tmp_path / "train.jsonl"  # an SKD arm's data: the training questions, no probes
    train.write_text("".join(line for line in (run / "world" / "train.jsonl").open()))
    result = CliRunner().invoke(app, ["overlap", "--train", str(train), "--datasets",
                                      "world_test,world_ood_steps,world_ood_surface", "--world", str(run),
                                      "--no-probes"], terminal_width=200)
    assert result.exit_code == 0, result.output
    rows = {line.split("│")[1].strip(): [cell.strip() for cell in line.split("│")[2:5]]
            for line in result.output.splitlines() if line.startswith("│")}
    assert rows["world_test"][1].startswith("100%")  # every held-in sentence is a training sentence
    assert rows["world_ood_steps"][1].startswith("100%") and rows["world_ood_steps"][2].startswith("0%")
    assert rows["world_ood_surface"][1].startswith("0%") and rows["world_ood_surface"][2].startswith("0%")
