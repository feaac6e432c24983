"""The ``.cropmask`` accessor: a thin facade that validates and delegates.

It keeps only the object it wraps; every method forwards to a public function.
"""

from __future__ import annotations

from collections.abc import Sequence

import xarray as xr

from ._composite import Composite, composite
from ._cube import as_cube, require_bands
from ._io import to_cog, to_zarr
from ._sample import Samples, sample
from ._sentinel2 import REFLECTANCE_BANDS

__all__ = ["CropmaskAccessor"]


@xr.register_dataarray_accessor("cropmask")
@xr.register_dataset_accessor("cropmask")
class CropmaskAccessor:
    """Cropland mapping on a Sentinel-2 cube: ``cube.cropmask.<method>``.

    Examples
    --------
    >>> import xcrop
    >>> cube = xcrop.search(bbox, "2019-03-01/2020-03-31")  # doctest: +SKIP
    >>> cube.cropmask.check().band.values  # doctest: +SKIP
    """

    def __init__(self, obj: xr.DataArray | xr.Dataset) -> None:
        self._obj = obj

    def cube(self) -> xr.DataArray:
        """The wrapped object as a canonical (time, band, y, x) cube; see ``xcrop.as_cube``."""
        return as_cube(self._obj)

    def check(self, bands: Sequence[str] = REFLECTANCE_BANDS) -> xr.DataArray:
        """Validate dims, band names and CRS, require ``bands``, return the canonical cube."""
        cube = as_cube(self._obj)
        require_bands(cube, bands)
        return cube

    def composite(self, **kwargs) -> Composite:
        """Least-cloudy composites with NDVI; see :func:`xcrop.composite`."""
        return composite(self._obj, **kwargs)

    def sample(self, labels, **kwargs) -> Samples:
        """Samples of a composite DataArray at labelled points; see :func:`xcrop.sample`."""
        return sample(self._obj, labels, **kwargs)

    def predict(self, model, **kwargs) -> xr.DataArray:
        """Crop probability of a composite DataArray; see :func:`xcrop.predict`."""
        from ._inference import predict

        return predict(self._obj, model, **kwargs)

    def to_zarr(self, store, **kwargs):
        """Write a probability map to Zarr, resumably; see :func:`xcrop.to_zarr`."""
        return to_zarr(self._obj, store, **kwargs)

    def to_cog(self, path, **kwargs):
        """Write a probability map as a Cloud-Optimized GeoTIFF; see :func:`xcrop.to_cog`."""
        return to_cog(self._obj, path, **kwargs)

    @property
    def bands(self) -> list[str]:
        """Canonical names of the bands in the cube."""
        return [str(b) for b in as_cube(self._obj)["band"].values]
