"""The Zarr store of a sweep (docs/STORE.md): its schema, the one reader, the one writer and the writer's lock.

Below the orchestrator and the analysis, which both use it; it knows nothing of Ray or torch.
"""
