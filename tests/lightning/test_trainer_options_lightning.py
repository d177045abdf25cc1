"""Lightning's own options in ``trainer:`` (max_time, fast_dev_run, limit_*_batches, ...) reach the
Trainer; a typo or a value Lightning would refuse is a one-line error before anything loads."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
from helpers.paths import REPO
from lightning.pytorch import Callback
from lightning.pytorch.callbacks import Timer

from speechllm.config import ConfigError, load_config
from speechllm.lightning.trainer import build_trainer
from speechllm.training import train

TINY_RECIPE = REPO / "recipes" / "tiny" / "conf" / "asr.yaml"


def built(tmp_path: Path, *overrides: str):
    cfg = load_config(
        TINY_RECIPE, [f"output_dir={tmp_path}", "trainer.enable_progress_bar=false", *overrides]
    )
    return build_trainer(cfg, export=False)


@pytest.mark.parametrize(
    ("override", "attribute", "expected"),
    [
        ("trainer.limit_train_batches=3", "limit_train_batches", 3),
        ("trainer.limit_train_batches=0.5", "limit_train_batches", 0.5),
        ("trainer.limit_val_batches=0.25", "limit_val_batches", 0.25),
        ("trainer.limit_test_batches=4", "limit_test_batches", 4),
        ("trainer.num_sanity_val_steps=0", "num_sanity_val_steps", 0),
        ("trainer.accumulate_grad_batches=4", "accumulate_grad_batches", 4),
        ("trainer.gradient_clip_val=0.5", "gradient_clip_val", 0.5),
        ("trainer.gradient_clip_algorithm=value", "gradient_clip_algorithm", "value"),
        ("trainer.fast_dev_run=true", "fast_dev_run", True),
        ("trainer.fast_dev_run=3", "fast_dev_run", 3),
        ("trainer.min_steps=5", "min_steps", 5),
        ("trainer.detect_anomaly=true", "_detect_anomaly", True),
    ],
)
def test_each_lightning_option_reaches_the_trainer(tmp_path, override, attribute, expected) -> None:
    trainer = built(tmp_path, override)
    value = getattr(trainer, attribute, None)
    if value is None:  # min_steps lives on the fit loop
        value = getattr(trainer.fit_loop, attribute)
    assert value == expected


@pytest.mark.parametrize(
    ("override", "seconds"),
    [
        ("trainer.max_time='00:01:30:05'", 5405),
        ("trainer.max_time={minutes: 2.5}", 150),
        ("trainer.max_time={hours: 1, minutes: 30}", 5400),
    ],
)
def test_max_time_configures_lightnings_step_timer(tmp_path, override, seconds) -> None:
    trainer = built(tmp_path, override)
    (timer,) = [cb for cb in trainer.callbacks if isinstance(cb, Timer)]
    assert timer._duration == seconds and timer._interval == "step"


def test_without_max_time_there_is_no_timer(tmp_path) -> None:
    assert not any(isinstance(cb, Timer) for cb in built(tmp_path).callbacks)


def test_a_typo_is_refused_naming_the_key_and_the_valid_ones() -> None:
    with pytest.raises(ConfigError, match=r"unknown config key 'trainer\.max_tim'.*max_time"):
        load_config(TINY_RECIPE, ["trainer.max_tim='00:00:01:00'"])


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("trainer.max_time=1:00:00:00", r"trainer\.max_time=216000: write it as a quoted"),
        ("trainer.max_time='1 hour'", r"trainer\.max_time='1 hour': write a duration as 'DD:HH:MM:SS'"),
        ("trainer.max_time={hour: 1}", r"trainer\.max_time=.*keys among weeks, days, hours"),
        ("trainer.max_time='00:00:00:00'", r"must be longer than 0 s"),
        ("trainer.limit_train_batches=1.5", r"trainer\.limit_train_batches=1\.5: must be a number of"),
        ("trainer.limit_val_batches=-1", r"trainer\.limit_val_batches=-1: must be"),
        ("trainer.fast_dev_run=-2", r"trainer\.fast_dev_run=-2: must be true, false"),
        ("trainer.num_sanity_val_steps=-3", r"trainer\.num_sanity_val_steps=-3"),
        ("trainer.gradient_clip_val=-1.0", r"trainer\.gradient_clip_val=-1\.0: must be a number >= 0"),
        ("trainer.gradient_clip_algorithm=max", r"gradient_clip_algorithm='max': must be one of norm, value"),
        ("trainer.accumulate_grad_batches=0", r"trainer\.accumulate_grad_batches=0"),
    ],
)
def test_values_lightning_would_refuse_late_are_refused_before_anything_loads(override, expected) -> None:
    with pytest.raises(ConfigError, match=expected):
        load_config(TINY_RECIPE, [override])


def _tiny_cfg(tiny_dirs, tones_dir: Path, out: Path, *overrides: str):
    return load_config(
        TINY_RECIPE,
        [
            f"output_dir={out}",
            f"model.encoder.path={tiny_dirs['tiny-random-whisper']}",
            f"model.llm.path={tiny_dirs['tiny-random-llama']}",
            f"data.train=[{{path: {tones_dir / 'tones_cuts_train.jsonl.gz'}}}]",
            "data.val=[]",
            "trainer.enable_progress_bar=false",
            "trainer.precision=32",
            *overrides,
        ],
    )


class StopClock(Timer):
    """Lightning's Timer whose clock reads ``duration`` once ``STEPS`` steps are done: stopping by
    time, whatever this machine's speed."""

    STEPS = 3

    def __init__(self, duration: datetime.timedelta, interval: str = "step") -> None:
        super().__init__(duration=duration, interval=interval)
        self.trainer = None

    def on_train_start(self, trainer, pl_module) -> None:
        super().on_train_start(trainer, pl_module)
        self.trainer = trainer

    def time_elapsed(self, stage=None) -> float:
        done = self.trainer is not None and self.trainer.global_step >= self.STEPS
        return self._duration if done else 0.0


class LastStep(Callback):
    def on_train_end(self, trainer, pl_module) -> None:
        self.step = trainer.global_step


def test_a_run_with_max_time_stops_by_time_long_before_max_steps(
    tiny_dirs, tones_dir, tmp_path, monkeypatch
) -> None:
    # The Timer that trainer.max_time makes, its clock replaced so that time is up after 3 steps.
    import lightning.pytorch.trainer.connectors.callback_connector as connector

    monkeypatch.setattr(connector, "Timer", StopClock)
    overrides = ("trainer.max_steps=40", "trainer.max_time='00:00:00:30'")
    last = LastStep()
    model_dir = train(_tiny_cfg(tiny_dirs, tones_dir, tmp_path / "run", *overrides), callbacks=[last])
    assert last.step == StopClock.STEPS
    assert (model_dir / "trainable.safetensors").is_file()  # stopped by time, still exported


def test_max_time_is_the_llm_stages_clock_and_prealign_minutes_the_pre_alignments(tmp_path) -> None:
    from speechllm.prealign.stage import _prealign_stage_config

    llm_clock = "trainer.max_time='00:00:00:30'"
    by_minutes = load_config(TINY_RECIPE, [llm_clock, "prealign.objective=ctc", "prealign.minutes=2"])
    assert _prealign_stage_config(by_minutes, tmp_path).trainer.max_time == {"minutes": 2.0}
    by_steps = load_config(TINY_RECIPE, [llm_clock, "prealign.objective=ctc", "prealign.steps=5"])
    assert _prealign_stage_config(by_steps, tmp_path).trainer.max_time is None
