"""Every painting as a named style: its WCT statistics in one small file (no torch, no ONNX here).

A painting style is three files in a `style-stats/` folder beside the weights (shipped: weights/,
yours: $IMGAN_HOME/weights/):

    <name>.npz   per VGG level: the mean (float32) and the upper triangle of the covariance (float16)
    <name>.json  its card (imgan.cards.ModelCard): painting, artist, title, year, licence, thumbnail
    <name>.png   the painting's thumbnail

`imgan stylize --style NAME` finds them (after the fast nets' names), `imgan styles` lists them,
and `--style a:0.6,b:0.4` blends them (wct.blend).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from imgan.cards import ModelCard, Running, read_card, write_card
from imgan.errors import UsageError, WeightsError
from imgan.fs import atomic_write
from imgan.weights import sha256_of, shipped_weights_dir, user_weights_dir

from .spec import DEFAULT_UNIVERSAL_SIZE, LEVELS, STYLE_STATS_DIR, TASK
from .wct import Stats

STATS_KIND = "universal"  # card.running.inference["kind"] of a painting style
PUBLIC_DOMAIN = "public domain (the painting)"

# The shipped paintings (../shared/assets/styles, README: public domain; Picasso's only in the US):
# file stem -> (artist, title, year). Titles and years are the works' usual catalogue data.
PAINTINGS: dict[str, tuple[str, str, str]] = {
    "hokusai_great_wave": ("Katsushika Hokusai", "The Great Wave off Kanagawa", "c. 1831"),
    "hokusai_great_wave_hires": ("Katsushika Hokusai", "The Great Wave off Kanagawa (large scan)", "c. 1831"),
    "kandinsky_composition_vii": ("Wassily Kandinsky", "Composition VII", "1913"),
    "leger_contrast_of_forms": ("Fernand Léger", "Contrast of Forms", "1913"),
    "matisse_woman_with_a_hat": ("Henri Matisse", "Woman with a Hat", "1905"),
    "monet_garden_at_giverny": ("Claude Monet", "The Artist's Garden at Giverny", "1900"),
    "monet_water_lilies": ("Claude Monet", "Water Lilies", ""),
    "monet_water_lilies_small": ("Claude Monet", "Water Lilies (small copy)", ""),
    "monet_woman_with_a_parasol": ("Claude Monet", "Woman with a Parasol", "1875"),
    "munch_the_scream": ("Edvard Munch", "The Scream", "1893"),
    "picabia_udnie": ("Francis Picabia", "Udnie", "1913"),
    "picasso_self_portrait_1907": ("Pablo Picasso", "Self-Portrait", "1907"),
    "renoir_bal_du_moulin_de_la_galette": ("Pierre-Auguste Renoir", "Bal du moulin de la Galette", "1876"),
    "seurat_sunday_afternoon": ("Georges Seurat", "A Sunday Afternoon on the Island of La Grande Jatte", "1884–1886"),
    "turner_shipwreck_of_the_minotaur": ("J. M. W. Turner", "The Shipwreck of the Minotaur", "c. 1810"),
    "vangogh_self_portrait_felt_hat": ("Vincent van Gogh", "Self-Portrait with Felt Hat", "1887"),
    "vangogh_starry_night": ("Vincent van Gogh", "The Starry Night", "1889"),
    "vangogh_starry_night__opencv_doc": ("Vincent van Gogh", "The Starry Night (OpenCV docs copy)", "1889"),
    "vangogh_sunflowers": ("Vincent van Gogh", "Sunflowers", "1888"),
}
LICENCES = {"picasso_self_portrait_1907": "public domain in the US only (the painting; Picasso died in 1973)"}


def painting_description(artist: str, title: str, year: str) -> str:
    """"Claude Monet, Water Lilies", "Vincent van Gogh, The Starry Night (1889)": a card's description."""
    return ", ".join(part for part in (artist, title) if part) + (f" ({year})" if year else "")


def known_painting_description(painting: str | Path) -> str | None:
    """The description of one of the shipped paintings (by file stem), None for any other picture."""
    known = PAINTINGS.get(Path(painting).stem)
    return painting_description(*known) if known else None


def name_of(painting: str | Path) -> str:
    """monet_water_lilies.jpg -> monet-water-lilies (the name `--style` takes)."""
    words = [word for word in Path(painting).stem.lower().replace("-", "_").split("_") if word]
    return "-".join(words)


@dataclass(frozen=True)
class PaintingStyle:
    """One named painting style: its card, the folder it is in, and where it came from."""

    card: ModelCard
    folder: Path
    origin: str  # shipped | user

    name = property(lambda self: self.card.name)
    description = property(lambda self: self.card.description)
    inference = property(lambda self: self.card.running.inference)

    @property
    def file(self) -> Path:
        return self.folder / self.card.file

    @property
    def thumbnail(self) -> Path | None:
        name = self.inference.get("thumbnail")
        return self.folder / name if name else None

    def stats(self) -> dict[str, Stats]:
        """The per-level statistics, after checking the file against its card's sha256."""
        if not self.file.is_file():
            raise WeightsError(f"the statistics of style {self.name!r} are missing", path=self.file)
        if sha256_of(self.file) != self.card.sha256:
            raise WeightsError(f"sha256 mismatch for style {self.name!r}", path=self.file,
                               hint="the file is corrupt or was replaced; recompute it with `imgan styles --add`")
        return read_stats(self.file)


# ----------------------------------------------------------------------------------- files


def pack(stats: Mapping[str, Stats]) -> dict[str, np.ndarray]:
    arrays = {}
    for level, item in stats.items():
        rows, cols = np.triu_indices(item.channels)
        arrays[f"{level}.mean"] = item.mean.astype(np.float32)
        arrays[f"{level}.cov"] = item.cov[rows, cols].astype(np.float16)
    return arrays


def unpack(arrays: Mapping[str, np.ndarray]) -> dict[str, Stats]:
    stats = {}
    for level in LEVELS:
        mean = np.asarray(arrays[f"{level}.mean"], dtype=np.float64)
        upper = np.asarray(arrays[f"{level}.cov"], dtype=np.float64)
        rows, cols = np.triu_indices(mean.shape[0])
        cov = np.zeros((mean.shape[0],) * 2)
        cov[rows, cols] = upper
        cov[cols, rows] = upper
        stats[level] = Stats(mean=mean, cov=cov)
    return stats


def read_stats(path: Path) -> dict[str, Stats]:
    try:
        with np.load(path, allow_pickle=False) as arrays:
            return unpack(arrays)
    except (OSError, ValueError, KeyError) as error:
        raise WeightsError(f"unreadable style statistics: {error}", path=path) from None


def write_style(stats: Mapping[str, Stats], folder: Path, name: str, *, painting: Path, thumbnail: np.ndarray,
                size: int = DEFAULT_UNIVERSAL_SIZE, artist: str = "", title: str = "", year: str = "",
                licence: str = PUBLIC_DOMAIN, source: str | None = None, encoders: Mapping[str, str] | None = None,
                ) -> PaintingStyle:
    """<name>.npz + <name>.json + <name>.png in `folder`; the card names the painting and its people."""
    from imgan.io.images import Picture, write_image

    check_style_name(name)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{name}.npz"
    arrays = pack(stats)
    atomic_write(target, lambda temp: _save_npz(temp, arrays), overwrite=True)
    write_image(Picture(rgb=thumbnail, alpha=None), folder / f"{name}.png", overwrite=True)
    title = title or Path(painting).stem.replace("_", " ")
    description = painting_description(artist, title, year)
    card = ModelCard(
        task=TASK, name=name, file=target.name, sha256=sha256_of(target), licence=licence, description=description,
        running=Running(tile_overlap=0, inputs={}, outputs={}, inference={
            "kind": STATS_KIND, "painting": Path(painting).name, "artist": artist, "title": title, "year": year,
            "thumbnail": f"{name}.png", "size": size}),
        model_config={"levels": list(LEVELS), "statistics": "mean float32, covariance upper triangle float16",
                      "encoders": dict(encoders or {})},
        provenance=dataclasses.replace(ModelCard(task=TASK, name=name, file="-", sha256="-").provenance,
                                       data=source or Path(painting).name),
    )
    write_card(card, folder / f"{name}.json")
    return PaintingStyle(card=card, folder=folder, origin="user")


def _save_npz(temp: Path, arrays: Mapping[str, np.ndarray]) -> None:
    with open(temp, "wb") as handle:  # a file object: np.savez would append ".npz" to a path
        np.savez_compressed(handle, **arrays)


def check_style_name(name: str) -> None:
    if not name or not all(ch.isalnum() or ch == "-" for ch in name) or name.startswith("-"):
        raise UsageError(f"invalid style name {name!r}", hint="use letters, digits and '-', e.g. monet-water-lilies")


# ----------------------------------------------------------------------------------- catalogue


def style_folders() -> list[tuple[Path, str]]:
    """Where painting styles are looked for: shipped, then yours (yours win on a name clash)."""
    return [(shipped_weights_dir() / STYLE_STATS_DIR, "shipped"), (user_weights_dir() / STYLE_STATS_DIR, "user")]


def painting_styles() -> dict[str, PaintingStyle]:
    found: dict[str, PaintingStyle] = {}
    for folder, origin in style_folders():
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob("*.json")):
            card = read_card(path)
            if card.task == TASK and card.running.inference.get("kind") == STATS_KIND:
                found[card.name] = PaintingStyle(card=card, folder=folder, origin=origin)
    return found


def parse_blend(styles: str | Sequence[str]) -> list[tuple[str, float]]:
    """"a:0.6,b:0.4" (or a list of such, as repeated --style flags give) -> [(a, 0.6), (b, 0.4)].

    A name without a weight counts 1; weights are shares (normalised later), a name given twice
    is an error (never "the last one wins")."""
    items = [styles] if isinstance(styles, str) else list(styles)
    parts = [part.strip() for item in items for part in item.split(",")]
    blend: list[tuple[str, float]] = []
    for part in parts:
        if not part:
            raise UsageError(f"empty style name in {','.join(items)!r}", hint="write --style a:0.6,b:0.4")
        name, _, weight = part.partition(":")
        try:
            share = float(weight) if weight else 1.0
        except ValueError:
            raise UsageError(f"style weight {weight!r} is not a number", hint="write --style a:0.6,b:0.4") from None
        if share < 0:
            raise UsageError(f"style weight {share:g} of {name!r} is negative")
        blend.append((name.strip(), share))
    names = [name for name, _ in blend]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise UsageError(f"style {', '.join(repeated)} given twice", hint="give each style once, with its weight")
    if sum(share for _, share in blend) <= 0:
        raise UsageError("the style weights add up to 0")
    return blend


def painting_style_for(name: str, fast_paintings: Mapping[str, str] | None = None) -> PaintingStyle:
    """The painting style called `name`; a fast style's name stands for the painting it learnt
    (`fast_paintings`: fast style name -> painting file name), and the first word of a name for
    the one painting style it starts (munch: munch-the-scream)."""
    styles = painting_styles()
    if name in styles:
        return styles[name]
    painting = (fast_paintings or {}).get(name)
    if painting:
        for style in styles.values():
            if style.inference.get("painting") == painting:
                return style
    starting = sorted(known for known in styles if known.startswith(name + "-"))
    if len(starting) == 1:  # munch -> munch-the-scream
        return styles[starting[0]]
    known = ", ".join(starting or sorted(styles)) or "none installed"
    raise UsageError(f"{'ambiguous' if starting else 'unknown'} style {name!r}",
                     hint=f"painting styles: {known}; see `imgan styles`")

