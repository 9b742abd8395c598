"""train.report_to: tensorboard -> the train loss and dev metric of every fit() through Accelerate's trackers.

One tracker run per trained model, <output_dir>/tensorboard/<model> (teacher, student, ...), with the same tags
(train_loss, dev/<metric>) in each, so TensorBoard draws teacher and students on one chart:
    tensorboard --logdir <output_dir>/tensorboard
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

from .errors import UserError

TENSORBOARD_DIR = "tensorboard"


def tracker_kwargs(report_to: str, out: Path) -> dict:
    """Accelerator(...) arguments for train.report_to; checked before anything is trained."""
    if report_to == "none":
        return {}
    if importlib.util.find_spec("tensorboard") is None:
        raise UserError("train.report_to: tensorboard is not installed (pip install tensorboard), "
                        "or set train.report_to: none")
    return {"log_with": report_to, "project_dir": str(Path(out) / TENSORBOARD_DIR)}


def start_run(accelerator, name: str) -> None:
    """Send what follows to the run of model `name`. The previous model's run is closed here, not with
    accelerator.end_training(), which would also take down the process group of a multi-process run."""
    if not accelerator.log_with:
        return
    for tracker in accelerator.trackers:
        tracker.finish()
    accelerator.trackers = []
    accelerator.init_trackers(name.replace(" ", "_"))
