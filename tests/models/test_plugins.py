"""The user's own code: references resolved, loaded, called with the spec's keywords, and every
way it can be wrong as one PluginError line."""

from importlib.metadata import EntryPoint

import pytest
import torch
from torch import nn

from mnv2prof.errors import SpecError, UsageError
from mnv2prof.models import blocks as blocks_module
from mnv2prof.models import plugins
from mnv2prof.models.blocks import build_block
from mnv2prof.models.targets import Target, row_hash
from mnv2prof.models.user_models import ModelSpec, build_model, model_spec, model_specs
from mnv2prof.models.variants import BlockSpec, parse_variant_list
from tests.helpers import PLUGIN_BLOCKS as BLOCKS


@pytest.fixture
def blocks(tmp_path):
    path = tmp_path / "blocks.py"
    path.write_text(BLOCKS)
    return path


def _spec(path, name, **values):
    (ref,) = parse_variant_list(f"{path}:{name}")
    return ref.spec(**{"in_chs": 8, "resolution": 8, **values})


def test_a_file_reference_resolves_to_its_hash_and_name(blocks):
    (ref,) = parse_variant_list(f"{blocks}:Wide")
    assert ref.name == "Wide" and ref.source == f"{blocks.resolve()}:Wide"
    assert ref.source_hash == plugins.file_digest(blocks) and len(ref.source_hash) == 16


def test_a_relative_path_is_relative_to_the_base_folder(blocks):
    (ref,) = parse_variant_list("blocks.py:Wide", base_dir=blocks.parent)
    assert ref.source == f"{blocks.resolve()}:Wide"


def test_only_the_keywords_a_factory_accepts_are_passed(blocks):
    module = build_block(_spec(blocks, "Wide", out_chs=16))
    assert module.conv.in_channels == 8 and module.conv.out_channels == 16
    loaded = plugins.load(plugins.resolve(f"{blocks}:everything"))
    build_block(_spec(blocks, "everything", exp_ratio=4, kernel_size=5, stride=1))
    assert loaded.seen == {"in_chs": 8, "out_chs": 8, "mid_chs": 32, "exp_ratio": 4,
                           "kernel_size": 5, "stride": 1}
    assert isinstance(build_block(_spec(blocks, "NoInit")), nn.Module)  # nn.Module's own init


@pytest.mark.parametrize("variant, mid_chs", [("mbv2", 32), ("fused", 32), ("resnet", 8)])
def test_a_users_block_and_a_built_in_are_called_alike(blocks, monkeypatch, variant, mid_chs):
    """The user's `everything(**values)` stands in for the built-in's class: both receive the
    same keywords, mid_chs the variant's own (resnet: 8 / 4 rounded up to 8)."""
    recorder = plugins.load(plugins.resolve(f"{blocks}:everything"))
    values = {"in_chs": 8, "resolution": 8, "exp_ratio": 4, "kernel_size": 5, "stride": 2}
    build_block(_spec(blocks, "everything", **values))
    users = dict(recorder.seen)
    monkeypatch.setitem(blocks_module.BUILDERS, variant, recorder)
    builtin = BlockSpec(variant, **values)
    build_block(builtin)
    assert recorder.seen == builtin.keywords()
    assert {**users, "mid_chs": mid_chs} == recorder.seen
    assert users["mid_chs"] == 32  # a user's block is expanded: C x t


def test_a_users_block_is_seeded_like_a_built_in(blocks):
    a, b = build_block(_spec(blocks, "Wide")), build_block(_spec(blocks, "Wide"))
    assert torch.equal(a.conv.weight, b.conv.weight)
    assert not torch.equal(a.bn.running_var, torch.ones(8))  # BN statistics randomised


def test_the_hash_follows_the_files_bytes_not_its_path(blocks, tmp_path):
    spec = _spec(blocks, "Wide")
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    (moved / "blocks.py").write_text(BLOCKS)
    assert _spec(moved / "blocks.py", "Wide").digest(1) == spec.digest(1)
    blocks.write_text(BLOCKS + "\n# edited\n")
    edited = _spec(blocks, "Wide")
    assert edited.digest(1) != spec.digest(1)
    assert row_hash(spec, 1) != row_hash(edited, 1)
    assert row_hash(spec, 1, Target("int8")) != row_hash(spec, 1)


def test_an_edit_after_the_spec_was_made_is_refused(blocks):
    spec = _spec(blocks, "Wide")
    blocks.write_text(BLOCKS + "\n# edited\n")
    with pytest.raises(plugins.PluginError, match="changed since it was read"):
        build_block(spec)


def test_built_in_hashes_are_unchanged_by_the_new_fields():
    spec = BlockSpec("mbv2")
    assert spec.identity() == {k: v for k, v in spec.to_dict().items()
                               if k not in ("chunks", "reduction", "source", "source_hash")}


@pytest.mark.parametrize(
    "name, message",
    [
        ("Nope", "defines no 'Nope' (it defines: NoInit, Pair, Wide, WrongChannels, everything, "
                 "not_a_module, raises, tiny_net)"),
        ("raises", "raises(in_chs=8) from {path} raised ValueError: no block for 8 channels"),
        ("not_a_module", "not_a_module(in_chs=8) from {path} returned int, not a "
                         "torch.nn.Module"),
        ("WrongChannels", "WrongChannels from {path} fails on a 1x8x8x8 input: RuntimeError: "),
        ("Pair", "Pair from {path} returns tuple on a 1x8x8x8 input; mnv2prof measures modules "
                 "that return one tensor"),
    ],
)
def test_a_broken_block_is_one_line_naming_what_is_wrong(blocks, name, message):
    with pytest.raises(plugins.PluginError) as err:
        build_block(_spec(blocks, name))
    text = str(err.value)
    assert message.format(path=blocks.resolve()) in text and "\n" not in text


@pytest.mark.parametrize(
    "source, message",
    [
        ("def f(:\n    pass\n", "{path}, line 1: SyntaxError: invalid syntax"),
        ("import nope_not_here\n", "{path} fails to import: ModuleNotFoundError: No module "
                                   "named 'nope_not_here'"),
        ("raise SystemExit(3)\n", "{path} fails to import: SystemExit: 3"),
    ],
)
def test_a_file_that_cannot_be_imported_names_its_error(tmp_path, source, message):
    path = tmp_path / "broken.py"
    path.write_text(source)
    with pytest.raises(plugins.PluginError) as err:
        build_block(_spec(path, "Block"))
    assert str(err.value) == message.format(path=path.resolve())


@pytest.mark.parametrize(
    "text, message",
    [
        ("missing.py:Block", "variant 'missing.py:Block': missing.py not found"),
        ("blocks.py:", "expected PATH.py:NAME or package.module:NAME"),
        ("blocks.py:no-name", "'no-name' is not a Python name"),
        ("no_such_package.blocks:Block", "cannot import no_such_package.blocks: No module named "
                                         "'no_such_package'"),
        ("not a module:Block", "is neither a .py file nor a module name"),
    ],
)
def test_references_that_cannot_resolve(text, message, monkeypatch, blocks):
    monkeypatch.chdir(blocks.parent)
    with pytest.raises(UsageError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_variant_list(text)


def test_a_module_reference_loads_an_importable_module(monkeypatch, blocks):
    monkeypatch.syspath_prepend(str(blocks.parent))
    (ref,) = parse_variant_list("blocks:Wide")
    assert ref.source == "blocks:Wide" and ref.source_hash == plugins.file_digest(blocks)
    assert build_block(ref.spec(in_chs=8, resolution=8)).conv.in_channels == 8


def test_a_module_reference_is_found_without_running_its_package(monkeypatch, tmp_path):
    # its package's __init__ is the user's code: it runs in the worker, never here
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("open('ran.txt', 'w').write('ran')\n")
    (tmp_path / "pkg" / "blocks.py").write_text(BLOCKS)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    (ref,) = parse_variant_list("pkg.blocks:Wide")
    assert ref.source == "pkg.blocks:Wide"
    assert ref.source_hash == plugins.file_digest(tmp_path / "pkg" / "blocks.py")
    assert not (tmp_path / "ran.txt").exists() and "pkg" not in __import__("sys").modules
    for text, message in (("pkg.nope.x:Wide", "cannot import pkg.nope.x: No module named "
                                              "'pkg.nope'"),
                          ("pkg.blocks.x:Wide", "cannot import pkg.blocks.x: 'pkg.blocks' is not "
                                                "a package"),
                          ("pkg.gone:Wide", "no module named 'pkg.gone' \\(is it installed")):
        with pytest.raises(plugins.PluginError, match=message):
            parse_variant_list(text)


def test_two_variants_of_one_name_are_refused(blocks, tmp_path):
    other = tmp_path / "other.py"
    other.write_text(BLOCKS)
    with pytest.raises(SpecError, match="two variants are named 'Wide'"):
        parse_variant_list(f"{blocks}:Wide,{other}:Wide")


def _entry_points(monkeypatch, value):
    point = EntryPoint("uib", value, plugins.ENTRY_POINT_GROUP)
    monkeypatch.setattr(plugins, "entry_points", lambda: {"uib": point})


def test_an_installed_entry_point_is_a_variant(monkeypatch, blocks):
    monkeypatch.syspath_prepend(str(blocks.parent))
    _entry_points(monkeypatch, "blocks:Wide")
    (ref,) = parse_variant_list("uib")
    assert ref.name == "uib" and ref.source == "blocks:Wide"
    assert build_block(ref.spec(in_chs=8, resolution=8)).conv.out_channels == 8


def test_an_entry_point_that_fails_to_load_is_one_line(monkeypatch):
    _entry_points(monkeypatch, "gone_package.blocks:Block")
    with pytest.raises(plugins.PluginError, match=r"entry point uib \(gone_package.blocks:Block\) "
                                                  "fails to load: .*No module named"):
        parse_variant_list("uib")


def test_a_model_is_called_with_no_arguments_at_its_shape(blocks):
    spec = model_spec(f"{blocks}:tiny_net", "1x3x16x16")
    assert spec == ModelSpec("tiny_net", f"{blocks.resolve()}:tiny_net",
                             plugins.file_digest(blocks), (("input", (1, 3, 16, 16)),))
    assert spec.name == "tiny_net_1x3x16x16" and spec.label == "tiny_net"
    out = build_model(spec)(torch.zeros(1, 3, 16, 16))
    assert out.shape == (1, 2)
    default = model_spec(f"{blocks}:tiny_net")
    assert default.input_shape == (1, 3, 224, 224)


def test_model_shapes_pair_with_models(blocks):
    models = [f"{blocks}:tiny_net", f"{blocks}:Wide"]
    assert [s.input_shape for s in model_specs(models, ["1x3x8x8"])] == [(1, 3, 8, 8)] * 2
    with pytest.raises(UsageError, match="--shape given 3 times for 2 --model"):
        model_specs(models, ["1x3x8x8"] * 3)
    with pytest.raises(UsageError, match="two models are named tiny_net"):
        model_specs([models[0], models[0]], [])
    with pytest.raises(UsageError, match="'0' is not a positive integer dim"):
        model_spec(models[0], "1x0x8")
