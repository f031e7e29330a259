import dataclasses
import inspect
import math
import re
from pathlib import Path

import numpy as np
import pytest

from jaxgram import TrainConfig
from jaxgram.errors import ConfigError


def test_defaults_are_valid_and_round_trip():
    config = TrainConfig()
    assert config.validate() is config
    assert TrainConfig.from_dict(config.to_dict()) == config
    assert (config.objective, config.dim, config.window, config.negative, config.min_count) == ("ns", 100, 5, 5, 5)


@pytest.mark.parametrize("field, value, allowed", [
    ("dim", 0, "in 1..2147483647"), ("window", 0, "in 1..9999"), ("epochs", 0, "in 1..2147483647"),
    ("negative", 0, "in 1..2147483647"), ("alpha", 0.0, "> 0"), ("alpha", -1.0, "> 0"), ("objective", "cbow", "ns, softmax"),
    ("optimizer", "rmsprop", "sgd, adam, adagrad"), ("init", "zeros", "word2vec, gensim, glorot"),
    ("sample", 1.5, "[0, 1)"), ("min_count", 0, "in 1..9223372036854775807"), ("max_vocab_size", 1, "in 2..2147483647"),
    ("alpha", math.inf, "finite"), ("alpha", math.nan, "> 0"),
])
def test_bad_values_name_field_value_and_allowed(field, value, allowed):
    with pytest.raises(ConfigError) as info:
        TrainConfig(**{field: value}).validate()
    message = str(info.value)
    assert field in message and repr(value) in message and allowed in message
    assert isinstance(info.value, ValueError)


def test_softmax_does_not_need_negatives():
    TrainConfig(objective="softmax", negative=0).validate()


def test_from_dict_refuses_unknown_keys_and_wrong_types():
    with pytest.raises(ConfigError, match="unknown config key 'dims'"):
        TrainConfig.from_dict({"dims": 10})
    with pytest.raises(ConfigError, match="dim='10'.*int"):
        TrainConfig.from_dict({"dim": "10"})
    with pytest.raises(ConfigError, match="shrink_window=1.*bool"):
        TrainConfig.from_dict({"shrink_window": 1})
    with pytest.raises(ConfigError, match="epochs=True"):
        TrainConfig.from_dict({"epochs": True})


def test_from_dict_accepts_ints_for_floats():
    config = TrainConfig.from_dict({"alpha": 1, "sample": 0, "max_vocab_size": None})
    assert isinstance(config.alpha, float) and config.alpha == 1.0


def test_devices_take_a_count_or_all_and_shard_tables_needs_them():
    assert TrainConfig.from_dict({"devices": "all", "shard_tables": True}).devices == "all"
    assert TrainConfig.from_dict({"devices": 4}).devices == 4
    assert TrainConfig().devices is None and not TrainConfig().shard_tables
    with pytest.raises(ConfigError, match="devices='most'.*int >= 1 or 'all'"):
        TrainConfig.from_dict({"devices": "most"})
    with pytest.raises(ConfigError, match="devices=0.*in 1..2147483647"):
        TrainConfig.from_dict({"devices": 0})
    with pytest.raises(ConfigError, match="devices=2.5 has the wrong type"):
        TrainConfig.from_dict({"devices": 2.5})
    with pytest.raises(ConfigError, match="shard_tables=True is not allowed without devices"):
        TrainConfig.from_dict({"shard_tables": True})
    with pytest.raises(ConfigError, match="chunk_tokens=1.*in 2..2147483647"):
        TrainConfig.from_dict({"chunk_tokens": 1})


def _no_cgroup_quota(monkeypatch, tmp_path):
    from jaxgram import config as config_module

    monkeypatch.setattr(config_module, "CGROUP_ROOT", str(tmp_path / "no-cgroups"))


def test_workers_default_to_every_usable_core_up_to_the_bound(monkeypatch, tmp_path):
    from jaxgram import config as config_module

    _no_cgroup_quota(monkeypatch, tmp_path)
    assert TrainConfig().workers is None
    assert TrainConfig.from_dict({"workers": 3}).workers == 3
    # No cap at 2 any more (16 cores: 16 workers, as gensim's and word2vec.c's threads are meant to be set).
    for cores, expected in ((1, 1), (2, 2), (16, 16), (5000, config_module.MAX_WORKERS)):
        monkeypatch.setattr(config_module.os, "sched_getaffinity", lambda pid, n=cores: set(range(n)), raising=False)
        assert config_module.default_workers() == expected
        assert config_module.resolved_workers(TrainConfig()) == expected
    assert config_module.resolved_workers(TrainConfig(workers=5)) == 5


def _write(folder: Path, name: str, text: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text)


@pytest.mark.parametrize("files, own, quota", [
    ({}, {}, None),  # no cgroups at all
    ({"cpu.max": "max 100000\n"}, {}, None),  # v2, no quota
    ({"cpu.max": "150000 100000\n"}, {}, 1.5),  # v2: docker --cpus 1.5
    ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, {}, None),  # v1, no quota
    ({"cpu,cpuacct/cpu.cfs_quota_us": "50000\n", "cpu,cpuacct/cpu.cfs_period_us": "100000\n"}, {}, 0.5),  # v1
    # The process's own cgroup and the ones above it: the least quota along the path counts.
    ({"cpu.max": "max 100000", "a/cpu.max": "400000 100000", "a/b/cpu.max": "max 100000"}, {"v2": "/a/b"}, 4.0),
    ({"a/cpu.max": "800000 100000", "a/b/cpu.max": "300000 100000"}, {"v2": "/a/b"}, 3.0),
    # A path this view of the cgroups does not have (a container sees its own cgroup at the root).
    ({"cpu.max": "200000 100000"}, {"v2": "/docker/abc"}, 2.0),
    ({"cpu.max": "garbage"}, {}, None),
])
def test_cgroup_cpu_quota_reads_crafted_cgroup_files(tmp_path, files, own, quota):
    from jaxgram.config import cgroup_cpu_quota

    for name, text in files.items():
        path = tmp_path / name
        _write(path.parent, path.name, text)
    assert cgroup_cpu_quota(tmp_path, own) == quota


@pytest.mark.parametrize("affinity, cpu_max, expected", [
    (8, "150000 100000", 2),  # 1.5 cores' time: rounded up
    (8, "50000 100000", 1),  # half a core: at least 1
    (2, "800000 100000", 2),  # the affinity mask is the tighter bound
    (8, "max 100000", 8),
])
def test_usable_cores_are_the_affinity_mask_within_the_cgroup_quota(monkeypatch, tmp_path, affinity, cpu_max, expected):
    from jaxgram import config as config_module

    _write(tmp_path, "cpu.max", cpu_max)
    monkeypatch.setattr(config_module, "own_cgroups", dict)  # this process's own path: the root
    monkeypatch.setattr(config_module.os, "sched_getaffinity", lambda pid: set(range(affinity)), raising=False)
    assert config_module.usable_cores(tmp_path) == expected
    monkeypatch.setattr(config_module, "CGROUP_ROOT", str(tmp_path))
    assert config_module.default_workers() == expected


def test_workers_have_an_upper_bound_named_in_one_line():
    from jaxgram.config import MAX_WORKERS

    assert TrainConfig(workers=MAX_WORKERS).validate().workers == MAX_WORKERS
    for value in (MAX_WORKERS + 1, 100_000):
        with pytest.raises(ConfigError, match=rf"^workers={value} is not allowed: it must be in 1\.\.{MAX_WORKERS}$"):
            TrainConfig.from_dict({"workers": value})


@pytest.mark.parametrize("value, message", [(0, "workers=0.*in 1..1024"), (True, "workers=True has the wrong type"),
                                            (1.5, "workers=1.5 has the wrong type: expected int or null")])
def test_workers_must_be_a_count_of_at_least_one(value, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig.from_dict({"workers": value})


def test_train_command_takes_workers():
    from jaxgram.cli import build_parser
    from jaxgram.commands import config_from_args

    args = build_parser().parse_args(["train", "--corpus", "c.txt", "--out", "o", "--workers", "2"])
    assert config_from_args(args).workers == 2


@pytest.mark.parametrize("gensim_name, field, value", [
    ("vector_size", "dim", 300), ("shrink_windows", "shrink_window", False), ("max_final_vocab", "max_vocab_size", 50_000),
])
def test_from_dict_takes_gensims_name_for_a_field(gensim_name, field, value):
    config = TrainConfig.from_dict({gensim_name: value, "epochs": 3})
    assert config == TrainConfig.from_dict({field: value, "epochs": 3}) != TrainConfig(epochs=3)
    assert gensim_name not in config.to_dict()  # saved config.json and stage keys keep our names


def test_gensim_names_are_word2vec_keywords_with_our_defaults():
    from jaxgram.config import GENSIM_NAMES

    gensim_keywords = inspect.signature(pytest.importorskip("gensim.models").Word2Vec).parameters
    ours = TrainConfig()
    assert {name: gensim_keywords[name].default for name in GENSIM_NAMES} == {
        name: getattr(ours, field) for name, field in GENSIM_NAMES.items()}
    # gensim's max_vocab_size caps memory while counting; ours is its max_final_vocab, so no alias.
    assert "max_vocab_size" not in GENSIM_NAMES


@pytest.mark.parametrize("values, message", [
    ({"dim": 100, "vector_size": 200}, "dim=100 and vector_size=200 are one setting .*give only one"),
    ({"shrink_window": True, "shrink_windows": True}, "shrink_window=True and shrink_windows=True"),
    ({"max_vocab_size": None, "max_final_vocab": 10}, "max_vocab_size=None and max_final_vocab=10"),
    ({"vector_size": 0}, r"^dim=0 is not allowed: it must be in 1\.\.2147483647 \(given as vector_size\)$"),
    ({"vector_size": "300"}, r"^dim='300' has the wrong type: expected int \(given as vector_size\)$"),
    ({"shrink_windows": 1}, r"shrink_window=1 has the wrong type: expected bool \(given as shrink_windows\)"),
    ({"max_final_vocab": 1}, r"max_vocab_size=1 is not allowed: it must be in 2\.\.2147483647 \(given as max_final_vocab\)"),
    ({"vector_size": 10, "epochs": 0}, r"^epochs=0 is not allowed: it must be in 1\.\.2147483647$"),
    ({"sg": 1}, r"unknown config key 'sg'; allowed keys: .*\(or gensim's vector_size, shrink_windows, max_final_vocab\)"),
])
def test_gensim_names_give_errors_that_name_the_key_as_written(values, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig.from_dict(values)


def test_vector_size_reads_dim_and_is_no_field():
    config = TrainConfig(dim=64)
    assert config.vector_size == 64
    assert "vector_size" not in {field.name for field in dataclasses.fields(TrainConfig)}


@pytest.mark.parametrize("field, value, allowed", [
    ("seed", 2**63, "0..4294967295"), ("seed", 2**32, "0..4294967295"), ("seed", -1, "0..4294967295"),
    ("dim", 2**31, "1..2147483647"), ("window", 10_000, "1..9999"), ("negative", 2**31, "1..2147483647"),
    ("epochs", 2**31, "1..2147483647"), ("min_count", 2**63, "1..9223372036854775807"),
    ("max_vocab_size", 2**31, "2..2147483647"), ("batch_size", 2**31, "1..2147483647"),
    ("chunk_tokens", 10**12, "2..2147483647"), ("workers", 1025, "1..1024"), ("devices", 2**31, "1..2147483647"),
])
def test_every_integer_field_is_refused_past_its_range_in_one_line_naming_it(field, value, allowed):
    with pytest.raises(ConfigError, match=rf"^{field}={value} is not allowed: it must be in {re.escape(allowed)}$"):
        TrainConfig.from_dict({field: value})


def test_each_integer_fields_range_ends_are_allowed():
    from jaxgram import config as config_module

    ends = {"seed": config_module.MAX_SEED, "window": config_module.MAX_WINDOW, "chunk_tokens": config_module.INT32_MAX,
            "max_vocab_size": config_module.INT32_MAX, "min_count": config_module.MAX_MIN_COUNT}
    assert TrainConfig.from_dict(ends).seed == 2**32 - 1
    assert TrainConfig.from_dict({"seed": 0, "window": 1, "negative": 0, "objective": "softmax"}).negative == 0


def test_the_seed_range_is_every_seed_jax_tells_apart():
    """jax.random.PRNGKey keeps a seed's low 32 bits: past MAX_SEED a seed trains as another one."""
    import jax
    import numpy as np

    from jaxgram.config import MAX_SEED

    def key(seed):
        return np.asarray(jax.random.key_data(jax.random.PRNGKey(seed)))

    assert not np.array_equal(key(MAX_SEED), key(0))
    np.testing.assert_array_equal(key(MAX_SEED + 1), key(0))


def test_the_widest_window_reaches_across_the_longest_sentence_read():
    from jaxgram.config import MAX_WINDOW
    from jaxgram.vocab import MAX_SENTENCE_LENGTH

    assert MAX_WINDOW == MAX_SENTENCE_LENGTH - 1


@pytest.mark.parametrize("alpha", [1e308, 1e39, 3.5e38])
def test_an_alpha_past_float32_is_refused(alpha):
    expected = rf"^alpha={re.escape(repr(alpha))} is not allowed: it must be > 0 and finite in float32 \(at most 3\.4e\+38\)$"
    with pytest.raises(ConfigError, match=expected):
        TrainConfig(alpha=alpha).validate()


def test_the_largest_alpha_allowed_is_float32s_largest():
    from jaxgram.config import FLOAT32_MAX

    assert TrainConfig(alpha=FLOAT32_MAX).validate().alpha == FLOAT32_MAX
    with np.errstate(over="raise"):  # the step's cast to float32 stays finite
        assert np.isfinite(np.float32(FLOAT32_MAX)) and FLOAT32_MAX == float(np.finfo(np.float32).max)


def test_own_cgroups_reads_each_controllers_path(monkeypatch):
    from jaxgram import config as config_module

    lines = ["12:memory:/mem/path", "4:cpu,cpuacct:/cpu/path", "0::/unified/path"]
    monkeypatch.setattr(config_module, "_read_lines", lambda path: lines)
    assert config_module.own_cgroups() == {"v1": "/cpu/path", "v2": "/unified/path"}
    assert config_module.own_cgroups("memory") == {"v1": "/mem/path", "v2": "/unified/path"}
