"""The rehearsal's benchmark sources (tests/rehearsal/benchmark_sources.py) run through rule prepare_benchmark's
script give back the fixtures clip_benchmark reads: the Hub repos and local folders file for file, the CUB-200-2011,
iNaturalist 2021 and Crossmodal-3600 archives (converted to their distributed formats and back) image for image,
label for label, with the same class names; and the counts the rehearsal's overlay expects are the fixtures' own."""
import copy
import json
import tarfile
from pathlib import Path

import pytest
import yaml

from lib.eval import benchmark_roots as pb
from benchmark_fixtures import expected_counts, write_benchmark_fixtures
from conftest import REPO
from hf_hub_standin import HubStandin, point_client_at
from loopback import PhotoServer
from rehearsal.benchmark_sources import build_sources
from rehearsal.servers import PHOTOS

CONFIG = yaml.safe_load((REPO / "config/config.yaml").read_text())
SUITE = CONFIG["evaluation"]["suites"]["paper"]


def shard_samples(root: Path) -> list[tuple[bytes, bytes]]:
    """(image bytes, label or captions bytes) of every sample of a wds root, in key order."""
    members: dict[str, dict[str, bytes]] = {}
    n = int((root / "test/nshards.txt").read_text())
    for i in range(n):
        with tarfile.open(root / f"test/{i}.tar") as t:
            for m in t:
                key, ext = m.name.rsplit(".", 1)
                members.setdefault(key, {})["target" if ext in ("cls", "txt") else "image"] = \
                    t.extractfile(m).read()
    return [(members[k]["image"], members[k]["target"]) for k in sorted(members)]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    base = tmp_path_factory.mktemp("sources")
    fixtures = write_benchmark_fixtures(base / "reference", PHOTOS, SUITE)
    mp = pytest.MonkeyPatch()
    mp.chdir(base)  # local paths are relative to the working directory, as in the rehearsal
    mp.setenv("HF_HOME", str(base / "hf_home"))
    hub = HubStandin().start()
    photos = PhotoServer(PHOTOS)
    try:
        repos, archives, overlay = build_sources(base / "staging", PHOTOS, CONFIG["benchmarks"], SUITE, photos.url,
                                                 "staging")
        photos.extra.update(archives)
        for repo, (files, commit) in repos.items():
            hub.add_repo(repo, files, commit=commit)
        point_client_at(mp, hub.url)
        manifests = {}
        for name in SUITE:
            bench = copy.deepcopy(CONFIG["benchmarks"][name])
            bench["source"].update(overlay[name].get("source", {}))
            bench["expected"] = overlay[name]["expected"]
            manifests[name] = pb.prepare(name, bench, base / f"data/benchmarks/{name}")
        yield base, fixtures, overlay, manifests, hub, photos
    finally:
        hub.stop()
        photos.close()
        mp.undo()


def test_every_source_type_is_exercised(prepared):
    _, _, overlay, manifests, hub, photos = prepared
    kinds = {name: m["source"]["type"] for name, m in manifests.items()}
    assert kinds == {n: CONFIG["benchmarks"][n]["source"]["type"] for n in SUITE}
    assert set(kinds.values()) == {"hf_hub", "rare_species", "cub200", "inat2021", "xm3600", "local"}
    assert {r.raw_path.split("/")[3] for r in hub.requests if "/resolve/" in r.raw_path} == \
        {CONFIG["benchmarks"][n]["source"]["repo"].split("/")[1] for n in SUITE if kinds[n] in ("hf_hub",
                                                                                               "rare_species")}
    assert {p.split("/")[2] for p in photos.paths} == {"cub200", "inat2021", "xm3600"}
    for name in SUITE:
        assert set(overlay[name]["expected"]) == set(CONFIG["benchmarks"][name]["expected"])
        assert all(overlay[name]["expected"][k] == expected_counts(name)[k] for k in overlay[name]["expected"])
        assert {k: manifests[name]["counts"][k] for k in overlay[name]["expected"]} == overlay[name]["expected"]


@pytest.mark.parametrize("name", [n for n in SUITE if CONFIG["benchmarks"][n]["source"]["type"] in ("hf_hub", "local")])
def test_hub_and_local_roots_are_the_fixtures_file_for_file(prepared, name):
    base, fixtures, *_ = prepared
    want = {str(p.relative_to(fixtures[name])): p.read_bytes() for p in fixtures[name].rglob("*") if p.is_file()}
    root = base / f"data/benchmarks/{name}"
    got = {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()
           and p.name != "manifest.json"}
    assert got == want


@pytest.mark.parametrize("name", ["cub200", "inat2021"])
def test_archive_benchmarks_round_trip_image_label_and_names(prepared, name):
    base, fixtures, *_ = prepared
    root = base / f"data/benchmarks/{name}"
    assert sorted(shard_samples(root)) == sorted(shard_samples(fixtures[name]))
    assert (root / "classnames.txt").read_text() == (fixtures[name] / "classnames.txt").read_text()
    for variant in (CONFIG["benchmarks"][name].get("classname_variants") or {}).values():
        fname = Path(variant).name
        assert (root / fname).read_text() == (fixtures[name] / fname).read_text(), fname
    if name == "cub200":  # the templates come from the config, as for the real archive
        assert (root / "zeroshot_classification_templates.txt").read_text().splitlines() == \
            CONFIG["benchmarks"]["cub200"]["source"]["templates"]


def test_xm3600_round_trip(prepared):
    base, fixtures, *_ = prepared
    root, ref = base / "data/benchmarks/xm3600/xm3600", fixtures["xm3600"] / "xm3600"

    def rows(p):
        return [json.loads(x) for x in (p / "captions.jsonl").read_text().splitlines()]

    assert rows(root) == rows(ref)
    assert {p.name: p.read_bytes() for p in (root / "images").iterdir()} == \
        {p.name: p.read_bytes() for p in (ref / "images").iterdir()}


def test_sources_are_byte_identical_on_every_call(tmp_path):
    """A rerun of the rehearsal must plan nothing new and fetch the same bytes: the archives may not carry times."""
    one = build_sources(tmp_path / "a", PHOTOS, CONFIG["benchmarks"], SUITE, "http://h", "a")
    two = build_sources(tmp_path / "b", PHOTOS, CONFIG["benchmarks"], SUITE, "http://h", "a")
    assert one == two


def test_rare_species_repo_round_trip_image_and_every_name_style(prepared):
    """Rare Species goes through its image-folder repo (metadata.csv): the converter orders classes by taxonomy, so
    compare each image's class under every name style, not the label numbers."""
    base, fixtures, *_ = prepared
    root, ref = base / "data/benchmarks/rare_species", fixtures["rare_species"]
    styles = ("sci", "com", "tax", "scicom", "taxcom")

    def named(r):
        names = {s: (r / f"classnames_{s}.txt").read_text().splitlines() for s in styles}
        return sorted((img, tuple(names[s][int(label)] for s in styles)) for img, label in shard_samples(r))

    assert named(root) == named(ref)
    assert (root / "classnames.txt").read_text() == (root / "classnames_sci.txt").read_text()
