"""From a store to thresholds, finite-size fits and figures (numpy, scipy, xarray, matplotlib)."""
