"""The ``xcrop`` command line: each subcommand is a thin layer over the Python API.

    xcrop search   BBOX DATETIME --catalog URL|PATH --out items.json
    xcrop composite BBOX DATETIME --catalog ... --out composite.zarr
    xcrop sample   crop.shp noncrop.shp --label 1 --label 0 --composite comp.zarr --out local.npz
    xcrop sample   crowd.csv --catalog ... --year-column year --id plot_id --vote --out global.npz
    xcrop train    local.npz [more.npz ...] --global global.npz [--global ...] --out model.pt
    xcrop predict  composite.zarr model.pt --out map.zarr [--cog map.tif]
    xcrop evaluate test.npz --model model.pt | test.geojson --map map.tif --kind fraction
    xcrop demo     [--preset demo] [--out xcrop-demo]
    xcrop show-versions   (for bug reports; xcrop --version: xcrop's own)

Errors print one line that says what to do and exit with status 1 (2 for usage errors).
"""

from __future__ import annotations

import calendar
import datetime as dt
import math
import os
import re
import shutil
import sys
import tempfile
import warnings
from pathlib import Path

import click

from ._atomic import WRITE_ERRORS
from .errors import XcropError, XcropInputError

EXISTING = click.Path(exists=True, path_type=Path)


class Location(click.ParamType):
    """A local path (a ``Path``) or, where ``urls``, an fsspec URL such as
    ``s3://bucket/map.zarr``, kept as it is (``click.Path`` turns ``s3://b/x`` into
    ``s3:/b/x``, a local file)."""

    name = "path"

    def __init__(self, urls: bool = False, exists: bool = False) -> None:
        self.urls, self.exists = urls, exists

    def convert(self, value, param, ctx):
        text = str(value)
        if "://" not in text:
            return click.Path(exists=self.exists, path_type=Path).convert(text, param, ctx)
        if not self.urls:
            self.fail(
                f"{text}: give a local path here; URLs (s3://, gs://, az://, ...) are taken "
                "by the Zarr stores and COGs of `xcrop composite` and `xcrop predict`, and "
                "by `xcrop sample --composite`.",
                param,
                ctx,
            )
        return text


OUTPUT = Location()
STORE = Location(urls=True)  # a Zarr store or COG to write: a path or a URL
STORE_IN = Location(urls=True, exists=True)  # one to read: a local one must exist
CATALOG_HELP = (
    "A STAC API URL, 'earth-search', 'planetary-computer', or a static catalog / "
    "ItemCollection JSON file."
)


#: A bbox west of Greenwich or south of the equator starts with "-": not an option.
BBOX_SETTINGS = {"ignore_unknown_options": True}


def _bbox(text: str) -> tuple[float, float, float, float]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 4:
        raise click.BadParameter(f"{text!r}: give west,south,east,north in degrees.")
    west, south, east, north = values
    if not all(math.isfinite(v) for v in values):
        problem = "give four finite numbers"
    elif not all(-180 <= v <= 180 for v in (west, east)):
        problem = "longitudes must be within -180..180"
    elif not all(-90 <= v <= 90 for v in (south, north)):
        problem = "latitudes must be within -90..90"
    elif south > north:
        problem = "south is above north"
    else:
        return values
    raise click.BadParameter(f"{text!r}: {problem}; give west,south,east,north in degrees.")


_VECTOR_SUFFIXES = (".geojson", ".json", ".shp", ".gpkg", ".fgb", ".kml", ".gml", ".zip")


def _is_vector_file(text: str) -> bool:
    return text.lower().endswith(_VECTOR_SUFFIXES) or Path(text).is_file()


def _bbox_argument(ctx, param, value: str) -> str:
    """BBOX: west,south,east,north, or a vector file whose polygons are the area."""
    if _is_vector_file(value):
        if not Path(value).is_file():
            raise click.BadParameter(
                f"{value!r}: no such file; give west,south,east,north in degrees or the "
                "path of a GeoJSON, shapefile or GeoPackage of the area."
            )
        return value
    _bbox(value)  # checked while parsing, before anything is read
    return value


def _read_area(path: Path, flag: str):
    """The union of a vector file's geometries, in lon/lat."""
    import geopandas as gpd

    try:
        frame = gpd.read_file(path)
    except Exception as err:  # pyogrio's errors name the format problem
        raise XcropInputError(
            f"{flag} {path}: cannot read it as a vector file ({_one_line(err)}); give a "
            "GeoJSON, shapefile or GeoPackage of the area's polygons."
        ) from None
    if frame.crs is None:
        raise XcropInputError(
            f"{flag} {path} has no CRS; give the file one (e.g. ogr2ogr -a_srs EPSG:4326)."
        )
    shape = frame.to_crs(4326).geometry.union_all()
    if shape is None or shape.is_empty or shape.area == 0:
        raise XcropInputError(f"{flag} {path} holds no polygon; give the area's polygons.")
    return shape


def _area(bbox: str, aoi: Path | None):
    """What the search and the cube cover: BBOX (numbers or a file) and --aoi FILE."""
    import shapely

    if not _is_vector_file(bbox) and aoi is None:
        return _bbox(bbox)
    area = _read_area(Path(bbox), "BBOX") if _is_vector_file(bbox) else shapely.box(*_bbox(bbox))
    if aoi is not None:
        area = area.intersection(_read_area(aoi, "--aoi"))
        if area.is_empty or area.area == 0:
            raise XcropInputError(
                f"--aoi {aoi} does not overlap BBOX {bbox}; give an area inside it."
            )
    return area


def _instant(text: str) -> tuple[dt.datetime, dt.datetime]:
    """The first and last moment of a STAC datetime: YYYY, YYYY-MM, YYYY-MM-DD or RFC 3339."""
    if m := re.fullmatch(r"(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?", text):
        year, month, day = int(m[1]), int(m[2] or 1), int(m[3] or 1)
        first = dt.datetime(year, month, day)
        if m[3]:
            return first, first + dt.timedelta(days=1, microseconds=-1)
        if m[2]:
            return first, dt.datetime(year, month, calendar.monthrange(year, month)[1], 23, 59, 59)
        return first, dt.datetime(year, 12, 31, 23, 59, 59)
    moment = dt.datetime.fromisoformat(text.replace("z", "Z").replace("Z", "+00:00"))
    if moment.tzinfo is not None:
        moment = moment.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return moment, moment


def _datetime_argument(ctx, param, value: str | None) -> str | None:
    """DATETIME as STAC takes it (a day, a month, a year, START/END, open ends '..'), with
    real dates in order."""
    if value is None:
        return value
    parts = value.split("/")
    if len(parts) > 2 or parts == ["", ""] or parts == ["..", ".."]:
        raise click.BadParameter(
            f"{value!r}: give a date or START/END, e.g. 2019-03-01/2020-03-31."
        )
    try:
        bounds = [None if p in ("", "..") else _instant(p) for p in parts]
    except ValueError as e:
        raise click.BadParameter(
            f"{value!r}: {e}; give dates as YYYY-MM-DD (or START/END, e.g. 2019-03-01/2020-03-31)."
        ) from None
    first, last = bounds[0], bounds[-1]
    if len(bounds) == 2 and first is not None and last is not None and first[0] > last[1]:
        raise click.BadParameter(f"{value!r}: the start is after the end; give START/END.")
    return value


def _date_option(ctx, param, value: str | None) -> str | None:
    if value is not None:
        try:
            dt.date.fromisoformat(value)
        except ValueError as e:
            raise click.BadParameter(f"{value!r}: {e}; give a day as YYYY-MM-DD.") from None
    return value


def _progress(desc: str):
    """The dask computations' progress on stderr: a bar on a terminal, a few lines in a log."""
    from ._progress import DaskProgress

    return DaskProgress(desc)


# -- checks before work: outputs that can be written, inputs that can be read -------------
def _where(location: Path | str) -> str:
    """A path made absolute, or a URL as it is: to tell whether two name one store."""
    return location.rstrip("/") if isinstance(location, str) else str(location.absolute())


def _is_zarr(path: Path) -> bool:
    return any((path / name).exists() for name in (".zgroup", ".zarray", "zarr.json"))


def _writable(path: Path | None, flag: str, kind: str = "file") -> None:
    """Refuse, before any work, an output that cannot be written.

    Only the output itself may be created: its folder must exist and take new files. A
    ``kind="file"`` output must not be a folder; a ``"store"`` (a Zarr folder) must not be
    a file, nor a folder of other things (xcrop does not replace those); a ``"folder"``
    (the demo's report) must not be a file. The probe file is removed at once.
    """
    if path is None:
        return
    if isinstance(path, str):  # a URL (see Location): the bucket and credentials first
        from ._store import Target

        Target(path, {}).check_parent(flag)
        return
    where = f"{flag} {path}"
    parent = path.absolute().parent
    if not parent.is_dir():
        above = next(p for p in (parent, *parent.parents) if p.exists() or p == p.parent)
        if above.exists() and not above.is_dir():
            raise XcropInputError(f"{where}: {above} is a file, not a folder; give another {flag}.")
        raise XcropInputError(
            f"{where}: the folder {parent} does not exist (xcrop creates only the output "
            f"itself); create it first (mkdir -p {parent}) or give another {flag}."
        )
    if path.is_dir():
        if kind == "file":
            raise XcropInputError(f"{where} is a folder; give the path of a file for {flag}.")
        if kind == "store" and any(path.iterdir()) and not _is_zarr(path):
            raise XcropInputError(
                f"{where} is a folder that is not a Zarr store; xcrop will not replace it: "
                f"give a new path for {flag}."
            )
    elif path.exists():
        if kind != "file":
            what = "Zarr store" if kind == "store" else "folder"
            raise XcropInputError(f"{where} is a file, not a {what}; give another {flag}.")
        if not os.access(path, os.W_OK):
            raise XcropInputError(
                f"{where}: cannot replace {path} (permission denied); give another {flag}."
            )
    folder = path if path.is_dir() else parent
    try:
        fd, probe = tempfile.mkstemp(prefix=".xcrop-write-test-", dir=folder)
    except OSError as e:
        reason = WRITE_ERRORS.get(e.errno or 0, "it takes no new files")
        raise XcropInputError(
            f"{where}: cannot write in {folder} ({reason}); give another {flag}."
        ) from None
    os.close(fd)
    os.unlink(probe)


def _samples(path: Path, what: str):
    """Samples from a file, or an error naming the argument and how to make one."""
    import zipfile

    from ._sample import Samples

    try:
        return Samples.load(path)
    except XcropError:
        raise
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
        reason = f"no array {e.args[0].split()[0]!r}" if isinstance(e, KeyError) else "not an .npz"
        raise XcropInputError(
            f"{what} {path} is not a samples file ({reason}); make one with "
            "`xcrop sample LABELS --composite STORE --out FILE.npz`."
        ) from None


def _joined(paths, what: str):
    """The samples of one or more files, one after the other (same bands needed)."""
    parts = [_samples(path, what) for path in paths]
    for path, part in zip(paths[1:], parts[1:], strict=True):
        if part.bands != parts[0].bands:
            raise XcropInputError(
                f"{what} {path} has bands {list(part.bands)}, {paths[0]} has "
                f"{list(parts[0].bands)}; give {what} files sampled from composites with "
                "the same bands."
            )
    return parts[0].concat(*parts[1:]) if len(parts) > 1 else parts[0]


def _model(path: Path, what: str):
    """A model file, or an error naming the argument and how to make one."""
    from ._model import load_model
    from .errors import ModelError

    try:
        return load_model(path)
    except ModelError as e:
        if "is not an xcrop model file" not in str(e):
            raise
        raise XcropInputError(
            f"{what} {path} is not an xcrop model file; make one with "
            "`xcrop train LOCAL.npz --out MODEL.pt`."
        ) from None


def _raster(path: Path, flag: str) -> None:
    import rasterio

    try:
        with rasterio.open(path):
            pass
    except rasterio.errors.RasterioIOError:
        raise XcropInputError(
            f"{flag} {path} is not a raster GDAL can read; give a GeoTIFF or COG."
        ) from None


def search_arguments(command):
    """BBOX, DATETIME, --catalog, --collection and --max-cloud, shared by the commands that
    search."""
    options = [
        click.argument("bbox", callback=_bbox_argument),
        click.argument("datetime", callback=_datetime_argument),
        click.option(
            "--aoi",
            type=EXISTING,
            help="A vector file (GeoJSON, shapefile, GeoPackage) of the area's polygons: "
            "nothing outside them is read, and their pixels are nodata. BBOX may also be "
            "such a file.",
        ),
        click.option("--catalog", default="earth-search", show_default=True, help=CATALOG_HELP),
        click.option("--collection", help="Collection id (default: the catalog's Sentinel-2 L2A)."),
        click.option(
            "--max-cloud",
            type=click.FloatRange(0, 100),
            help="Largest scene cloud cover (%) to keep.",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _debug_option(ctx, param, value: bool) -> None:
    global _debug
    _debug = _debug or value


def _network():
    """The --timeout and --retries of the command line, for every request."""
    from ._network import Network

    params = click.get_current_context().find_root().params
    return Network(timeout=params.get("timeout") or 30.0, retries=params.get("retries", 5))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="xcrop")
@click.option(
    "--debug",
    is_flag=True,
    expose_value=False,
    callback=_debug_option,
    help="Show Python tracebacks instead of one-line errors (also XCROP_DEBUG=1).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=30.0,
    show_default=True,
    help="Seconds to wait for a STAC server's answer.",
)
@click.option(
    "--retries",
    type=click.IntRange(min=0),
    default=5,
    show_default=True,
    help="Tries again after a failed request (waits 0, 2, 4, 8, 16 s plus jitter).",
)
def cli(timeout: float, retries: int) -> None:
    """Cropland maps from Sentinel-2 time series (Kerner et al. 2020).

    Run `xcrop demo` for the whole method on simulated data, or the steps one by one:
    search, composite, sample, train, predict, evaluate. `xcrop COMMAND --help` explains
    each option.
    """


@cli.command(context_settings=BBOX_SETTINGS)
@search_arguments
@click.option("--out", type=OUTPUT, help="Write the items as JSON.")
def search(bbox, datetime, aoi, catalog, collection, max_cloud, out) -> None:
    """Find Sentinel-2 L2A items over BBOX (west,south,east,north) and DATETIME
    (e.g. 2019-03-01/2020-03-31); print them, optionally save them as an ItemCollection
    (usable as --catalog by the other commands)."""
    from ._catalog import find_items

    _writable(out, "--out")
    items = find_items(
        _area(bbox, aoi),
        datetime,
        catalog=catalog,
        collection=collection,
        max_cloud=max_cloud,
        network=_network(),
    )
    dates = sorted(i.datetime for i in items if i.datetime)
    tiles = sorted({str(i.properties.get("s2:mgrs_tile", "?")) for i in items})
    click.echo(f"{len(items)} items, {dates[0]:%Y-%m-%d} .. {dates[-1]:%Y-%m-%d}, tiles {tiles}")
    if out:
        from ._atomic import replacing

        with replacing(out) as tmp:  # whole or not at all
            items.save_object(dest_href=str(tmp))
        click.echo(f"wrote {out}")


@cli.command(context_settings=BBOX_SETTINGS)
@search_arguments
@click.option(
    "--start",
    callback=_date_option,
    help="First day of the 12 periods (default: the first 1 March).",
)
@click.option(
    "--score",
    type=click.Choice(["schmitt", "scl"]),
    default="schmitt",
    show_default=True,
    help="Cloud score: Schmitt et al. (with SCL) or SCL alone.",
)
@click.option(
    "--chunks",
    type=click.IntRange(min=1),
    default=1024,
    show_default=True,
    help="Pixels per chunk side.",
)
@click.option("--out", type=STORE, required=True, help="Zarr store to write (a path or a URL).")
@click.option(
    "--overwrite", is_flag=True, help="Replace a composite store of other inputs at --out."
)
@click.option(
    "--allow-gaps",
    is_flag=True,
    help="Leave a COG that cannot be read (after retries) as nodata instead of failing; "
    "the failed reads are counted and listed.",
)
def composite(
    bbox,
    datetime,
    aoi,
    catalog,
    collection,
    max_cloud,
    start,
    score,
    chunks,
    out,
    overwrite,
    allow_gaps,
) -> None:
    """Search BBOX (or the area of --aoi) and DATETIME, make the 12 least-cloudy 30-day
    composites with NDVI and write them (with valid-observation counts and dates) to a
    Zarr store."""
    from ._composite import composite as make_composite
    from ._io import write_composite
    from ._reads import read_failures
    from ._stac import search as stac_search

    _writable(out, "--out", "store")
    cube = stac_search(
        _area(bbox, aoi),
        datetime,
        catalog=catalog,
        collection=collection,
        max_cloud=max_cloud,
        chunks=chunks,
        network=_network(),
        on_error="nodata" if allow_gaps else "raise",
    )
    click.echo(f"cube: {dict(cube.sizes)}")
    comp = make_composite(cube, start=start, score=score)
    read_failures(reset=True)
    write_composite(comp, out, overwrite=overwrite)
    click.echo(f"wrote {out}: {dict(comp.data.sizes)}")
    if failed := read_failures():
        files = ", ".join(list(failed)[:5]) + (" ..." if len(failed) > 5 else "")
        click.echo(
            f"warning: {sum(failed.values())} reads of {len(failed)} files failed and were "
            f"left as gaps (--allow-gaps; the counts show where): {files}",
            err=True,
        )


@cli.command()
@click.argument("labels", nargs=-1, required=True, type=EXISTING)
@click.option("--out", type=OUTPUT, required=True, help="Samples (.npz).")
@click.option(
    "--composite", "store", type=STORE_IN, help="A composite store to sample (a path or a URL)."
)
@click.option("--catalog", help=f"Sample around the points from imagery instead: {CATALOG_HELP}")
@click.option("--collection", help="Collection id (with --catalog).")
@click.option(
    "--datetime",
    callback=_datetime_argument,
    help="Season for every point (with --catalog).",
)
@click.option("--year-column", help="Column with each point's year (with --catalog).")
@click.option(
    "--group",
    "group_column",
    help="Column naming each label's field or place (e.g. a field id): `xcrop train` "
    "then validates on whole groups, never on pixels of a field it trains on.",
)
@click.option(
    "--label",
    multiple=True,
    default=("label",),
    show_default=True,
    help="Label column (0/1 or text), or 0 / 1 for a file of one class: once for all "
    "LABELS, or once per file in their order (crop.shp noncrop.shp --label 1 --label 0).",
)
@click.option("--id", "id_", help="Id column (default: row numbers, across all LABELS).")
@click.option(
    "--vote",
    is_flag=True,
    help="Crowd labels, one row per point and labeller: one label per --id by the mean of "
    "the votes (crop above 0.5), as the paper does for crowdsourced labels.",
)
@click.option(
    "--local/--global",
    "local",
    default=True,
    show_default=True,
    help="Mark the samples as local (target region) or global.",
)
def sample(labels, out, store, catalog, collection, datetime, year_column, group_column, label,
           id_, vote, local):  # fmt: skip
    """Training tensors at labelled points (LABELS: one or more shapefiles, GeoPackages,
    GeoJSON or CSV files, joined), from a composite store or, with --catalog, from windows
    read around the points."""
    if (store is None) == (catalog is None):
        raise click.UsageError("Give either --composite STORE or --catalog CATALOG.")
    _writable(out, "--out")
    points = _points(labels, label, id_, vote, year_column, group_column)
    group = "group" if group_column else None
    if catalog:
        from ._points import sample_points

        # finished windows are kept here until the samples are saved: the same command
        # run again after a failure (a server that went away) reads only the others
        windows = out.absolute().with_name(f".{out.name}.windows")
        with _progress("sampling windows"):
            samples = sample_points(
                points,
                datetime,
                catalog=catalog,
                collection=collection,
                year="year" if year_column else None,
                local=local,
                group=group,
                network=_network(),
                checkpoint=windows,
            )
    else:
        from ._io import open_composite

        with _progress("sampling the composite"):
            samples = open_composite(store).sample(points, local=local, group=group)
    _some(samples, points, ", ".join(map(str, labels)))
    samples.save(out)
    if catalog:
        shutil.rmtree(windows, ignore_errors=True)
    click.echo(
        f"{len(samples)} samples of {samples.report.get('read', len(points))} points "
        f"-> {out}; dropped: {samples.report.get('dropped', {})}"
    )


def _points(files, labels, id_, vote: bool, year_column: str | None,
            group_column: str | None = None):  # fmt: skip
    """The labelled points of LABELS: each file read with its --label (years and groups
    attached), then joined (``concat_labels``) or, with --vote, voted per --id
    (``crowd_vote``)."""
    from ._labels import concat_labels, read_labels

    if len(labels) not in (1, len(files)):
        raise click.UsageError(
            f"Give --label once (for every file) or once per LABELS file ({len(files)} "
            f"files); got {len(labels)}."
        )
    if vote and id_ is None:
        raise click.UsageError(
            "--vote groups the rows of each point by --id: give --id COLUMN (e.g. --id plot_id)."
        )
    parts = []
    per_file = labels * len(files) if len(labels) == 1 else labels
    for path, label in zip(files, per_file, strict=True):
        table = _table(path)  # read once: labels and, with --year-column, years
        part = read_labels(table, label=int(label) if label in ("0", "1") else label, id=id_,
                           long=vote)  # fmt: skip
        if year_column:
            part = part.assign(year=_column(table, part, year_column, id_, "--year-column"))
        if group_column:
            part = part.assign(group=_column(table, part, group_column, id_, "--group"))
        parts.append(part)
    points = _vote(parts) if vote else concat_labels(parts, renumber=id_ is None)
    report = points.attrs["report"]
    click.echo(
        f"labels: {report['read']} rows -> {len(points)} points"
        + (f" (crowd vote of {report['votes']} labels)" if vote else "")
        + f"; dropped: {report['dropped']}"
    )
    if not vote and {"duplicate", "conflicting labels"} & set(report["dropped"]):
        click.echo(
            "note: rows share an id or a place; for crowd labels (one row per labeller) add "
            "--vote --id COLUMN to vote on each point."
        )
    return points


def _vote(parts):
    """One label per id from the rows of all files: ``crowd_vote``, years and groups kept."""
    import geopandas as gpd
    import pandas as pd

    from ._labels import crowd_vote

    rows = gpd.GeoDataFrame(pd.concat(parts, ignore_index=True), crs=4326)
    votes = crowd_vote(rows)
    for column in ("year", "group"):
        if column in rows:
            first = rows.groupby("id")[column].first()
            votes = votes.assign(**{column: first.loc[votes["id"]].to_numpy()})
    dropped: dict[str, int] = {}
    for counts in (
        *(p.attrs["report"]["dropped"] for p in parts),
        votes.attrs["report"]["dropped"],
    ):
        for reason, n in counts.items():
            dropped[reason] = dropped.get(reason, 0) + n
    votes.attrs["report"] = {
        "read": sum(p.attrs["report"]["read"] for p in parts),
        "votes": len(rows),
        "kept": len(votes),
        "dropped": dropped,
    }
    return votes


def _table(path: Path, what: str = "LABELS"):
    """A labels file as a (Geo)DataFrame: CSV with pandas, vector files with geopandas."""
    import geopandas as gpd
    import pandas as pd

    csv = path.suffix.lower() == ".csv"
    try:
        table = pd.read_csv(path) if csv else gpd.read_file(path)
    except Exception as e:  # a reader that fails here means: not a file of labels
        reason = _one_line(e) if csv else "not a vector file GDAL can read"
        raise XcropInputError(
            f"{what} {path}: {reason}; give a shapefile, GeoPackage, GeoJSON or CSV."
        ) from None
    if csv:
        if not {"lon", "lat"} <= set(table.columns):  # LON, LAT of Collect Earth's files
            table = table.rename(columns={c: c.lower() for c in table.columns
                                          if c.lower() in ("lon", "lat")})  # fmt: skip
        _lonlat(table, path, what)
    return table


def _lonlat(table, path: Path, what: str) -> None:
    """A CSV of labels holds lon/lat in degrees (or a WKT ``sample_geom``)."""
    import pandas as pd

    if "sample_geom" in table:
        return
    if not {"lon", "lat"} <= set(table.columns):
        raise XcropInputError(
            f"{what} {path}: a CSV of labels needs columns lon and lat (degrees) or a WKT "
            f"sample_geom; it has {list(table.columns)}: rename its coordinate columns."
        )
    lon = pd.to_numeric(table["lon"], errors="coerce")
    lat = pd.to_numeric(table["lat"], errors="coerce")
    finite = lon.notna() & lat.notna()
    off = (lon.abs() > 180) | (lat.abs() > 90)
    if finite.any() and off[finite].all():
        x, y = lon[finite].iloc[0], lat[finite].iloc[0]
        raise XcropInputError(
            f"{what} {path}: lon/lat such as ({x:g}, {y:g}) are not degrees; the CSV looks "
            "projected (e.g. UTM metres): convert its points to lon/lat (EPSG:4326)."
        )


def _some(samples, points, labels: Path | str) -> None:
    """Refuse to write a samples file without samples, and say where the rows went."""
    if len(samples):
        return
    read = points.attrs.get("report", {})
    dropped = {**read.get("dropped", {}), **samples.report.get("dropped", {})}
    why = ", ".join(f"{n} {reason}" for reason, n in dropped.items()) or "none left"
    raise XcropInputError(
        f"No sample from LABELS {labels}: of {read.get('read', len(points))} rows, {why}; "
        "check that the points lie inside the composite (or the catalog's imagery)."
    )


def _column(table, points, column: str, id_: str | None, flag: str):
    """Each point's value of ``column`` (a year, a group) in the table it was read from:
    by ``id_``, or by row (``read_labels`` numbers the rows when no id column is given)."""
    if column not in table:
        raise XcropInputError(
            f"No column {column!r} among {list(table.columns)}; give {flag} one of them."
        )
    if id_ is None:
        return table[column].to_numpy()[points["id"].to_numpy()]
    return table.groupby(id_)[column].first().loc[points["id"]].to_numpy()


@cli.command()
@click.argument("local", nargs=-1, required=True, type=EXISTING)
@click.option(
    "--global",
    "global_",
    multiple=True,
    type=EXISTING,
    help="Global samples (.npz), repeat for several files: multi-headed.",
)
@click.option("--out", type=OUTPUT, required=True, help="Model file.")
@click.option(
    "--grid-search/--no-grid-search",
    default=True,
    show_default=True,
    help="Try classifier layers {1, 2} x dropout {0, 0.2}, keep the best AUC.",
)
@click.option("--alpha", type=float, default=10.0, show_default=True, help="Global loss weight.")
@click.option(
    "--members",
    type=click.IntRange(min=1),
    default=5,
    show_default=True,
    help="LSTMs of the ensemble, one per fold of a k-fold split; 1: a single LSTM.",
)
@click.option(
    "--calibrate/--no-calibrate",
    default=True,
    show_default=True,
    help="Platt-scale the local head on the validation samples (0.5 = even odds).",
)
@click.option("--max-epochs", type=int, default=200, show_default=True)
@click.option("--patience", type=int, default=10, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
def train(
    local, global_, out, grid_search, alpha, members, calibrate, max_epochs, patience, seed
) -> None:
    """Train the (multi-headed) LSTM ensemble on LOCAL samples (one or more .npz files,
    joined) and --global ones."""
    from ._training import grid_search as run_grid
    from ._training import train as run_train

    _writable(out, "--out")  # before training, not after
    loc = _joined(local, "LOCAL")
    glob = _joined(global_, "--global") if global_ else None
    click.echo(
        f"local: {len(loc)} samples from {len(local)} file(s)"
        + ("" if loc.groups is None else f" in {len(set(loc.groups.tolist()))} groups (--group)")
        + (f"; global: {len(glob)} from {len(global_)} file(s)" if glob is not None else "")
    )
    options = {"alpha": alpha, "max_epochs": max_epochs, "patience": patience, "seed": seed,
               "members": members, "calibrate": calibrate}  # fmt: skip
    if grid_search:
        model, results = run_grid(loc, glob, **options)
        click.echo(results.to_string(index=False))
        if results.attrs.get("tie"):
            click.echo(
                "tie: configurations shared the best validation AUC; the lowest validation "
                "loss (then the simpler model) was kept."
            )
    else:
        from ._progress import Progress

        # the most epochs: early stopping ends sooner, and the last line says where
        with Progress(max_epochs * members, "training", "epoch") as bar:
            model, _ = run_train(loc, glob, progress=lambda row: bar.update(1), **options)
    model.save(out)
    click.echo(f"model -> {out}: {model.config} {model.info}")


@cli.command()
@click.argument("store", type=STORE_IN)
@click.argument("model_file", type=EXISTING)
@click.option("--out", type=STORE, required=True, help="Zarr store (a path or a URL).")
@click.option(
    "--dtype",
    type=click.Choice(["float32", "uint8"]),
    default="float32",
    show_default=True,
    help="uint8: 0..254 with 255 nodata (scale 1/254).",
)
@click.option("--cog", type=STORE, help="Also write a COG (a path or a URL).")
@click.option("--head", type=click.Choice(["local", "global"]), default="local", show_default=True)
@click.option("--overwrite", is_flag=True, help="Replace an existing store of another grid.")
def predict(store, model_file, out, dtype, cog, head, overwrite) -> None:
    """Map the crop probability of a composite STORE with MODEL_FILE into a Zarr store
    (resumes an interrupted write when run again)."""
    from ._io import open_composite, open_probability, to_cog, to_zarr

    _writable(out, "--out", "store")
    _writable(cog, "--cog")
    if _where(out) == _where(store):
        raise XcropInputError(f"--out {out} is the composite STORE itself; give another path.")
    model = _model(model_file, "MODEL_FILE")
    if head == "global" and not model.multi_head:
        raise XcropInputError(
            f"--head global: {model_file} is single-headed (trained without --global); "
            "use --head local."
        )
    prob = open_composite(store).predict(model, head=head)
    to_zarr(prob, out, dtype=dtype, overwrite=overwrite)
    click.echo(f"wrote {out}")
    if cog:
        to_cog(open_probability(out), cog, dtype=dtype)
        click.echo(f"wrote {cog}")


@cli.command()
@click.argument("test", type=EXISTING)
@click.option("--model", "model_file", type=EXISTING, help="A model file (TEST: samples .npz).")
@click.option("--map", "map_file", type=EXISTING, help="A map raster (TEST: labelled points).")
@click.option(
    "--kind",
    type=click.Choice(["fraction", "probability", "classes"]),
    default="fraction",
    show_default=True,
    help="What the map's values are.",
)
@click.option("--label", default="label", show_default=True, help="Label column (with --map).")
@click.option("--out", type=OUTPUT, help="Write the metrics as CSV.")
def evaluate(test, model_file, map_file, kind, label, out) -> None:
    """Accuracy, ROC AUC, precision, recall and F1 on TEST of a model or a map raster."""
    from ._evaluation import results_table, to_markdown

    if (model_file is None) == (map_file is None):
        raise click.UsageError("Give either --model MODEL or --map RASTER.")
    _writable(out, "--out")
    if model_file:
        from ._evaluation import evaluate as run_evaluate

        if test.suffix != ".npz":
            raise XcropInputError(
                f"{test}: with --model, TEST is samples from `xcrop sample` (.npz)."
            )
        result = run_evaluate(_model(model_file, "--model"), _samples(test, "TEST"))
        name = model_file.name
    else:
        from ._labels import read_labels
        from ._maps import evaluate_map

        _raster(map_file, "--map")
        points = read_labels(_table(test, "TEST"), label=label)
        result = evaluate_map(map_file, points, kind=kind)
        name = map_file.name
    frame = results_table({name: result})
    click.echo(to_markdown(frame))
    if out:
        from ._atomic import replacing

        with replacing(out) as tmp:
            frame.to_csv(tmp)


def _aoi_file(ctx, param, value: Path | None):
    """--aoi FILE read once, as its polygons' union in lon/lat (refused in one line)."""
    return None if value is None else _read_area(value, "--aoi")


def map_arguments(command):
    """MAP, --aoi, --threshold and --kind, shared by the commands that read a map's strata."""
    options = [
        click.argument("map_file", metavar="MAP", type=STORE_IN),
        click.option(
            "--aoi",
            type=EXISTING,
            callback=_aoi_file,
            help="Only the map inside this polygon file.",
        ),
        click.option(
            "--threshold",
            type=click.FloatRange(0, 1),
            default=0.5,
            show_default=True,
            help="Probability from which a pixel is mapped crop.",
        ),
        click.option(
            "--kind",
            type=click.Choice(["probability", "classes"]),
            default="probability",
            show_default=True,
            help="What the map's values are.",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


@cli.command()
@map_arguments
@click.argument("reference", type=EXISTING)
@click.option("--label", default="label", show_default=True, help="Reference label column.")
@click.option(
    "--variance",
    type=click.Choice(["laplace", "wald"]),
    default="laplace",
    show_default=True,
    help="Standard errors: wald is Olofsson et al.'s; laplace does not take a stratum "
    "whose sample saw no error as exact.",
)
@click.option("--out", type=OUTPUT, help="Write the estimate's table as CSV.")
def area(map_file, aoi, threshold, kind, reference, label, variance, out) -> None:
    """Area of each class with its 95 % confidence interval, and the map's accuracies,
    from MAP (an xcrop Zarr store or a GeoTIFF) and REFERENCE points labelled on a
    stratified random sample of it (`xcrop sample-design`), after Olofsson et al. 2014."""
    from ._areas import area as run_area
    from ._labels import read_labels

    _writable(out, "--out")
    if str(map_file).lower().endswith((".tif", ".tiff")):
        _raster(Path(map_file), "MAP")
    points = read_labels(_table(reference, "REFERENCE"), label=label)
    estimate = run_area(map_file, points, threshold=threshold, aoi=aoi, kind=kind,
                        variance=variance)  # fmt: skip
    click.echo(estimate.to_markdown())
    report = estimate.report
    left = {k: v for k, v in report.items() if k not in ("read", "used") and v}
    click.echo(f"reference points: {report['used']} of {report['read']} used"
               + (f"; left out: {left}" if left else ""))  # fmt: skip
    if out:
        from ._atomic import replacing

        with replacing(out) as tmp:
            estimate.table.to_csv(tmp)


@cli.command("sample-design")
@map_arguments
@click.option("--n", "n", type=click.IntRange(min=1), required=True, help="Points in all.")
@click.option("--out", type=OUTPUT, required=True,
              help="The design: .geojson, or .csv for Collect Earth Online.")  # fmt: skip
@click.option(
    "--allocation",
    type=click.Choice(["proportional", "equal"]),
    default="proportional",
    show_default=True,
    help="Points per stratum: proportional to its area (at least --min each), or equal.",
)
@click.option("--min", "min_per_stratum", type=int, default=50, show_default=True,
              help="Fewest points of a stratum under proportional allocation.")  # fmt: skip
@click.option("--seed", type=int, default=0, show_default=True)
def sample_design(map_file, aoi, threshold, kind, n, out, allocation, min_per_stratum,
                  seed) -> None:  # fmt: skip
    """A stratified random sample of MAP's pixels for reference labelling (strata: the map's
    classes), reproducible by --seed; label it and give it to `xcrop area`."""
    from ._areas import sample_for_area, write_sample_design

    _writable(out, "--out")
    if out.suffix.lower() not in (".geojson", ".json", ".csv"):
        raise XcropInputError(f"--out {out}: write the design as .geojson or .csv (Collect Earth).")
    design = sample_for_area(
        map_file, n, allocation=allocation, min_per_stratum=min_per_stratum, seed=seed,
        threshold=threshold, aoi=aoi, kind=kind,
    )  # fmt: skip
    write_sample_design(design, out)
    click.echo(f"{len(design)} points ({design.attrs['allocation']} per stratum) -> {out}")


@cli.command()
@click.option("--preset", type=click.Choice(["tiny", "demo"]), default="demo", show_default=True)
@click.option("--out", type=OUTPUT, default="xcrop-demo", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--serve/--no-serve",
    default=True,
    show_default=True,
    help="Search through a real STAC API (rustac serve) or the static catalog.",
)
@click.option(
    "--sensitivity/--no-sensitivity",
    default=True,
    show_default=True,
    help="Also measure metrics against the number of local labels (3 seeds).",
)
def demo(preset, out, seed, serve, sensitivity) -> None:
    """The whole method on the simulated archive: search, composite, sample, train,
    evaluate, predict; writes a report folder (Zarr, COG, PNGs, metrics, GeoJSON)."""
    from ._demo import run_demo

    _writable(out, "--out", "folder")
    run_demo(
        preset,
        out=out,
        seed=seed,
        serve=serve,
        sensitivity_seeds=(0, 1, 2) if sensitivity else (),
        log=click.echo,
    )


#: Python advice in library messages, and what a command-line user does instead: the
#: specific phrasings first, then the names of API calls whatever the words around them.
_CLI_TERMS = [
    (r"pass overwrite=True", "add --overwrite"),
    (r"(call|run) (xcrop\.)?to_zarr again to resume \([^)]*\)",
     "run the same `xcrop predict` again to resume"),
    (r"(call|run) (xcrop\.)?to_zarr again", "run the same `xcrop predict` again"),
    (r"predict with head='local'", "use --head local"),
    (r"head=('\w*'); use 'local' or 'global'", r"--head \1: use local or global"),
    (r"write one with \.rio\.write_crs\(\.\.\.\)", "make the store with `xcrop composite`"),
    (r" \(pass lon=, lat= for other names\)", ""),
    (r"pass start=\.\.\. inside", "give --start inside"),
    (r" \(composite\(bands=model\.bands\)\)", ""),
    (r"No label column ('[^']*'); columns are (\[.*?\])\.",
     r"No label column \1; columns are \2: give --label one of them."),
    (r"pass crs='EPSG:4326' \(or theirs\)", "give the file a CRS (e.g. ogr2ogr -a_srs EPSG:4326)"),
    (r"pass nodata=<value> if they mark missing data, scale= if the map has another range, "
     r"or kind='classes' for a class map",
     "set the raster's nodata if they mark missing data (gdal_edit.py -a_nodata VALUE), "
     "or use --kind classes for a class map"),
    (r"pass crs='EPSG:32631' \(for example\)",
     "add proj:epsg to the items (the command line has no CRS option)"),
    (r"use smaller chunks \(xcrop\.search\(chunks=\.\.\.\), xcrop composite --chunks\) or give "
     r"memory_budget=", "use smaller chunks (xcrop composite --chunks) or more memory"),
    (r"pass on_error='nodata' to map with this read left as a gap",
     "add --allow-gaps to leave it as a gap"),
    (r"network=xcrop\.Network\(timeout=\.\.\., retries=\.\.\.\)",
     "xcrop --timeout SECONDS --retries N before the command"),
    (r"check the credentials in storage_options \(or the environment\)",
     "check the credentials in the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, "
     "AWS_ENDPOINT_URL, or FSSPEC_S3_KEY, FSSPEC_S3_SECRET, FSSPEC_S3_ENDPOINT_URL)"),
    (r"check the endpoint in storage_options \(or the environment\)",
     "check the endpoint in the environment (AWS_ENDPOINT_URL or FSSPEC_S3_ENDPOINT_URL)"),
    (r"check storage_options and create the bucket first",
     "check the endpoint and credentials in the environment and create the bucket first"),
    (r"\bn=(\d+) cannot cover", r"--n \1 cannot cover"),
    (r"give label= the column of the reference labels", "give --label that column"),
    (r"give finer groups \(e\.g\. fields rather than villages\), fewer members, or groups=None",
     "sample with a finer --group (e.g. fields rather than villages), use fewer --members, "
     "or sample without --group"),
    (r"give finer groups \(e\.g\. fields rather than villages\), a larger val_fraction, or "
     r"groups=None", "sample with a finer --group (e.g. fields rather than villages) or "
     "without --group"),
    (r"\bxcrop\.write_composite\b(\(\))?", "`xcrop composite BBOX DATETIME --out STORE`"),
    (r"\bxcrop\.to_zarr\b(\(\))?", "`xcrop predict`"),
    (r"\bxcrop\.train\b(\(\))?", "`xcrop train`"),
    (r"\bxcrop\.sample\b(\(\))?", "`xcrop sample`"),
]  # fmt: skip
_debug = False
ISSUES = "https://github.com/xcrop/xcrop/issues"


def _one_line(e: object) -> str:
    return " ".join(str(e).split())


def _explain(e: Exception) -> str:
    """One line for an error that reached ``main``: what went wrong, and what to do (signed
    URLs' secrets removed)."""
    from ._network import redact

    return redact(_describe(e))


def _describe(e: Exception) -> str:
    if isinstance(e, XcropError):
        message = _one_line(e)
        for pattern, replacement in _CLI_TERMS:
            message = re.sub(pattern, replacement, message)
        return message
    if isinstance(e, OSError) and e.filename is not None:
        return f"{e.filename}: {e.strerror or _one_line(e)}; check the path and its permissions."
    if isinstance(e, OSError):  # rasterio's RasterioIOError and other reads
        return f"{_one_line(e)} (check the file, or that its server answers)."
    if isinstance(e, ImportError):
        return f"{_one_line(e)}; install it (pip install {e.name or 'PACKAGE'}) and run again."
    if isinstance(e, MemoryError):
        return "out of memory; use a smaller --chunks (xcrop composite) or a larger machine."
    return (
        f"{type(e).__name__}: {_one_line(e)} (unexpected: please report it with the command "
        f"and the output of `xcrop show-versions` at {ISSUES}; XCROP_DEBUG=1 or --debug "
        "shows the traceback)"
    )


@cli.command("show-versions")
def show_versions() -> None:
    """Print xcrop's, Python's and the libraries' versions (GDAL, odc-stac, dask, torch and
    CUDA, ...): paste them into a bug report."""
    from ._versions import show_versions

    show_versions()


def _command_path(argv: list[str] | None) -> str:
    args = sys.argv[1:] if argv is None else argv
    name = next((a for a in args if a in cli.commands), None)
    return f"xcrop {name}" if name else "xcrop"


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``xcrop`` command: every error becomes one line on stderr and
    exit status 1 (2 for usage errors); ``XCROP_DEBUG=1`` or ``xcrop --debug`` shows the
    traceback instead."""
    global _debug
    _debug = os.environ.get("XCROP_DEBUG", "") not in ("", "0")
    warnings.filterwarnings("ignore", message="Dataset has no geotransform")
    try:
        cli.main(args=argv, prog_name="xcrop", standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as e:
        e.show()  # `xcrop` alone: the help
        return e.exit_code
    except click.exceptions.Abort:
        click.echo("xcrop: aborted", err=True)
        return 1
    except click.UsageError as e:
        command = e.ctx.command_path if e.ctx else _command_path(argv)
        message = _one_line(e.format_message())
        click.echo(f"{command}: error: {message} (see '{command} --help')", err=True)
        return e.exit_code
    except click.ClickException as e:
        click.echo(f"xcrop: error: {_one_line(e.format_message())}", err=True)
        return e.exit_code
    except Exception as e:
        if _debug:
            raise
        click.echo(f"xcrop: error: {_explain(e)}", err=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
