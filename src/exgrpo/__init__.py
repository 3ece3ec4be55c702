"""exgrpo: Explanatory Inversion + Explanatory GRPO for reasoning distillation."""

__version__ = "0.1.0"
