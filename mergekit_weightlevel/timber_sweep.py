"""The documented import path of Timber λ sweeps; they live in ``running.sweep``."""

from mergekit_weightlevel.running.sweep import sweep_config, sweep_out_dirs, timber_sweep

__all__ = ["sweep_config", "sweep_out_dirs", "timber_sweep"]
