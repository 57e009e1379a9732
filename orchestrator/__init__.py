"""Sweeps: the spec (spec/), the pure learners (learners/), the cost of a sweep (planning/) and its run on Ray
(runtime/). Imports point down that list; none of them imports lamcap.analysis."""
