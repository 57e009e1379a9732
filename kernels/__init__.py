"""Tensors in, tensors out: disorder, the fused loss, verification and solvers.

Nothing here knows about Ray or files. Import submodules directly
(``from lamcap.kernels.disorder import Instance``); this module stays light so that
numpy-only code can import ``lamcap.errors`` without loading torch.
"""
