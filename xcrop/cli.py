"""The ``xcrop`` command line: each subcommand is a thin layer over the Python API.

    xcrop search   BBOX DATETIME --catalog URL|PATH --out items.json
    xcrop composite BBOX DATETIME --catalog ... --out composite.zarr
    xcrop sample   LABELS --composite composite.zarr --out local.npz
    xcrop sample   LABELS --catalog ... --year-column year --out global.npz
    xcrop train    local.npz --global global.npz --out model.pt
    xcrop predict  composite.zarr model.pt --out map.zarr [--cog map.tif]
    xcrop evaluate test.npz --model model.pt | test.geojson --map map.tif --kind fraction
    xcrop demo     [--preset demo] [--out xcrop-demo]

Errors print one line that says what to do and exit with status 1 (2 for usage errors).
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import click

from .errors import XcropError

EXISTING = click.Path(exists=True, path_type=Path)
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
    return values  # type: ignore[return-value]


def _progress():
    from dask.diagnostics import ProgressBar

    return ProgressBar(minimum=2)


def search_arguments(command):
    """BBOX, DATETIME, --catalog, --collection and --max-cloud, shared by the commands that
    search."""
    options = [
        click.argument("bbox"),
        click.argument("datetime"),
        click.option("--catalog", default="earth-search", show_default=True, help=CATALOG_HELP),
        click.option("--collection", help="Collection id (default: the catalog's Sentinel-2 L2A)."),
        click.option("--max-cloud", type=float, help="Largest scene cloud cover (%) to keep."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="xcrop")
def cli() -> None:
    """Cropland maps from Sentinel-2 time series (Kerner et al. 2020).

    Run `xcrop demo` for the whole method on simulated data, or the steps one by one:
    search, composite, sample, train, predict, evaluate. `xcrop COMMAND --help` explains
    each option.
    """


@cli.command(context_settings=BBOX_SETTINGS)
@search_arguments
@click.option("--out", type=click.Path(path_type=Path), help="Write the items as JSON.")
def search(bbox, datetime, catalog, collection, max_cloud, out) -> None:
    """Find Sentinel-2 L2A items over BBOX (west,south,east,north) and DATETIME
    (e.g. 2019-03-01/2020-03-31); print them, optionally save them as an ItemCollection
    (usable as --catalog by the other commands)."""
    from .catalog import find_items

    items = find_items(
        _bbox(bbox), datetime, catalog=catalog, collection=collection, max_cloud=max_cloud
    )
    dates = sorted(i.datetime for i in items if i.datetime)
    tiles = sorted({str(i.properties.get("s2:mgrs_tile", "?")) for i in items})
    click.echo(f"{len(items)} items, {dates[0]:%Y-%m-%d} .. {dates[-1]:%Y-%m-%d}, tiles {tiles}")
    if out:
        items.save_object(dest_href=str(out))
        click.echo(f"wrote {out}")


@cli.command(context_settings=BBOX_SETTINGS)
@search_arguments
@click.option("--start", help="First day of the 12 periods (default: the first 1 March).")
@click.option(
    "--score",
    type=click.Choice(["schmitt", "scl"]),
    default="schmitt",
    show_default=True,
    help="Cloud score: Schmitt et al. (with SCL) or SCL alone.",
)
@click.option("--chunks", type=int, default=1024, show_default=True, help="Pixels per chunk side.")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Zarr store to write.")
def composite(bbox, datetime, catalog, collection, max_cloud, start, score, chunks, out) -> None:
    """Search BBOX and DATETIME, make the 12 least-cloudy 30-day composites with NDVI and
    write them (with valid-observation counts and dates) to a Zarr store."""
    from .composite import composite as make_composite
    from .io import write_composite
    from .stac import search as stac_search

    cube = stac_search(
        _bbox(bbox),
        datetime,
        catalog=catalog,
        collection=collection,
        max_cloud=max_cloud,
        chunks=chunks,
    )
    click.echo(f"cube: {dict(cube.sizes)}")
    comp = make_composite(cube, start=start, score=score)
    write_composite(comp, out)
    click.echo(f"wrote {out}: {dict(comp.data.sizes)}")


@cli.command()
@click.argument("labels", type=EXISTING)
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Samples (.npz).")
@click.option("--composite", "store", type=EXISTING, help="A composite store to sample.")
@click.option("--catalog", help=f"Sample around the points from imagery instead: {CATALOG_HELP}")
@click.option("--collection", help="Collection id (with --catalog).")
@click.option("--datetime", help="Season for every point (with --catalog).")
@click.option("--year-column", help="Column with each point's year (with --catalog).")
@click.option(
    "--label",
    default="label",
    show_default=True,
    help="Label column (0/1 or text), or 0 / 1 for a file of one class.",
)
@click.option("--id", "id_", help="Id column (default: row numbers).")
@click.option(
    "--local/--global",
    "local",
    default=True,
    show_default=True,
    help="Mark the samples as local (target region) or global.",
)
def sample(labels, out, store, catalog, collection, datetime, year_column, label, id_, local):
    """Training tensors at labelled points (LABELS: shapefile, GeoPackage, GeoJSON, CSV),
    from a composite store or, with --catalog, from windows read around the points."""
    from .labels import read_labels

    if (store is None) == (catalog is None):
        raise click.UsageError("Give either --composite STORE or --catalog CATALOG.")
    table = _table(labels)  # read once: labels and, with --year-column, years
    points = read_labels(table, label=int(label) if label in ("0", "1") else label, id=id_)
    if catalog:
        from .points import sample_points

        if year_column:
            points = points.assign(year=_years(table, points, year_column, id_))
        with _progress():
            samples = sample_points(
                points,
                datetime,
                catalog=catalog,
                collection=collection,
                year="year" if year_column else None,
                local=local,
            )
    else:
        from .io import open_composite

        with _progress():
            samples = open_composite(store).sample(points, local=local)
    samples.save(out)
    click.echo(
        f"{len(samples)} samples of {samples.report.get('read', len(points))} points "
        f"-> {out}; dropped: {samples.report.get('dropped', {})}"
    )


def _table(path: Path):
    """A labels file as a (Geo)DataFrame: CSV with pandas, vector files with geopandas."""
    import geopandas as gpd
    import pandas as pd

    return pd.read_csv(path) if path.suffix.lower() == ".csv" else gpd.read_file(path)


def _years(table, points, column: str, id_: str | None):
    """Each point's year from ``column`` of the table it was read from: by ``id_``, or by
    row (``read_labels`` numbers the rows when no id column is given)."""
    if column not in table:
        raise XcropError(f"No column {column!r} among {list(table.columns)}.")
    if id_ is None:
        return table[column].to_numpy()[points["id"].to_numpy()]
    return table.groupby(id_)[column].first().loc[points["id"]].to_numpy()


@cli.command()
@click.argument("local", type=EXISTING)
@click.option("--global", "global_", type=EXISTING, help="Global samples (.npz): multi-headed.")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Model file.")
@click.option(
    "--grid-search/--no-grid-search",
    default=True,
    show_default=True,
    help="Try classifier layers {1, 2} x dropout {0, 0.2}, keep the best AUC.",
)
@click.option("--alpha", type=float, default=10.0, show_default=True, help="Global loss weight.")
@click.option("--max-epochs", type=int, default=200, show_default=True)
@click.option("--patience", type=int, default=10, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
def train(local, global_, out, grid_search, alpha, max_epochs, patience, seed) -> None:
    """Train the (multi-headed) LSTM on LOCAL samples (and --global ones)."""
    from .sample import Samples
    from .training import grid_search as run_grid
    from .training import train as run_train

    loc = Samples.load(local)
    glob = Samples.load(global_) if global_ else None
    options = {"alpha": alpha, "max_epochs": max_epochs, "patience": patience, "seed": seed}
    if grid_search:
        model, results = run_grid(loc, glob, **options)
        click.echo(results.to_string(index=False))
    else:
        with click.progressbar(length=max_epochs, label="epochs") as bar:
            model, _ = run_train(loc, glob, progress=lambda row: bar.update(1), **options)
    model.save(out)
    click.echo(f"model -> {out}: {model.config} {model.info}")


@cli.command()
@click.argument("store", type=EXISTING)
@click.argument("model_file", type=EXISTING)
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Zarr store.")
@click.option(
    "--dtype",
    type=click.Choice(["float32", "uint8"]),
    default="float32",
    show_default=True,
    help="uint8: 0..254 with 255 nodata (scale 1/254).",
)
@click.option("--cog", type=click.Path(path_type=Path), help="Also write a COG.")
@click.option("--head", type=click.Choice(["local", "global"]), default="local", show_default=True)
@click.option("--overwrite", is_flag=True, help="Replace an existing store of another grid.")
def predict(store, model_file, out, dtype, cog, head, overwrite) -> None:
    """Map the crop probability of a composite STORE with MODEL_FILE into a Zarr store
    (resumes an interrupted write when run again)."""
    from .io import open_composite, open_probability, to_cog, to_zarr
    from .model import load_model

    model = load_model(model_file)
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
@click.option("--out", type=click.Path(path_type=Path), help="Write the metrics as CSV.")
def evaluate(test, model_file, map_file, kind, label, out) -> None:
    """Accuracy, ROC AUC, precision, recall and F1 on TEST of a model or a map raster."""
    from .evaluation import table, to_markdown

    if (model_file is None) == (map_file is None):
        raise click.UsageError("Give either --model MODEL or --map RASTER.")
    if model_file:
        from .evaluation import evaluate as run_evaluate
        from .model import load_model
        from .sample import Samples

        if test.suffix != ".npz":
            raise XcropError(f"{test}: with --model, TEST is samples from `xcrop sample` (.npz).")
        result = run_evaluate(load_model(model_file), Samples.load(test))
        name = model_file.name
    else:
        from .labels import read_labels
        from .maps import evaluate_map

        result = evaluate_map(map_file, read_labels(test, label=label), kind=kind)
        name = map_file.name
    frame = table({name: result})
    click.echo(to_markdown(frame))
    if out:
        frame.to_csv(out)


@cli.command()
@click.option("--preset", type=click.Choice(["tiny", "demo"]), default="demo", show_default=True)
@click.option("--out", type=click.Path(path_type=Path), default="xcrop-demo", show_default=True)
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
    from .demo import run_demo

    run_demo(
        preset,
        out=out,
        seed=seed,
        serve=serve,
        sensitivity_seeds=(0, 1, 2) if sensitivity else (),
        log=click.echo,
    )


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``xcrop`` command: XcropError and missing files become one-line
    messages and exit status 1."""
    warnings.filterwarnings("ignore", message="Dataset has no geotransform")
    try:
        cli.main(args=argv, prog_name="xcrop", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 1
    except click.ClickException as e:
        e.show()
        return e.exit_code
    except (XcropError, FileNotFoundError, ImportError) as e:
        click.echo(f"error: {e}", err=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
