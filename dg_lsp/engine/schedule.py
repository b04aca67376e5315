"""Noise and temperature schedules of the denoising loop (kept apart, as MDLM does)."""

from __future__ import annotations


def temperature(step_remaining: int, max_steps: int, t_min: float, t_max: float) -> float:
    """Linear temperature: ``t_max`` at the first step, ``t_min`` at the last.

    Matches transformers' LinearTemperatureScheduleLogitsProcessor, where the step
    counter counts the steps *remaining* (max_steps at the first step, 1 at the last).
    """
    return t_min + (t_max - t_min) * (step_remaining / max_steps)

