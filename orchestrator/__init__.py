"""Sweeps: spec, adaptive search, Ray workers, scheduler, store and the command line."""
