"""What a run reads besides the built-in benchmarks, registered explicitly: the synthetic world's datasets (in a
`DatasetRegistry` the runner hands to every stage) and its exact teacher (a teacher kind handed to the probe
stage). Also where a command finds a run folder's world: its datasets file, beside the split files."""

from __future__ import annotations

from pathlib import Path

from exgrpo.config.run import RunConfig
from exgrpo.data.registry import DATASETS_FILE, DatasetRegistry, read_datasets_file
from exgrpo.errors import ConfigError
from exgrpo.runner.layout import RunLayout
from exgrpo.teachers.factory import ExtraTeachers
from exgrpo.world.datasets import world_entries
from exgrpo.world.teacher import WORLD_TEACHERS

# The teacher kinds a run's probe stage can use besides exgrpo.teachers' own.
RUN_TEACHERS: ExtraTeachers = WORLD_TEACHERS


def run_registry(config: RunConfig) -> DatasetRegistry:
    """The datasets a run reads: the built-ins, and its world's (named now; the world stage writes the files)."""
    if config.world is None:
        return DatasetRegistry()
    return DatasetRegistry(world_entries(RunLayout(config.run_dir).world_dir))


def world_datasets_file(folder: str | Path) -> Path:
    """The datasets file of a world folder, or of a run folder's world (or the file itself); a folder without one is
    named."""
    folder = Path(folder)
    if folder.is_file():
        return folder
    run_world = RunLayout(folder).world_datasets
    for candidate in (folder / DATASETS_FILE, run_world):
        if candidate.is_file():
            return candidate
    raise ConfigError(f"{folder}: no {DATASETS_FILE} here nor in {run_world.parent} (a run folder's world stage "
                      "writes it; rerun `exgrpo run` on a run made by an older exgrpo to write it)")


def find_run_world(path: str | Path) -> Path | None:
    """The datasets file of the run folder that holds `path` (a model inside a run: RUN_DIR/sft/final, or a
    checkpoint RUN_DIR/train/checkpoint-8), if any."""
    path = Path(path).expanduser()
    if not path.exists():
        return None
    for folder in path.resolve().parents[:3]:
        candidate = RunLayout(folder).world_datasets
        if candidate.is_file():
            return candidate
    return None


def registry_with_worlds(datasets_files: list[Path]) -> DatasetRegistry:
    """The built-ins and the entries of these datasets files (later files win a shared name)."""
    return DatasetRegistry([entry for path in datasets_files for entry in read_datasets_file(path)])
