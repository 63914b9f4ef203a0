"""Config resolution and cross-checks that a JSON schema cannot express (imported by rules/common.smk).

All checks run when the Snakefile is parsed, before any job starts, and fail with a message naming the key.
Defaults live in config/schema.yaml only (``default:``): :func:`validate_config` fills the top-level sections,
:func:`dataset_config` and :func:`model_recipe` fill the merged dataset and recipe, so their callers index the
resolved values.
"""

import copy
import functools
import re
from pathlib import Path
from urllib.parse import urlsplit

MODEL_RE = re.compile(r"^(?P<recipe>[a-z][a-z0-9_]*?)(?:-alt(?P<alt>\d{1,3}))?$")


SCHEMA_PATH = Path(__file__).resolve().parents[3] / "config" / "schema.yaml"


@functools.cache
def load_schema(path: Path = SCHEMA_PATH) -> dict:
    import yaml

    return yaml.safe_load(Path(path).read_text())


def fill_defaults(instance: dict, schema: dict, root: dict | None = None) -> dict:
    """Set every absent key whose schema has a ``default`` (a copy), in place, and descend into the mappings that
    are present (or were just created from a ``default: {}``). Follows ``properties`` and ``$ref`` only: entries of
    ``additionalProperties`` mappings (datasets, models) are filled by :func:`dataset_config` / :func:`model_recipe`
    after merging, so that a filled default never hides a value from ``dataset_defaults`` or ``models``."""
    root = schema if root is None else root
    for key, sub in (_resolve(schema, root).get("properties") or {}).items():
        sub = _resolve(sub, root)
        if key not in instance and "default" in sub:
            instance[key] = copy.deepcopy(sub["default"])
        if isinstance(instance.get(key), dict) and "properties" in sub:
            fill_defaults(instance[key], sub, root)
    return instance


def _resolve(schema: dict, root: dict) -> dict:
    """A local ``$ref`` (``#/$defs/<name>``) resolved, its sibling keys (e.g. ``default``) kept."""
    if "$ref" not in schema:
        return schema
    target = root
    for part in schema["$ref"].lstrip("#/").split("/"):
        target = target[part]
    return {**_resolve(target, root), **{k: v for k, v in schema.items() if k != "$ref"}}


def _defs(name: str) -> tuple[dict, dict]:
    schema = load_schema()
    return schema["$defs"][name], schema


class ConfigError(ValueError):
    """A configuration problem, with the offending key in the message."""


def deep_merge(base: dict, override: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in (override or {}).items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def dataset_config(config: dict, name: str) -> dict:
    """The dataset's config: ``dataset_defaults``, then the chain of ``inherits`` parents (farthest first), then the
    dataset's own keys, deep-merged in that order (a list or scalar replaces, a mapping merges). Then
    ``extra_roots`` / ``extra_living_roots`` are appended to ``roots`` / ``living_roots`` (an inheriting dataset
    adds roots without retyping its parent's list)."""
    merged = deep_merge(config.get("dataset_defaults", {}), _own_config(config, name, ()))
    for extra, key in (("extra_roots", "roots"), ("extra_living_roots", "living_roots")):
        more = merged.pop(extra, None) or []
        if more:
            merged[key] = list(merged.get(key) or []) + [q for q in more if q not in set(merged.get(key) or [])]
    return fill_defaults(merged, *_defs("dataset"))


def _own_config(config: dict, name: str, seen: tuple) -> dict:
    """The dataset's keys merged over those of its ``inherits`` chain (without ``dataset_defaults``)."""
    if name not in config["datasets"]:
        where = f"datasets.{seen[-1]}.inherits: " if seen else ""
        raise ConfigError(f"{where}unknown dataset {name!r}: config.datasets has {sorted(config['datasets'])}")
    if name in seen:
        raise ConfigError(f"datasets.{seen[0]}.inherits: cycle {' -> '.join(seen + (name,))}")
    own = config["datasets"][name]
    parent = own.get("inherits")
    if not parent:
        return copy.deepcopy(own)
    merged = deep_merge(_own_config(config, parent, seen + (name,)), own)
    if "description" not in own:
        merged.pop("description", None)  # a parent's description does not describe its child
    return merged


def source_dataset(config: dict, name: str) -> str:
    """The dataset whose KG, search and download a dataset reuses (itself unless ``subset_of``)."""
    return dataset_config(config, name).get("subset_of") or name


def model_recipe(config: dict, model: str, dataset: str | None = None) -> dict:
    """Recipe of a model name, as trained on ``dataset``: ``models.<recipe>`` with the dataset's
    ``model_overrides.<recipe>`` merged over it (e.g. the rehearsal's miniature sizes); ``<recipe>-alt<N>`` then sets
    ``alt_text_chance = N/100`` (ablation by target name). Keys it leaves unset take the schema's defaults; an unset
    ``data_path`` is ``hybrid`` when the recipe trains on GPUs (``device`` not cpu, ``gpus`` > 0), else ``stock``."""
    m = MODEL_RE.match(model)
    if not m or m.group("recipe") not in config["models"]:
        raise ConfigError(f"unknown model {model!r}: config.models has {sorted(config['models'])}, optionally "
                          "followed by -alt<N> (0..100), e.g. vitb32-alt0")
    recipe = copy.deepcopy(config["models"][m.group("recipe")])
    if dataset is not None:
        recipe = deep_merge(recipe, dataset_config(config, dataset).get("model_overrides", {}).get(m.group("recipe")))
    if m.group("alt") is not None:
        alt = int(m.group("alt"))
        if alt > 100:
            raise ConfigError(f"model {model!r}: alt-text share must be 0..100")
        recipe["alt_text_chance"] = alt / 100
    recipe["name"] = model
    fill_defaults(recipe, *_defs("recipe"))
    on_gpu = recipe["device"] != "cpu" and int(recipe["gpus"]) > 0
    recipe.setdefault("data_path", "hybrid" if on_gpu else "stock")  # the fast path by default on GPUs
    return recipe


def model_aliases(config: dict) -> dict[str, str]:
    """``{"<dataset>/<recipe>-alt<N>": "<dataset>/<recipe>"}`` for every dataset and recipe whose own alt-text share
    (``alt_text_chance``, after the dataset's ``model_overrides``) is N %: that name is the same
    training run (``tiny-alt50`` is ``tiny``), so its eval.csv is the recipe's (rule ``model_alias``), not a second
    run."""
    out = {}
    for name in config["datasets"]:
        for r in config["models"]:
            share = model_recipe(config, r, name)["alt_text_chance"]
            n = round(float(share) * 100)
            if abs(float(share) * 100 - n) < 1e-9:
                out[f"{name}/{r}-alt{n}"] = f"{name}/{r}"
    return out


def suite(config: dict, dataset: str) -> dict[str, dict]:
    name = dataset_config(config, dataset)["eval_suite"]
    if name not in config["evaluation"]["suites"]:
        raise ConfigError(f"datasets.{dataset}.eval_suite: {name!r} is not in evaluation.suites "
                          f"({sorted(config['evaluation']['suites'])})")
    return suite_by_name(config, name)


def suite_by_name(config: dict, name: str) -> dict[str, dict]:
    suites = config["evaluation"]["suites"]
    if name not in suites:
        raise ConfigError(f"evaluation suite {name!r} is not in evaluation.suites ({sorted(suites)})")
    return {b: config["benchmarks"][b] for b in suites[name]}


def check(config: dict, repo: Path) -> None:
    """Cross-checks: references between sections, and bundled files that must exist."""
    for sname, benches in config["evaluation"]["suites"].items():
        for b in benches:
            if b not in config["benchmarks"]:
                raise ConfigError(f"evaluation.suites.{sname}: benchmark {b!r} is not defined in benchmarks")
    check_benchmark_names(config)
    for b in config["evaluation"].get("skip") or []:
        if b not in config["benchmarks"]:
            raise ConfigError(f"evaluation.skip: {b!r} is not in benchmarks{_did_you_mean(b, config['benchmarks'])}")
    for name in config["datasets"]:
        ds = dataset_config(config, name)
        where = f"datasets.{name}"
        parent = ds.get("subset_of")
        if parent:
            if parent not in config["datasets"] or config["datasets"][parent].get("subset_of"):
                raise ConfigError(f"{where}.subset_of: {parent!r} must name a dataset that is not itself a subset")
        else:
            if "endpoint" not in ds.get("kg", {}):
                raise ConfigError(f"{where}.kg.endpoint is required")
            ep = ds["kg"]["endpoint"]
            if ep.startswith("file:") and not (repo / ep[5:]).exists():
                raise ConfigError(f"{where}.kg.endpoint: bundled file {ep[5:]!r} does not exist")
            if not ds.get("roots") and not ds.get("living_roots"):
                raise ConfigError(f"{where}: roots and living_roots are both empty")
            backends = ds.get("search", {}).get("backends", {})
            if not backends and not ds.get("search", {}).get("released_metadata"):
                raise ConfigError(f"{where}.search.backends: at least one search backend is required "
                                  "(or search.released_metadata to import the authors' released URL table)")
            pool = backends.get("pool")
            if pool is not None:
                if "path" not in pool:
                    raise ConfigError(f"{where}.search.backends.pool.path is required")
            serve = ds.get("download", {}).get("serve_local")
            if serve and not (repo / serve["directory"]).is_dir():
                raise ConfigError(f"{where}.download.serve_local.directory: {serve['directory']!r} does not exist")
            if serve and not 1 <= int(serve["bind"].rsplit(":", 1)[1]) <= 65535:
                raise ConfigError(f"{where}.download.serve_local.bind: port must be 1..65535, got {serve['bind']!r}")
            check_backends(where, backends)
            check_llm(where, ds)
        check_query_kinds(where, ds)
        check_wordnet_kind(config, name, where, ds)
        suite(config, name)
        dedup_eval_sets(config, name)
        for m in ds.get("model_overrides", {}):
            if m not in config["models"]:
                raise ConfigError(f"{where}.model_overrides: {m!r} is not in models ({sorted(config['models'])})")
            model_recipe(config, m, name)
        for m in ds.get("fig1_models", []):
            _named(f"{where}.fig1_models", model_recipe, config, m, name)
    for m in config["models"]:
        model_recipe(config, m)
        check_stored_short_side(config, m, repo)
    archs = {(f"models.{m}.arch", r["arch"]) for m, r in config["models"].items()}
    archs |= {(f"datasets.{d}.model_overrides.{m}.arch", o["arch"]) for d in config["datasets"]
              for m, o in (config["datasets"][d].get("model_overrides") or {}).items() if "arch" in o}
    for key, arch in sorted(archs):
        _named(key, model_image_size, arch, repo)
    dt = config.get("default_target")
    if dt:
        _named("default_target.dataset", dataset_config, config, dt["dataset"])
        _named("default_target.model", model_recipe, config, dt["model"])


def dedup_eval_sets(config: dict, dataset: str) -> list[str]:
    """Benchmarks the dataset's dedup decontaminates against: ``dedup.eval_sets``, or (null) its eval suite; every
    name must be a benchmark."""
    names = dataset_config(config, dataset)["dedup"]["eval_sets"]
    names = list(suite(config, dataset)) if names is None else list(names)
    unknown = [n for n in names if n not in config["benchmarks"]]
    if unknown:
        raise ConfigError(f"datasets.{dataset}.dedup.eval_sets: {unknown} not in benchmarks "
                          f"({sorted(config['benchmarks'])})")
    return names


def _did_you_mean(word: str, choices) -> str:
    import difflib

    close = difflib.get_close_matches(word, sorted(choices), n=2, cutoff=0.6)
    return f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""


def check_backends(where: str, backends: dict) -> None:
    """Every key of a search backend's block is one that backend reads (a typo such as ``max_result`` would
    otherwise be ignored for days of searching)."""
    from lib.search import search_web

    for name, params in backends.items():
        if name == "pool":
            known = {"path", "max_results", "match"}
            unknown = sorted(set(params or {}) - known)
        else:
            unknown = search_web.unknown_params(name, params)
            known = search_web.COMMON_PARAMS | search_web.CALLER_PARAMS | search_web.BACKENDS[name].EXTRA_PARAMS
        if unknown:
            hints = "; ".join(f"{k!r}{_did_you_mean(k, known)}" for k in unknown)
            raise ConfigError(f"{where}.search.backends.{name}: unknown key(s) {hints}; known: {sorted(known)}")


def check_query_kinds(where: str, ds: dict) -> None:
    """``queries.kinds`` and the keys of ``queries.max_per_kind`` are query kinds of build_queries (``KINDS``)."""
    from lib.search.queries import KINDS

    q = ds.get("queries", {})
    for key, names in (("kinds", q.get("kinds", [])), ("max_per_kind", list(q.get("max_per_kind") or {}))):
        bad = [k for k in names if k not in KINDS]
        if bad:
            raise ConfigError(f"{where}.queries.{key}: unknown kind(s) "
                              f"{', '.join(repr(k) + _did_you_mean(k, KINDS) for k in bad)}; kinds: {KINDS}")


def check_llm(where: str, ds: dict) -> None:
    """The LLM mode needs an endpoint and a model (checked now, not when the first KG job asks)."""
    modes = {k: (ds.get(k) or {}).get("mode") for k in ("natural_types", "attributes")}
    users = [k for k, m in modes.items() if m == "llm"]
    if not users:
        return
    llm = ds.get("llm") or {}
    missing = [k for k in ("base_url", "model") if not llm.get(k)]
    if missing:
        raise ConfigError(f"{where}.llm.{missing[0]}: required when {where}.{users[0]}.mode is llm "
                          f"(set llm.base_url, llm.model and, for a keyed API, llm.api_key_env)")
    host = urlsplit(llm["base_url"]).hostname or ""
    if not llm.get("api_key_env") and host not in LOOPBACK_HOSTS:
        raise ConfigError(f"{where}.llm.api_key_env: required when {where}.{users[0]}.mode is llm and llm.base_url "
                          f"({llm['base_url']!r}) is not on this machine: the NAME of the environment variable that "
                          "holds the API key, e.g. OPENAI_API_KEY (a keyless server must listen on 127.0.0.1)")


LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def check_wordnet_kind(config: dict, name: str, where: str, ds: dict) -> None:
    """A ``queries.kinds`` that the dataset sets itself (not the defaults) and that names ``wordnet-noun-living``
    needs ``wordnet.dir``: without it that kind yields no query, silently."""
    own = _own_config(config, name, ())
    if "wordnet-noun-living" in ((own.get("queries") or {}).get("kinds") or []) and not (ds.get("wordnet") or {}).get("dir"):
        raise ConfigError(f"{where}.queries.kinds: 'wordnet-noun-living' needs {where}.wordnet.dir (the WordNet 3.0 "
                          "database folder, e.g. /usr/share/wordnet from Debian's wordnet-base), which is null; set "
                          "it or drop the kind")


def clip_benchmark_names() -> tuple[set[str], tuple[str, ...]]:
    """Dataset names and name prefixes that ``clip_benchmark.datasets.builder.build_dataset`` accepts, read from its
    source (importing it would load torch while the workflow is parsed). Empty when clip_benchmark is missing."""
    import importlib.util

    spec = importlib.util.find_spec("clip_benchmark")
    if spec is None or not spec.submodule_search_locations:
        return set(), ()
    path = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "builder.py"
    if not path.exists():
        return set(), ()
    src = path.read_text()
    start = src.find("def build_dataset")
    body = src[start:src.find("\ndef ", start + 1)]
    names = set(re.findall(r"dataset_name\s*==\s*[\"']([^\"']+)[\"']", body))
    prefixes = tuple(sorted(set(re.findall(r"dataset_name\.startswith\(\s*[\"']([^\"']+)[\"']", body))))
    return names, prefixes


def check_benchmark_names(config: dict) -> None:
    """``benchmarks.<name>.dataset`` is a dataset name that clip_benchmark knows (or ``wds/<folder>``, ...)."""
    names, prefixes = clip_benchmark_names()
    if not names:
        return  # clip_benchmark is not installed here: the evaluate job's environment checks it
    for bench, b in config["benchmarks"].items():
        name = b.get("dataset", "")
        if name in names or (prefixes and name.startswith(prefixes)):
            continue
        raise ConfigError(f"benchmarks.{bench}.dataset: {name!r} is not a clip_benchmark dataset"
                          f"{_did_you_mean(name, names)}; expected one of its names or a prefixed name "
                          f"({', '.join(p + '...' for p in prefixes)}, e.g. wds/{bench} for a local webdataset)")


def model_image_size(arch: str, repo: Path) -> int:
    """Input size of an open_clip architecture: ``vision_cfg.image_size`` of ``config/models/<arch>.json``, else of
    open_clip's own config (imported only then); ``[h, w]`` gives the larger side."""
    path = Path(repo) / "config" / "models" / f"{arch}.json"
    if path.exists():
        import json

        cfg = json.loads(path.read_text())
    else:
        import open_clip

        cfg = open_clip.get_model_config(arch)
        if cfg is None:
            ours = sorted(p.stem for p in (Path(repo) / "config" / "models").glob("*.json"))
            raise ConfigError(f"arch {arch!r} is neither in config/models/ ({', '.join(ours)}) nor an open_clip "
                              f"model{_did_you_mean(arch, ours + list(open_clip.list_models()))}")
    size = cfg.get("vision_cfg", {}).get("image_size")
    if isinstance(size, (list, tuple)) and size:
        return int(max(size))
    if isinstance(size, int):
        return size
    raise ConfigError(f"arch {arch!r}: no vision_cfg.image_size in its config")


def check_stored_short_side(config: dict, model: str, repo: Path) -> None:
    """``models.<model>.stored_short_side`` (train from ``results/{dataset}/shards_s{N}``, rule resize_shards) must
    keep the crop semantics and have something to derive from.

    Refused when it is below ``min_lossless_short_side`` of the model's input size and the recipe's RandomResizedCrop
    ``augmentation`` (crops would be upscaled), or when no dataset downloads images with a larger short side
    (``download.image_size``; ``resize_mode: no`` keeps any size).
    """
    from lib.data.resize_spec import DEFAULT_RATIO, DEFAULT_SCALE

    rec = config["models"][model]
    side = rec.get("stored_short_side")
    if side is None:
        return
    key = f"models.{model}.stored_short_side"
    if isinstance(side, bool) or not isinstance(side, int) or side < 1:
        raise ConfigError(f"{key}: must be a positive integer or null, got {side!r}")
    out_size = _named(f"models.{model}.arch", model_image_size, rec["arch"], repo)
    aug = rec.get("augmentation") or {}
    scale, ratio = aug.get("scale", DEFAULT_SCALE), aug.get("ratio", DEFAULT_RATIO)
    need = _named(f"models.{model}.augmentation", _checked_min_side, out_size, scale, ratio)
    if side < need:
        raise ConfigError(
            f"{key}: {side} px is below {need} px, the smallest stored short side at which every "
            f"RandomResizedCrop crop (scale {list(scale)}, ratio {list(ratio)}) of a {out_size}-px {rec['arch']} input "
            f"is at least {out_size} px; smaller storage would upscale the crops (use >= {need} or null)")
    bounds = {}
    for name in config["datasets"]:
        ds = dataset_config(config, name)
        if ds.get("subset_of"):
            continue  # shares its source's download
        dl = ds["download"]
        no_resize = dl["resize_mode"] in ("no", False)
        bounds[name] = float("inf") if no_resize else int(dl["image_size"])
    if bounds and side >= max(bounds.values()):
        raise ConfigError(
            f"{key}: {side} px is not below any dataset's stored short side (download.image_size: "
            f"{dict(sorted(bounds.items()))}); there is nothing to derive, leave it null to train from the "
            "downloaded shards")


def _checked_min_side(out_size: int, scale, ratio) -> int:
    from lib.data.resize_spec import min_lossless_short_side

    try:
        return min_lossless_short_side(out_size, scale, ratio)
    except ValueError as e:
        raise ConfigError(str(e)) from None


def _named(key: str, fn, *args):
    """``fn(*args)`` with ``key`` (where the value came from) prefixed to a ConfigError's message."""
    try:
        return fn(*args)
    except ConfigError as e:
        raise ConfigError(f"{key}: {e}") from None


def missing_api_keys(config: dict, search_jobs, env=None) -> dict[str, list[str]]:
    """Environment variables that the web search backends about to run need but ``env`` lacks (unset or blank).

    ``search_jobs``: ``(dataset, backend)`` pairs of the ``search`` jobs that will run. Returns
    ``{variable: ["datasets.<d>.search.backends.<b>", ...]}`` (empty when nothing is missing). The variable names
    come from ``search_web.required_env`` (a backend's default or its ``api_key_env``).
    """
    import os

    from lib.search import search_web

    env = os.environ if env is None else env
    missing: dict[str, list[str]] = {}
    for dataset, backend in sorted(set(search_jobs)):
        if backend not in search_web.BACKENDS:
            continue  # pool (local) needs no key
        params = dataset_config(config, dataset)["search"]["backends"].get(backend, {})
        for var in search_web.required_env(backend, params):
            if not str(env.get(var, "")).strip():
                missing.setdefault(var, []).append(f"datasets.{dataset}.search.backends.{backend}")
    return missing


def check_api_keys(config: dict, search_jobs, env=None) -> None:
    """Raise ConfigError naming every missing API-key variable (see :func:`missing_api_keys`).

    Called by the workflow's ``onstart`` hook, i.e. when a real run is about to start its first job (a dry run
    plans offline and needs no key).
    """
    missing = missing_api_keys(config, search_jobs, env)
    if missing:
        lines = "; ".join(f"{var} (needed by {', '.join(where)})" for var, where in sorted(missing.items()))
        raise ConfigError(f"API key environment variable(s) not set: {lines}. Export them before running "
                          "(keys are read from the environment only, never from the config)")


def schema_errors(config: dict, schema: dict, limit: int = 8) -> list[str]:
    """Every JSON-schema violation of ``config`` as one short line each: the key path, what was expected, and for
    an unknown key the closest allowed names ("did you mean ..."); at most ``limit`` lines, deepest errors first."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: (-len(e.absolute_path), list(map(str, e.path))))
    lines = []
    for e in errors:
        leaves = _leaf_errors(e)
        for leaf in leaves:
            line = _describe(leaf)
            if line not in lines:
                lines.append(line)
    if len(lines) > limit:
        lines = lines[:limit] + [f"... and {len(lines) - limit} more"]
    return lines


def _leaf_errors(error) -> list:
    """The most specific errors under a ``oneOf``/``anyOf``/``allOf`` error (its context), else the error itself."""
    if not error.context:
        return [error]
    deepest = max(len(c.absolute_path) for c in error.context)
    return [c for c in error.context if len(c.absolute_path) == deepest] or [error]


def _describe(error) -> str:
    import difflib

    where = ".".join(str(p) for p in error.absolute_path) or "(top level)"
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = sorted((error.schema.get("properties") or {}).keys())
        extra = sorted(set(error.instance) - set(allowed))
        parts = []
        for key in extra:
            close = difflib.get_close_matches(key, allowed, n=2, cutoff=0.6)
            hint = f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""
            parts.append(f"unknown key {key!r}{hint}")
        return f"{where}: {'; '.join(parts)}. Allowed: {', '.join(allowed)}"
    if error.validator == "propertyNames":
        return f"{where}: key {error.instance!r} is not allowed ({_short(error.message)})"
    if error.validator == "enum":
        return f"{where}: {error.instance!r} is not one of {error.validator_value}"
    return f"{where}: {_short(error.message)}"


def _short(message: str, width: int = 160) -> str:
    message = " ".join(message.split())
    return message if len(message) <= width else message[:width - 3] + "..."


def validate_config(config: dict, schema_path: Path = SCHEMA_PATH) -> dict:
    """Schema validation with short messages (:func:`schema_errors`); then the schema's defaults of the top-level
    sections are filled into ``config`` in place (datasets and recipes: :func:`dataset_config`, :func:`model_recipe`).
    :func:`check` runs the cross-checks."""
    schema = load_schema(Path(schema_path))
    lines = schema_errors(config, schema)
    if lines:
        raise ConfigError(f"{len(lines)} problem(s) in the configuration (see config/README.md):\n  "
                          + "\n  ".join(lines))
    return fill_defaults(config, schema)


BENCHMARK_SOURCES = ("the clip-benchmark webdataset repositories on the Hugging Face Hub (clip-benchmark/wds_<name>, "
                     "the layout these roots use); ImageNet-1k only from image-net.org under its licence; see "
                     "config/README.md, benchmarks")


def missing_benchmarks(config: dict, suites: list[str], built_by_rules=(), base: Path = Path(".")) -> dict:
    """``{benchmark: root}`` of the named suites whose data is not on disk, leaving out ``evaluation.skip`` and the
    roots a rule of this workflow builds."""
    skip = set(config["evaluation"].get("skip") or [])
    out = {}
    for name in suites:
        for bench, b in suite_by_name(config, name).items():
            root = b.get("root")
            if bench in skip or root in set(built_by_rules):
                continue
            if not root or not (Path(base) / root).exists():
                out[bench] = root
    return out


def check_benchmarks_present(config: dict, suites: list[str], built_by_rules=(), base: Path = Path(".")) -> None:
    """Called by the workflow's ``onstart`` hook for the suites of the evaluate jobs about to run: a benchmark
    without data stops the run before its first job (days of harvesting and training would otherwise end in a
    table of ``missing``), unless ``evaluation.skip`` names it."""
    missing = missing_benchmarks(config, suites, built_by_rules, base)
    if missing:
        rows = "; ".join(f"{b} (benchmarks.{b}.root = {r!r})" for b, r in sorted(missing.items()))
        raise ConfigError(f"benchmark data not found: {rows}. Put each benchmark at its root (sources: "
                          f"{BENCHMARK_SOURCES}), change the root, or opt out with evaluation.skip: "
                          f"[{', '.join(sorted(missing))}] (reported as skipped in eval.csv)")


PREPARED_ROOT = "data/benchmarks/{name}"


def prepared_by_rule(name: str, bench: dict) -> bool:
    """Whether rule ``prepare_benchmark`` builds the benchmark's root (it has a ``source`` and the standard root)."""
    return bool(bench.get("source")) and bench.get("root") == PREPARED_ROOT.format(name=name)


def benchmark_inputs(config: dict, names, base: Path = Path(".")) -> list[str]:
    """Plan-time check and input list: the roots that rule ``prepare_benchmark`` builds for ``names`` (less
    ``evaluation.skip``). A benchmark that is neither on disk nor preparable (e.g. ImageNet-1k without
    ``source.local_path``) raises ConfigError naming the benchmark, the key and how to supply it."""
    from lib.eval.benchmarks import can_prepare

    skip = set(config["evaluation"].get("skip") or [])
    out, problems = [], []
    for name in names:
        if name in skip:
            continue
        bench = config["benchmarks"][name]
        root = bench.get("root")
        if prepared_by_rule(name, bench):
            if not (Path(base) / root).exists() and (why := can_prepare(name, bench)):
                problems.append(why)
            else:
                out.append(root)
        elif not root or not (Path(base) / root).exists():
            problems.append(f"benchmark {name}: root {root!r} does not exist and no rule builds it (rule "
                            f"prepare_benchmark builds {PREPARED_ROOT.format(name=name)} from benchmarks.{name}"
                            f".source); put the data there, set benchmarks.{name}.root/source, or opt out with "
                            f"evaluation.skip: [{name}]")
    if problems:
        raise ConfigError(" | ".join(problems))
    return out
