"""Whether an RL stage trained: its outcome reward over the steps, and how many answers it changed against its
start. Read by the RL gate's page (lab/rl_gate_report.py) and the study's (lab/study/page.py): an RL stage that does
not move the policy is not a result, whatever its accuracy difference says."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from exgrpo.runner.results import RunResults
from exgrpo.runner.speeds import mean_of


def outcome_series(records: list[dict[str, Any]]) -> list[float]:
    """Each step's outcome reward (the DSU bonus left out): scenarios A and B averaged, as 4 + 4 rollouts weigh."""
    series = []
    for record in records:
        full, partial = record.get("reward_full"), record.get("reward_partial")
        value = (full + partial) / 2 if full is not None and partial is not None else full
        series.append(value if value is not None else record.get("reward"))
    return [v for v in series if v is not None]


def reward_rise(series: list[float], resamples: int = 2000, seed: int = 0,
                block: int | None = None) -> dict[str, float] | None:
    """Mean outcome reward of the last fifth of the steps minus the first fifth, with a bootstrap CI: each fifth
    resampled in runs of `block` consecutive steps, as neighbouring steps share a policy and their rewards need not
    be independent draws. The runs wrap around the fifth's end (a circular block bootstrap) so that every step is
    drawn as often. By default the CI spans both single steps and runs of the cube root of the fifth's length:
    a fifth of 10 steps cannot tell how its steps depend, so neither assumption may make a rise look surer."""
    fifth = len(series) // 5
    if fifth < 2:
        return None
    first, last = np.asarray(series[:fifth]), np.asarray(series[-fifth:])
    rng = np.random.default_rng(seed)

    def interval(length: int) -> np.ndarray:
        def means(values: np.ndarray) -> np.ndarray:
            starts = rng.integers(0, fifth, (resamples, -(-fifth // length)))
            picks = ((starts[:, :, None] + np.arange(length)) % fifth).reshape(resamples, -1)[:, :fifth]
            return values[picks].mean(1)

        return np.percentile(means(last) - means(first), [2.5, 97.5])

    bounds = [interval(block)] if block else [interval(1), interval(max(1, round(fifth ** (1 / 3))))]
    return {"first": float(first.mean()), "last": float(last.mean()), "value": float(last.mean() - first.mean()),
            "low": float(min(b[0] for b in bounds)), "high": float(max(b[1] for b in bounds))}


def changed_answers(arm: RunResults, start: RunResults, datasets: list[str], model: str = "exgrpo",
                    baseline: str = "sft", keep: Callable[[str], bool] | None = None) -> dict[str, int] | None:
    """How many answers the arm changed against its start, each way, on the same questions (those `keep` accepts,
    by default all): a paired difference near 0 can hide many changes that cancel."""
    counts = {"fixed": 0, "broken": 0, "questions": 0}
    for name in datasets:
        ours, theirs = arm.verdicts(model, name), start.verdicts(baseline, name)
        if ours is None or theirs is None:
            return None
        for question in ours.keys() & theirs.keys():
            if keep is not None and not keep(question):
                continue
            counts["questions"] += 1
            counts["fixed"] += bool(ours[question]) and not theirs[question]
            counts["broken"] += bool(theirs[question]) and not ours[question]
    return counts


def shown(value: float | None, form: str) -> str:
    return "n/a" if value is None else format(value, form)


def rl_run_lines(page: Any) -> list[str]:
    """The page's section on every finished RL run of the study (each method with an RL stage, each seed): what its
    diagnostics say of the signal it trained on, whether its reward rose, and how many unseen-format held-out answers
    it changed against its SFT start, beside the re-evaluation noise (the share of answers evaluating the same model
    again changes). A run that changed no more answers than that is flagged: its stage did not move the policy."""
    import json

    from exgrpo.rl.diagnostics import DIAGNOSTICS_FILE
    from exgrpo.runner.layout import RunLayout
    from lab.study.noise import noise
    from lab.study.tables import data_passes, method_row

    study = page.study
    measured = noise(study, page.held_out, page.averaged)
    rows, still = [], []
    for method in study.methods:
        row = method_row(study, method)
        if row.model != "exgrpo":
            continue
        start_method = study.sft_source(method)
        for seed in page.results.seeds(row):
            run_dir = study.run_dir(seed, method)
            path = RunLayout(run_dir).stage_dir("train") / DIAGNOSTICS_FILE
            document = json.loads(path.read_text()) if path.exists() else {}
            records = document.get("steps", [])
            selection = document.get("question_selection") or {}
            kept = f"{selection['kept']} of {selection['questions']}" if "kept" in selection else "all"
            entropy = [r["entropy"] for r in records if r.get("entropy") is not None]
            rise = reward_rise(outcome_series(records))
            changed = changed_answers(RunResults.of(run_dir), RunResults.of(study.run_dir(seed, start_method)),
                                      page.held_out, keep=page.averaged)
            share = (changed["fixed"] + changed["broken"]) / changed["questions"] if changed and changed["questions"] \
                else None
            rows.append(
                f"| {row.title} | {seed} | {len(records)} | {kept} | {shown(data_passes(run_dir, 'train'), '.2f')} | "
                f"{shown(mean_of(records, 'zero_spread'), '.0%')} | {shown(mean_of(records, 'cut_turns'), '.1%')} | "
                f"{shown(mean_of(records[-5:], 'kl'), '.4f')} | "
                f"{f'{entropy[0]:.3f} -> {entropy[-1]:.3f}' if entropy else 'n/a'} | "
                + ("n/a" if rise is None else f"{rise['first']:.2f} -> {rise['last']:.2f} ({rise['value']:+.2f} "
                   f"[{rise['low']:+.2f}, {rise['high']:+.2f}])") + " | "
                + ("n/a" if changed is None else f"{changed['fixed']} / {changed['broken']} of {changed['questions']} "
                   f"({share:.1%})") + " |")
            if share is not None and measured is not None and share <= measured.changed:
                still.append(f"{row.title}, seed {seed}")
    if not rows:
        return []
    lines = ["## Did RL move the policy? (every RL run's diagnostics)", "",
             "Read before any RL difference below. Means over the logged steps: groups whose rollouts all got the same "
             "reward carry no learning signal; a turn cut by its token budget is judged unfinished. The outcome reward "
             "(DSU bonus left out) of the last fifth of the steps against the first fifth, with a bootstrap CI over "
             "those steps (the wider of single steps and runs of neighbouring steps resampled, as neighbours may "
             "not be independent); the answers the RL model changed against its own SFT start on the unseen-format "
             "held-out splits, the families left out of the averages left out here too (fixed: wrong before RL and "
             "right after; broken: the reverse).", "",
             "| method | seed | steps | questions kept (pass-rate filter) | passes over them | groups without reward "
             "spread | turns cut by the budget | KL to the SFT model (last 5 steps) | entropy first -> last | outcome "
             "reward, first -> last fifth (rise [95% CI]) | held-out answers fixed / broken (changed) |",
             "|---|---|---|---|---|---|---|---|---|---|---|", *rows, ""]
    if measured is not None:
        lines += [f"Evaluating one model again with other batch neighbours changes {measured.changed:.1%} of its "
                  "held-out answers (the re-evaluation noise): an RL run that changed no more than that did not move "
                  "the policy beyond what the evaluation alone moves"
                  + (f". Such runs: {'; '.join(still)}." if still else "; none did so."), ""]
    return lines
