"""Crash-safe appends to one table group of a store: new rows become visible all at once, or not at all.

Every batch is appended array by array (zarr's LocalStore writes each chunk and metadata file atomically:
temp file + rename), and only then is the group attribute `n_committed` raised in one metadata write.
Readers and a reopening writer take only the first `n_committed` rows, so a process killed mid-batch leaves
every earlier batch intact and the partial one invisible (reopening truncates it away). Every chunk is
written, even one equal to the fill value, so a chunk missing under committed rows is damage, never data.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from lamcap.errors import StoreError


@dataclass
class AppendTable:
    """One append-only group: its arrays share the leading dimension `dim`."""

    group: Any  # zarr.Group
    dim: str

    @property
    def n_committed(self) -> int:
        """The committed rows as this writer last wrote or read them."""
        return int(self.group.attrs.get("n_committed", 0))

    def n_committed_on_disk(self) -> int:
        """The committed rows as the store holds them now (another writer may have changed them)."""
        import zarr

        fresh = zarr.open_group(self.group.store, path=self.group.path, mode="r")
        return int(fresh.attrs.get("n_committed", 0))

    def check_unchanged(self, store_path: str) -> None:
        """StoreError when the store no longer holds exactly the rows this writer committed."""
        believed, now = self.n_committed, self.n_committed_on_disk()
        if believed != now:
            raise StoreError(f"store {store_path!r} changed under this sweep: its {self.group.path} group holds "
                             f"{now} committed rows where this driver committed {believed}; another process "
                             "wrote to it. Nothing was overwritten; check who writes the store, then resume")

    def truncate(self) -> None:
        """Cut every array back to the committed rows (drops a batch a crash left half-written)."""
        n = self.n_committed
        for _, arr in self.group.arrays():
            if arr.shape[0] != n:
                arr.resize((n, *arr.shape[1:]))

    def append(self, columns: dict[str, np.ndarray], extra_attrs: dict | None = None) -> None:
        """Append rows in three steps; a crash before the last leaves the committed rows as they were.

        1. chunk data of the new rows, written through in-memory arrays of the grown shape (the
           long step; on disk every array keeps its old, equal length),
        2. every array's grown shape (one small metadata file each, back to back),
        3. the group's `n_committed` (and `extra_attrs`) in one metadata write.
        """
        import zarr

        with zarr.config.set({"array.write_empty_chunks": True}):  # see the module docstring
            self._append(columns, extra_attrs)

    def _append(self, columns: dict[str, np.ndarray], extra_attrs: dict | None) -> None:
        n = self.n_committed
        k = len(next(iter(columns.values())))
        grown = {}
        for name, values in columns.items():
            arr = self.group[name]
            width = max(arr.shape[1], values.shape[1]) if values.ndim == 2 else None
            shape = (n + k,) if width is None else (n + k, width)
            grown[name] = shape
            view = view_as(arr, shape)
            if view is None:  # zarr's internals moved: grow first (rows past n_committed hold fill values a moment)
                arr.resize(shape)
                view = arr
            view[n : n + k] = pad(values, shape)
        for name, shape in grown.items():
            self.group[name].resize(shape)  # growing: no chunk lies outside
        self.group.attrs.update({**(extra_attrs or {}), "n_committed": n + k})



def view_as(arr: Any, shape: tuple[int, ...]) -> Any:
    """The array `arr` with `shape`, in memory only (its metadata is not saved), or None.

    Writing through it puts the new rows' chunks on disk before any reader can see the rows. It
    relies on zarr 3.1's AsyncArray internals; None where those are not as expected.
    """
    try:
        import zarr
        from zarr.core.array import AsyncArray

        inner = arr._async_array
        grown = dataclasses.replace(inner.metadata, shape=shape)
        return zarr.Array(AsyncArray(metadata=grown, store_path=inner.store_path, config=inner.config))
    except (ImportError, AttributeError, TypeError):
        return None


def pad(values: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """2-D rows padded on the right to the array's width (NaN or 0)."""
    if values.ndim == 1 or values.shape[1] == shape[1]:
        return values
    fill = {'f8': np.nan, '?': False}.get(values.dtype.str[1:], 0)
    out = np.full((values.shape[0], shape[1]), fill, dtype=values.dtype)
    out[:, : values.shape[1]] = values
    return out
