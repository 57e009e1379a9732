"""The paper's figures from analysis results (matplotlib, no pyplot state); each returns its Figure.

One module per family: plot_load (accuracy, steps, loss against the load), plot_scaling (critical load against
dimension), plot_scores (spectra and score densities), plot_adaptive (the adaptive axes), plot_oracle (the exact
LP); plot_style holds what they share.
"""
from __future__ import annotations

from lamcap.analysis.plot_adaptive import adaptive_dimension_figure, adaptive_rank_figure
from lamcap.analysis.plot_load import accuracy_figure, loss_figure, steps_figure
from lamcap.analysis.plot_oracle import gap_figure, margin_figure
from lamcap.analysis.plot_scaling import scaling_figure
from lamcap.analysis.plot_scores import hebbian_scores_figure, input_figure, scores_figure, spectra_figure
from lamcap.analysis.plot_style import ALPHA_LABEL, PROBLEM_NAMES, SOLVER_STYLE, ordered, save

__all__ = ["ALPHA_LABEL", "PROBLEM_NAMES", "SOLVER_STYLE", "accuracy_figure", "adaptive_dimension_figure",
           "adaptive_rank_figure", "gap_figure", "hebbian_scores_figure", "input_figure", "loss_figure",
           "margin_figure", "ordered", "save", "scaling_figure", "scores_figure", "spectra_figure", "steps_figure"]
