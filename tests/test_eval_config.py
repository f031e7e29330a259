"""Pipeline TOML config: named configs, gensim defaults, unknown keys and wrong types refused."""

import inspect

import pytest
from gensim.models import Word2Vec

from eval.config import config_from_dict, load_config, named_configs
from jaxgram.errors import ConfigError, DataError

FIVE_BOOKS = [28054, 2638, 8117, 600, 40745]


def test_named_configs_exist():
    assert {"default", "dostoevsky"} <= set(named_configs())


def test_default_follows_the_dostoevsky_article_then_gensim_defaults():
    config = load_config("default")
    defaults = {name: p.default for name, p in inspect.signature(Word2Vec.__init__).parameters.items()}
    train = config.train
    assert train.objective == "ns" and train.negative == 5 and train.ns_exponent == pytest.approx(0.75)
    assert train.dim == defaults["vector_size"]
    assert train.window == defaults["window"]
    assert train.epochs == defaults["epochs"]
    assert train.min_count == defaults["min_count"]
    assert train.sample == pytest.approx(defaults["sample"])
    assert train.alpha == pytest.approx(defaults["alpha"]) and train.min_alpha == pytest.approx(defaults["min_alpha"])
    assert list(config.ingest.books) == FIVE_BOOKS


def test_dostoevsky_reproduces_the_article():
    train = load_config("dostoevsky").train
    assert (train.objective, train.dim, train.epochs, train.negative, train.tied) == ("ns", 32, 20, 5, False)
    assert train.ns_exponent == pytest.approx(0.75)


def test_a_config_file_path_is_accepted(tmp_path):
    path = tmp_path / "small.toml"
    path.write_text('[ingest]\nbooks = [600]\n[train]\ndim = 16\nepochs = 1\n[eval]\nsecond_seed = 9\nprobes = "p.toml"\n')
    config = load_config(str(path))
    assert config.ingest.books == (600,) and config.train.dim == 16 and config.eval.second_seed == 9
    assert config.probes_path == tmp_path / "p.toml"  # relative to the config file
    assert config.train.window == 5  # unspecified keys keep their defaults


@pytest.mark.parametrize("values, key", [
    ({"train": {"dimension": 10}}, "dimension"),
    ({"eval": {"overlap": 10}}, "overlap"),
    ({"ingest": {"book": [600]}}, "book"),
    ({"trian": {}}, "trian"),
    ({"train": {"dim": "100"}}, "dim"),
    ({"train": {"epochs": 2.5}}, "epochs"),
    ({"eval": {"noise_floors": 1}}, "noise_floors"),
    ({"eval": {"overlap_words": "all"}}, "overlap_words"),
    ({"ingest": {"books": ["600"]}}, "books"),
    ({"ingest": {"fmt": 3}}, "fmt"),
    ({"eval": {"second_seed": 1}}, "second_seed"),  # equal to train.seed: no noise floor
])
def test_bad_values_are_refused_naming_the_key(values, key):
    with pytest.raises(ConfigError, match=key) as caught:
        config_from_dict(values)
    assert "\n" not in str(caught.value)


def test_unknown_named_config_lists_the_names():
    with pytest.raises(ConfigError, match="dostoevsky"):
        load_config("no-such-config")


def test_missing_config_file_names_the_path(tmp_path):
    with pytest.raises(DataError, match="absent.toml"):
        load_config(str(tmp_path / "absent.toml"))


def test_invalid_toml_is_a_config_error(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text("[train\ndim = 3\n")
    with pytest.raises(ConfigError, match="broken.toml"):
        load_config(str(path))


def test_former_name_seed004_still_loads_dostoevsky_with_a_one_line_notice(capsys):
    assert load_config("seed004").train == load_config("dostoevsky").train
    notice = capsys.readouterr().err
    assert notice.count("\n") == 1 and "'dostoevsky'" in notice and "deprecated" in notice
