"""The study page's RL section (lab/study/rl_signal.py): every finished RL run's diagnostics, its reward over the
steps, and the answers it changed against its SFT start beside the re-evaluation noise; on run folders written here."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import yaml

from lab.study.spec import DIAGNOSTICS, Study
from lab.study.tables import Results

REPO = Path(__file__).resolve().parents[1]


def predictions(folder: Path, dataset: str, correct: list[bool]) -> None:
    (folder / "predictions").mkdir(parents=True, exist_ok=True)
    (folder / "predictions" / f"{dataset}.jsonl").write_text(
        "".join(json.dumps({"id": f"q{i}", "correct": value}) + "\n" for i, value in enumerate(correct)))
    (folder / "report.json").write_text(json.dumps({"datasets": []}))


def test_every_rl_run_shows_its_signal_and_is_flagged_when_it_moved_nothing(tmp_path: Path) -> None:
    from lab.study.rl_signal import rl_run_lines

    spec = yaml.safe_load((REPO / "configs" / "smollm2_fair.yaml").read_text())
    spec.pop("record_root")
    spec["seeds"] = [0, 1]
    spec["report"]["reevaluation"]["seed"] = 0
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    study = Study(path, run_root=tmp_path / "runs")
    page = SimpleNamespace(study=study, results=Results(study), held_out=["world_ood_steps"],
                           averaged=lambda question: True)
    assert rl_run_lines(page) == []  # no RL run has finished
    start = [True] * 10 + [False] * 10
    # Seed 0's RL fixed 4 answers and broke 1 (25 % changed); seed 1's changed 1 of 20, no more than the noise.
    moved, still = [*start[:9], False, True, True, True, True, *start[14:]], [*start[:19], True]
    for seed, after in ((0, moved), (1, still)):
        run_dir = study.run_dir(seed, "ei_exgrpo")
        predictions(run_dir / "eval" / "sft", "world_ood_steps", start)
        predictions(run_dir / "eval" / "exgrpo", "world_ood_steps", after)
        (run_dir / "train").mkdir(parents=True)
        steps = [{"step": i + 1, "reward_full": 0.2 + 0.01 * i, "reward_partial": 0.2 + 0.01 * i, "zero_spread": 0.25,
                  "cut_turns": 0.01, "kl": 0.02, "entropy": 0.5 - 0.005 * i} for i in range(20)]
        (run_dir / "train" / "diagnostics.json").write_text(json.dumps(
            {"schema_version": 1, "steps": steps, "warnings": [],
             "question_selection": {"method": "pass_rate", "questions": 200, "kept": 120}}))
        (run_dir / "train" / "log_history.json").write_text(json.dumps([{"step": 20, "epoch": 0.67}]))
    # The re-evaluation of seed 0's EI-SFT changed 2 of its 20 answers (10 %).
    predictions(study.run_dir(0, "ei_exgrpo") / DIAGNOSTICS / "reevaluation-sft", "world_ood_steps",
                [not start[0], not start[1], *start[2:]])
    page.results = Results(study)  # read afresh: the first call cached the runs as unfinished
    lines = rl_run_lines(page)
    rows = [line for line in lines if line.startswith("| EI + ExGRPO (ours) |")]
    assert [row.split(" | ")[1] for row in rows] == ["0", "1"]
    cells = rows[0].split(" | ")
    assert cells[2:9] == ["20", "120 of 200", "0.67", "25%", "1.0%", "0.0200", "0.500 -> 0.405"]
    assert cells[9].startswith("0.21 -> 0.38 (+0.16 [") and cells[10] == "4 / 1 of 20 (25.0%) |"
    assert rows[1].endswith("| 1 / 0 of 20 (5.0%) |")
    assert "changes 10.0% of its held-out answers" in "".join(lines)
    assert "Such runs: EI + ExGRPO (ours), seed 1." in "".join(lines)
    # A family left out of the averages (here the question q9 alone) is left out of the changed answers too.
    page.averaged = lambda question: question != "q9"
    rows = [line for line in rl_run_lines(page) if line.startswith("| EI + ExGRPO (ours) |")]
    assert rows[0].endswith("| 4 / 0 of 19 (21.1%) |") and rows[1].endswith("| 1 / 0 of 19 (5.3%) |")


def test_the_reward_rise_ci_widens_when_neighbouring_steps_move_together() -> None:
    from lab.study.rl_signal import reward_rise

    # Each fifth drifts from 0 to 1 inside: resampling single steps as if independent understates the spread of
    # its mean; runs of 3 neighbouring steps keep the drift and widen the CI.
    series = [*([0.0] * 5 + [1.0] * 5), *([0.5] * 30), *([0.0] * 5 + [1.0] * 5)]
    single, runs = reward_rise(series, block=1), reward_rise(series, block=3)
    assert single["value"] == runs["value"] == 0.0
    assert runs["high"] - runs["low"] > 1.1 * (single["high"] - single["low"])
    # By default the CI spans both single steps and runs of round(10 ** (1/3)) = 2 steps.
    default = reward_rise(series)
    assert default["low"] <= single["low"] and default["high"] >= single["high"]
    assert default["high"] - default["low"] > single["high"] - single["low"]  # the runs of 2 widened it here
