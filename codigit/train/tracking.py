"""Where a run's figures go besides metrics.jsonl: a trackio project in RUN/trackio/ (local-first, offline; read it
with `trackio show --project codigit` with TRACKIO_DIR=RUN/trackio, or `trackio.Api`), and the progress bar, which
shows the step, loss, eval loss and tokens/s instead of printing each log as a dict.

Every figure is one entry (a dict with `step`) handed to each sink in turn: `metrics_file`, the trackio callback's
`log`, the progress bar's `show`.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path

_LOGGER = logging.getLogger("codigit.train")
PROJECT = "codigit"
# trackio binds its folder (TRACKIO_DIR) into these modules' globals when first imported; a second run in the same
# process (train --seeds, --each-collective) must write into its own run folder, so each is re-pointed.
# Listed in codigit/upstream.yaml.
TRACKIO_DIR_MODULES = ("trackio.utils", "trackio.sqlite_storage", "trackio")

Sink = Callable[[dict], None]


def metrics_file(path: Path) -> Sink:
    """A sink that appends each entry to metrics.jsonl, one JSON object per line."""

    def write(entry: dict) -> None:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(entry) + "\n")

    return write


def trackio_callback(run: Path, config: dict):
    """One trackio run per codigit run, named after the run folder, its recipe as the run's config: begun when
    training begins (preparing a run writes nothing), finished when it ends. Its `log` is a sink."""
    from transformers import TrainerCallback

    class Trackio(TrainerCallback):
        def __init__(self):
            self.run = None

        def on_train_begin(self, args, state, control, **kwargs):
            if not state.is_world_process_zero:
                return
            with _quiet():  # trackio prints a banner with dashboard hints; codigit says where the files are
                trackio = _trackio_at(run)
                # resume "allow": a resumed codigit run continues its trackio run rather than starting a second
                self.run = trackio.init(project=PROJECT, name=run.resolve().name, config=config, embed=False,
                                        resume="allow", auto_log_cpu=False, auto_log_gpu=False)  # fmt: skip

        def log(self, entry: dict) -> None:
            if self.run is None:
                return
            figures = {k: v for k, v in entry.items() if isinstance(v, int | float) and not isinstance(v, bool)}
            figures.pop("step", None)
            self.run.log(figures, step=entry["step"])

        def on_train_end(self, args, state, control, **kwargs):
            self.close()

        def close(self) -> None:
            """Flush and finish the trackio run; also after a run that stopped with an exception (train's
            `finally`), so that its sender thread does not outlive it into the next run's folder."""
            if self.run is not None:
                import trackio

                with _quiet():
                    trackio.finish()  # also forgets the run, which trackio would otherwise finish again at exit
                self.run = None

    return Trackio()


def _trackio_at(run: Path):
    """trackio, writing into RUN/trackio/ whether or not it was imported before for another run."""
    folder = (run / "trackio").resolve()
    os.environ["TRACKIO_DIR"] = str(folder)  # read by trackio when first imported
    import trackio

    for name in TRACKIO_DIR_MODULES:
        sys.modules[name].TRACKIO_DIR = folder
    return trackio


@contextlib.contextmanager
def _quiet():
    with contextlib.redirect_stdout(io.StringIO()):
        yield


def read_trackio(run: Path) -> list[dict]:
    """The figures a run logged to trackio, read back from RUN/trackio/ (offline, through trackio's storage)."""
    _trackio_at(run)
    from trackio.sqlite_storage import SQLiteStorage

    return SQLiteStorage.get_logs(PROJECT, run.resolve().name)


def training_bar_callback():
    """transformers' progress bar, showing the latest figures beside it rather than writing every log dict."""
    from transformers.trainer_callback import ProgressCallback

    class TrainingBar(ProgressCallback):
        def __init__(self):
            super().__init__()
            self.figures: dict = {}

        def on_log(self, args, state, control, logs=None, **kwargs):
            pass  # the figures arrive through show(), already computed (tokens/s) and also in metrics.jsonl

        def show(self, entry: dict) -> None:
            if self.training_bar is None:
                return
            names = {"loss": "loss", "eval_loss": "eval", "tokens_per_s": "tok/s", "memorisation": "memo"}
            self.figures |= {short: entry[k] for k, short in names.items() if entry.get(k) is not None}
            self.training_bar.set_postfix({k: f"{v:.4g}" for k, v in self.figures.items()}, refresh=True)

    return TrainingBar()
