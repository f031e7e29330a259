"""The public names of `jaxgram/__init__.py`: lazy, and never shadowed by a submodule."""

import subprocess
import sys

import jaxgram


def test_every_export_resolves_to_its_object_not_a_module():
    import types

    for name in jaxgram.__all__:
        assert not isinstance(getattr(jaxgram, name), types.ModuleType), name


def test_train_is_the_function_even_after_its_module_is_imported():
    code = "import jaxgram.training, jaxgram; assert callable(jaxgram.train), type(jaxgram.train)"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_importing_the_package_does_not_load_jax():
    code = "import sys, jaxgram, ingest.cli; assert 'jax' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_submodules_are_reachable_as_attributes():
    assert callable(jaxgram.geometry.cosine)
