"""Miniature copies of the paper's 12 evaluation benchmarks, each in the on-disk format clip_benchmark 1.6.2 reads.

``write_benchmark_fixtures(dest, photos_dir)`` writes one root per benchmark under ``dest`` (``dest/<benchmark>``)
from the real demo photos (``resources/demo/photos``) and returns ``{benchmark: root}``. The layouts are those of
the real data, at a few images each:

* **clip_benchmark local webdataset** (``--dataset wds/<name>``, read by
  ``clip_benchmark.datasets.builder.build_wds_dataset``), the layout of the ``clip-benchmark/wds_<name>`` repos on
  the Hugging Face Hub: ``root/test/nshards.txt`` (``"1\\n"``), ``root/test/0.tar``; classification:
  ``root/classnames.txt`` (one name per line, line i = label i) and ``root/zeroshot_classification_templates.txt``,
  each sample ``s%07d.<webp|png|jpg>`` + ``s%07d.cls`` (the label as ASCII digits); retrieval:
  ``root/dataset_type.txt`` (``"retrieval\\n"``), each sample ``s%07d.jpg`` + ``s%07d.txt`` (the captions joined
  with ``"\\n"``, read back with ``str.splitlines``). Image extensions follow what is known of the Hub repos (webp
  for imagenetv2, jpg for imagenet-r/-a/_sketch/mscoco/flickr30k, png for objectnet; imagenet1k: webp, the
  converter's default); the loader reads webp, png, jpg and jpeg alike. Used for imagenet1k, imagenetv2,
  imagenet-r, imagenet_sketch, imagenet-a, objectnet, mscoco_captions, flickr30k (Hub repos) and inat2021, cub200,
  rare_species (no Hub repo; the same layout, jpg).
* **Crossmodal-3600 as Google distributes it** (``--dataset crossmodal3600``, read by
  ``clip_benchmark.datasets.crossmodal3600``): ``root/xm3600/captions.jsonl`` (one JSON object per image:
  ``image/key``, ``image/locale`` and per language ``{"caption": [...], "caption/tokenized": [...],
  "caption/tokenized/lowercase": [...]}``) and ``root/xm3600/images/<image/key>.jpg``. On first use clip_benchmark
  writes ``root/crossmodal3600_captions-en.json`` (image paths + the **first** English caption per image).

Class lists are miniatures of the real ones (a few real class names, in the real label order); the ImageNet-family
fixtures use OpenAI's ImageNet class names, which clip_benchmark's converter writes to ``classnames.txt``. ``inat2021`` also gets ``classnames_latin.txt`` and
``classnames_common.txt``; ``rare_species`` the five BioCLIP name styles (``classnames_{sci,com,tax,scicom,taxcom}
.txt``). Renditions (imagenet-r: posterised), sketches (imagenet_sketch: edge drawings) and ObjectNet's odd
viewpoints (rotated) are simple deterministic PIL transforms of the photos.

Every call writes byte-identical files: tar members in a fixed order with mtime 0, uid/gid 0, empty owner names,
mode 0644, USTAR headers; images re-encoded with fixed settings (no EXIF, no timestamps); JSON with sorted keys.
A benchmark's root is removed and rewritten on every call.
"""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from pathlib import Path

# Benchmark -> clip_benchmark ``--dataset`` name this fixture is written for (the config's ``dataset:``).
DATASET_NAMES = {
    "imagenet1k": "wds/imagenet1k",
    "imagenetv2": "wds/imagenetv2",
    "imagenet-r": "wds/imagenet-r",
    "imagenet_sketch": "wds/imagenet_sketch",
    "imagenet-a": "wds/imagenet-a",
    "objectnet": "wds/objectnet",
    "inat2021": "wds/inat2021",
    "cub200": "wds/cub200",
    "rare_species": "wds/rare_species",
    "mscoco_captions": "wds/mscoco_captions",
    "flickr30k": "wds/flickr30k",
    "xm3600": "crossmodal3600",
}
BENCHMARKS = list(DATASET_NAMES)
TASKS = {b: ("zeroshot_retrieval" if b in ("mscoco_captions", "flickr30k", "xm3600") else "zeroshot_classification")
         for b in BENCHMARKS}

# Classification: benchmark -> (image encoding, [(class name, [photo, ...]), ...]) in label order. At least 5
# classes each: with fewer, clip_benchmark reports acc5 as NaN.
# ImageNet-family names are OpenAI's ImageNet-1k class names, ordered by their ImageNet index.
_CLASSIFICATION = {
    "imagenet1k": ("webp", [
        ("goldfish", ["categorization__fishes/fish25.webp"]),
        ("polar bear", ["explore_world_animals__animals/polar_bear.webp"]),
        ("giant panda", ["explore_world_animals__animals/panda.webp"]),
        ("hammer", ["categorization__tools/hammer5.webp", "categorization__tools/hammer6.webp"]),
        ("screwdriver", ["categorization__tools/screwDriver1.webp", "categorization__tools/screwDriver2.webp"]),
    ]),
    "imagenetv2": ("webp", [
        ("koala", ["explore_world_animals__animals/koala.webp"]),
        ("jaguar", ["explore_world_animals__animals/jaguar.webp"]),
        ("red panda", ["erase__resource/red_panda.webp"]),
        ("hammer", ["categorization__tools/hammer6.webp", "categorization__tools/hammer7.webp"]),
        ("screwdriver", ["categorization__tools/screwDriver2.webp", "categorization__tools/screwDriver3.webp"]),
    ]),
    "imagenet-r": ("rendition", [  # classes of the 200-class ImageNet-R subset
        ("goldfish", ["categorization__fishes/fish25.webp"]),
        ("koala", ["explore_world_animals__animals/koala.webp"]),
        ("bison", ["explore_world_animals__animals/bison.webp"]),
        ("giant panda", ["explore_world_animals__animals/panda.webp"]),
        ("hammer", ["categorization__tools/hammer5.webp", "categorization__tools/hammer7.webp"]),
    ]),
    "imagenet_sketch": ("sketch", [
        ("baseball", ["categorization__others/baseball.webp"]),
        ("bucket", ["categorization__others/bucket.webp"]),
        ("hammer", ["categorization__tools/hammer5.webp", "categorization__tools/hammer6.webp"]),
        ("pillow", ["categorization__others/pillow.webp"]),
        ("screwdriver", ["categorization__tools/screwDriver1.webp", "categorization__tools/screwDriver3.webp"]),
    ]),
    "imagenet-a": ("jpg", [  # classes of the 200-class ImageNet-A subset
        ("chameleon", ["explore_world_animals__animals/chameleon.webp"]),
        ("duck", ["explore_farm_animals__animals/duck.webp"]),
        ("koala", ["explore_world_animals__animals/koala.webp"]),
        ("bison", ["explore_world_animals__animals/bison.webp"]),
        ("volleyball", ["categorization__others/volleyball.webp"]),
    ]),
    "objectnet": ("objectnet", [  # ObjectNet's lower-cased class names, in folder order
        ("bucket", ["categorization__others/bucket.webp"]),
        ("chair", ["categorization__others/chair.webp"]),
        ("frying pan", ["categorization__others/pan.webp"]),
        ("hammer", ["categorization__tools/hammer6.webp", "categorization__tools/hammer7.webp"]),
        ("weight scale", ["categorization__others/weighingMachine.webp"]),
    ]),
    "cub200": ("jpg", [
        ("Common Kingfisher", ["erase__resource/kingfisher.webp"]),
        ("Domestic Duck", ["explore_farm_animals__animals/duck.webp"]),
        ("Red Junglefowl", ["explore_farm_animals__animals/chicken.webp"]),
        ("Scarlet Macaw", ["explore_world_animals__animals/scarlet_macaw.webp"]),
        ("Tawny Owl", ["explore_farm_animals__animals/owl.webp"]),
    ]),
    "inat2021": ("jpg", [
        ("Coris julis", ["categorization__fishes/fish23.webp", "categorization__fishes/fish24.webp"]),
        ("Atherina hepsetus", ["categorization__fishes/fish2.webp", "categorization__fishes/fish26.webp"]),
        ("Anthias anthias", ["categorization__fishes/fish14.webp", "categorization__fishes/fish5.webp"]),
        ("Pagellus erythrinus", ["categorization__fishes/fish16.webp"]),
        ("Trachinus draco", ["categorization__fishes/fish27.webp"]),
    ]),
    "rare_species": ("jpg", [
        ("Giraffa camelopardalis", ["erase__resource/giraffe.webp", "explore_world_animals__animals/giraffe.webp"]),
        ("Ursus maritimus", ["explore_world_animals__animals/polar_bear.webp"]),
        ("Ailuropoda melanoleuca", ["explore_world_animals__animals/panda.webp"]),
        ("Ailurus fulgens", ["erase__resource/red_panda.webp"]),
        ("Varanus komodoensis", ["explore_world_animals__animals/dragon.webp"]),
    ]),
}

# Class-name variants (file name -> names in label order).
_INAT_COMMON = ["Mediterranean Rainbow Wrasse", "Sand Smelt", "Swallowtail Seaperch", "Common Pandora",
                "Greater Weever"]
_RARE_COMMON = ["Giraffe", "Polar bear", "Giant panda", "Red panda", "Komodo dragon"]
_RARE_TAXA = ["Animalia Chordata Mammalia Artiodactyla Giraffidae Giraffa camelopardalis",
              "Animalia Chordata Mammalia Carnivora Ursidae Ursus maritimus",
              "Animalia Chordata Mammalia Carnivora Ursidae Ailuropoda melanoleuca",
              "Animalia Chordata Mammalia Carnivora Ailuridae Ailurus fulgens",
              "Animalia Chordata Reptilia Squamata Varanidae Varanus komodoensis"]


def _variants() -> dict[str, dict[str, list[str]]]:
    latin = [c for c, _ in _CLASSIFICATION["inat2021"][1]]
    sci = [c for c, _ in _CLASSIFICATION["rare_species"][1]]
    return {
        "inat2021": {"classnames_latin.txt": latin, "classnames_common.txt": _INAT_COMMON},
        "rare_species": {
            "classnames_sci.txt": sci,
            "classnames_com.txt": _RARE_COMMON,
            "classnames_tax.txt": _RARE_TAXA,
            "classnames_scicom.txt": [f"{s} with common name {c}" for s, c in zip(sci, _RARE_COMMON)],
            "classnames_taxcom.txt": [f"{t} with common name {c}" for t, c in zip(_RARE_TAXA, _RARE_COMMON)],
        },
    }


# Dataset-specific zero-shot templates (the ``dataset`` template variant); ImageNet family: OpenAI's 80.
_OWN_TEMPLATES = {
    "cub200": ["a photo of a {c}, a type of bird."],
    "inat2021": ["a photo of {c}.", "a photo of the species {c}."],
    "rare_species": ["a photo of {c}.", "a photo of the species {c}."],
}

# Retrieval: benchmark -> [(photo, [captions])]. At least 5 images each: clip_benchmark's recall@k takes a top-k
# over images (and over texts), and evaluate.py asks for recall@5 ("k out of range" with fewer).
_RETRIEVAL = {
    "mscoco_captions": [
        ("explore_farm_animals__animals/cat.webp", [
            "A white and grey kitten lying on a red blanket playing with a ball of yarn.",
            "A kitten plays with a ball of colourful wool on a pink background.",
            "A young cat hugging a ball of yarn.",
            "A small cat rolls on its side next to loose strands of yarn.",
            "A black and white kitten with a yarn ball on a red surface."]),
        ("explore_farm_animals__animals/dog.webp", [
            "A German shepherd dog standing in a grassy field.",
            "A large brown and black dog with its tongue out stands on dry grass.",
            "A dog posing outdoors in tall grass.",
            "A German shepherd looks at the camera in a meadow.",
            "A shepherd dog standing sideways on a patch of grass."]),
        ("explore_farm_animals__animals/horse.webp", [
            "A group of horses standing on a grassy hill under a blue sky.",
            "Several dark horses and a foal in a green pasture.",
            "A herd of horses with a foal lying on the grass.",
            "Horses gathered together in a field on a sunny day.",
            "Black and grey horses standing in a meadow with clouds behind them."]),
        ("explore_farm_animals__animals/sheep.webp", [
            "A white sheep standing in the grass looking at the camera.",
            "A woolly sheep on a green lawn.",
            "A single sheep with a thick fleece stands in a field.",
            "A sheep standing alone on short grass.",
            "A fluffy white sheep in a pasture."]),
        ("explore_farm_animals__animals/cow.webp", [
            "A black and white cow standing in a green pasture.",
            "A Holstein cow grazing in a field with other cows behind it.",
            "Cows in a grassy field next to a row of trees.",
            "A spotted dairy cow standing on the grass.",
            "A black and white cow in a meadow on a cloudy day."]),
    ],
    "flickr30k": [
        ("explore_world_animals__animals/giraffe.webp", [
            "Two giraffes stand next to each other among bare trees.",
            "A pair of giraffes in dry savanna under a blue sky.",
            "Two tall giraffes standing close together in the bush.",
            "Giraffes standing near leafless trees on a sunny day.",
            "Two giraffes facing each other in an open woodland."]),
        ("explore_world_animals__animals/kangaroo.webp", [
            "A kangaroo stands on a path with its joey beside it.",
            "A grey kangaroo and a young kangaroo in the shade of trees.",
            "A mother kangaroo standing upright next to her baby.",
            "Two kangaroos on a sunny path near some bushes.",
            "A kangaroo looks to the side while a joey feeds."]),
        ("explore_world_animals__animals/moose.webp", [
            "A bull moose with large antlers lies in the heather.",
            "A moose resting in a field of purple flowers in front of a forest.",
            "A male moose with wide antlers lying down outdoors.",
            "A large moose rests in tall grass near green trees.",
            "A moose with big antlers sitting in a meadow."]),
        ("explore_world_animals__animals/crocodile.webp", [
            "A crocodile lies on a muddy river bank.",
            "A large crocodile resting at the edge of the water.",
            "A crocodile basking in the sun on wet mud.",
            "A long crocodile lying on the shore of a river.",
            "A crocodile crawls out of the water onto the bank."]),
        ("explore_world_animals__animals/narwhal.webp", [
            "Two narwhals swim at the surface of the sea.",
            "A narwhal with a long tusk breaks through the waves.",
            "A pair of spotted whales surfacing in grey water.",
            "Narwhals swimming side by side in the ocean.",
            "Two tusked whales in choppy sea water."]),
    ],
}

# Crossmodal-3600: (photo, image/key, image/locale, {language: [captions]}); keys are 16 hex digits as in XM3600.
_XM3600 = [
    ("categorization__others/igloo.webp", "0a1f3c5e7b9d2468", "fi", {
        "en": ["A small igloo made of snow blocks with a wooden chest in front of it.",
               "A snow house under a clear blue sky."],
        "de": ["Ein kleines Iglu aus Schneeblöcken mit einer Holzkiste davor."]}),
    ("categorization__others/chair.webp", "1b2e4d6f8a0c3579", "nl", {
        "en": ["A white wooden chair against a light wall.", "An old painted chair standing alone."],
        "de": ["Ein weißer Holzstuhl vor einer hellen Wand."]}),
    ("erase__resource/kingfisher.webp", "2c3f5e7a9b1d468a", "de", {
        "en": ["A kingfisher with blue and orange feathers perched on a mossy branch.",
               "A small colourful bird sitting on a twig."],
        "de": ["Ein Eisvogel sitzt auf einem bemoosten Ast."]}),
    ("clickgame__resource/sea6.webp", "3d4a6f8b0c2e579b", "en", {
        "en": ["A basket starfish spreading its arms over a rocky sea floor.",
               "An underwater view of a pale starfish with curly arms."],
        "de": ["Ein Gorgonenhaupt auf felsigem Meeresgrund."]}),
    ("explore_farm_animals__animals/duck.webp", "4e5b7a9c1d3f680c", "en", {
        "en": ["A white duck with an orange beak standing at the edge of dark water.",
               "A white duck lit by the sun in front of a dark background."],
        "de": ["Eine weiße Ente steht am Rand von dunklem Wasser."]}),
]


def expected_counts(name: str) -> dict[str, int]:
    """What clip_benchmark reads from a fixture: images, classes (classification) or texts (retrieval)."""
    if name in _CLASSIFICATION:
        classes = _CLASSIFICATION[name][1]
        return {"images": sum(len(p) for _, p in classes), "classes": len(classes)}
    if name == "xm3600":  # clip_benchmark's crossmodal3600 keeps the first caption per image
        return {"images": len(_XM3600), "texts": len(_XM3600)}
    items = _RETRIEVAL[name]
    return {"images": len(items), "texts": sum(len(c) for _, c in items)}


# ---------------------------------------------------------------------------------------------------------------
# Deterministic writers


def _image_bytes(photo: Path, style: str) -> tuple[str, bytes]:
    """(extension, bytes) of a photo in a fixture's image style; ``webp`` copies the file as it is."""
    if style == "webp":
        return "webp", photo.read_bytes()
    from PIL import Image, ImageFilter, ImageOps

    img = Image.open(photo).convert("RGB")
    if style == "rendition":
        img = ImageOps.posterize(img, 2)
    elif style == "sketch":
        img = ImageOps.invert(ImageOps.grayscale(img).filter(ImageFilter.FIND_EDGES)).convert("RGB")
    buf = io.BytesIO()
    if style == "objectnet":
        img.transpose(Image.Transpose.ROTATE_90).save(buf, format="PNG", optimize=False, compress_level=6)
        return "png", buf.getvalue()
    img.save(buf, format="JPEG", quality=90, optimize=False, progressive=False, subsampling=0)
    return "jpg", buf.getvalue()


def _write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode("utf-8"))


def _lines(items: list[str]) -> str:
    return "".join(f"{x}\n" for x in items)


def _write_tar(path: Path, samples: list[list[tuple[str, bytes]]]) -> None:
    """One shard; each sample's members adjacent (webdataset groups by key), fixed header fields."""
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tf:
        for members in samples:
            for name, data in members:
                info = tarfile.TarInfo(name)
                info.size, info.mtime, info.mode = len(data), 0, 0o644
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                tf.addfile(info, io.BytesIO(data))
    path.write_bytes(buf.getvalue())


def _openai_templates() -> list[str]:
    import clip_benchmark

    path = Path(clip_benchmark.__file__).parent / "datasets" / "en_zeroshot_classification_templates.json"
    return json.loads(path.read_text())["imagenet1k"]


def _write_classification(name: str, root: Path, photos_dir: Path) -> None:
    style, classes = _CLASSIFICATION[name]
    samples, i = [], 0
    for label, (_, photos) in enumerate(classes):
        for rel in photos:
            ext, data = _image_bytes(photos_dir / rel, style)
            key = f"s{i:07d}"
            samples.append([(f"{key}.{ext}", data), (f"{key}.cls", str(label).encode("ascii"))])
            i += 1
    _write_tar(root / "test" / "0.tar", samples)
    _write_text(root / "test" / "nshards.txt", "1\n")
    _write_text(root / "classnames.txt", _lines([c for c, _ in classes]))
    _write_text(root / "zeroshot_classification_templates.txt",
                _lines(_OWN_TEMPLATES.get(name) or _openai_templates()))
    for fname, names in _variants().get(name, {}).items():
        assert len(names) == len(classes), (name, fname)
        _write_text(root / fname, _lines(names))


def _write_wds_retrieval(name: str, root: Path, photos_dir: Path) -> None:
    samples = []
    for i, (rel, captions) in enumerate(_RETRIEVAL[name]):
        ext, data = _image_bytes(photos_dir / rel, "jpg")
        key = f"s{i:07d}"
        samples.append([(f"{key}.{ext}", data), (f"{key}.txt", "\n".join(captions).encode("utf-8"))])
    _write_tar(root / "test" / "0.tar", samples)
    _write_text(root / "test" / "nshards.txt", "1\n")
    _write_text(root / "dataset_type.txt", "retrieval\n")


def _write_xm3600(root: Path, photos_dir: Path) -> None:
    lines = []
    for rel, key, locale, captions in _XM3600:
        _, data = _image_bytes(photos_dir / rel, "jpg")
        img = root / "xm3600" / "images" / f"{key}.jpg"
        img.parent.mkdir(parents=True, exist_ok=True)
        img.write_bytes(data)
        row = {"image/key": key, "image/locale": locale}
        for lang, caps in captions.items():
            tokenized = [" ".join(c.replace(".", " .").replace(",", " ,").split()) for c in caps]
            row[lang] = {"caption": caps, "caption/tokenized": tokenized,
                         "caption/tokenized/lowercase": [t.lower() for t in tokenized]}
        lines.append(json.dumps(row, ensure_ascii=False, sort_keys=True))
    _write_text(root / "xm3600" / "captions.jsonl", _lines(lines))


def write_benchmark_fixtures(dest: Path, photos_dir: Path, names: list[str] | None = None) -> dict[str, Path]:
    """Write miniature benchmark roots ``dest/<benchmark>`` (all 12 unless ``names``) and return their paths."""
    dest, photos_dir = Path(dest), Path(photos_dir)
    names = list(BENCHMARKS if names is None else names)
    unknown = sorted(set(names) - set(BENCHMARKS))
    if unknown:
        raise ValueError(f"no fixture for {unknown}; known: {BENCHMARKS}")
    roots = {}
    for name in names:
        root = dest / name
        if root.exists():
            shutil.rmtree(root)
        if name in _CLASSIFICATION:
            _write_classification(name, root, photos_dir)
        elif name == "xm3600":
            _write_xm3600(root, photos_dir)
        else:
            _write_wds_retrieval(name, root, photos_dir)
        roots[name] = root
    return roots
