"""The user's own blocks and models: code loaded from a file, an importable module, or an
installed package's entry point.

A reference names a class or a function (NAME) that returns an `nn.Module`:

    PATH.py:NAME          a Python file, imported by path (relative to the current folder, or to
                          a profile's folder when a profile names it)
    package.module:NAME   an importable module, e.g. torchvision.models:shufflenet_v2_x1_0
    NAME                  an entry point of the group `mnv2prof.variants` (name -> factory) that
                          an installed package offers (`mnv2prof variants` lists them)

**Importing a user's file runs their code**, as `python PATH.py` would: only name files you trust.
The tool runs it in a worker process (run.worker, run.user_code), never in its own: here a
reference is resolved without importing anything (a file is hashed, a module's file found as
`import` would find it, `find_module`), and `load`, `call_factory` and `check_forward` run in
the worker, or in the caller's process for a callable given to the Python API (`guarded`).

Every reference resolves to an `Origin`: what to show (`source`), what to load (`path`), and a
hash of the bytes of the file that defines NAME (`digest`): a block's spec and its export cache
key include the hash, so an edited file is never served a stale export, and a gate says when a
baseline was measured on another version of the file. Only that one file is hashed: an edit in a
file it imports is not seen (keep a block's code in one file, or bump something in it).

Every failure is one `PluginError` line (exit 2), naming the file and what went wrong: the file
missing, a syntax or import error (with its first line), NAME not defined (with what the file
defines), the factory raising, a result that is not an `nn.Module`, a forward that fails on the
input shape; the factory or its forward raising `SystemExit` or `KeyboardInterrupt` too. Nothing
here imports torch until a factory is called.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.util
import inspect
import io
import re
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from mnv2prof.errors import Interrupted, Mnv2profError, UsageError, first_line

ENTRY_POINT_GROUP = "mnv2prof.variants"
_MODULE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class PluginError(UsageError):
    """A user's block or model that cannot be loaded, built or run (exit 2)."""


@dataclass(frozen=True)
class Origin:
    """Where a user's factory comes from."""

    source: str  # what a row's `source` column says: the file, the module, or the entry point
    name: str  # NAME: the class or function
    path: str  # the file to load (absolute); "" for a module found on sys.path
    module: str  # the module to import when `path` is ""
    digest: str  # sha256 (16 hex digits) of the bytes of the file that defines NAME

    @property
    def reference(self) -> str:
        return f"{self.source}:{self.name}"


def is_reference(text: str) -> bool:
    """Whether `text` names user code (`PATH.py:NAME`, `package.module:NAME`) rather than a
    built-in variant or an entry point."""
    return ":" in text


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


CALLABLE_PREFIX = "python:"  # a callable handed to the Python API, registered in this process
_CALLABLES: dict[str, Callable[..., object]] = {}


def register_callable(obj: Callable[..., object], digest: str) -> Origin:
    """A callable given to the Python API (`mnv2prof.compare(variants=[MyBlock])`), as an
    `Origin` this process can load again; `digest` is what its caches key on (its source's
    hash, or a module's state). It exists only in this process (not on a Ray worker)."""
    name = getattr(obj, "__name__", "") or type(obj).__name__
    if not _NAME_RE.match(name):
        name = "model" if name == "<lambda>" else re.sub(r"\W", "_", name) or "model"
    where = f"{getattr(obj, '__module__', '')}.{getattr(obj, '__qualname__', name)}"
    key = f"{CALLABLE_PREFIX}{where.replace(':', '.')}@{digest}"  # one ':' ahead of NAME
    _CALLABLES[key] = obj
    return Origin(key, name, "", "", digest)


def resolve(text: str, base_dir: Path | None = None, what: str = "variant") -> Origin:
    """The `Origin` of a reference (see the module docstring); nothing is imported: a file is
    hashed, a module's file only found. A `PluginError` names what is wrong."""
    source, sep, name = text.strip().rpartition(":")
    if source.startswith(CALLABLE_PREFIX):
        if source not in _CALLABLES:
            raise PluginError(f"{what} {name}: a callable registered in another process (give "
                              "PATH.py:NAME to measure it elsewhere)")
        return Origin(source, name, "", "", source.rpartition("@")[2])
    if not sep or not source or not name:
        raise PluginError(f"{what} {text!r}: expected PATH.py:NAME or package.module:NAME")
    if not _NAME_RE.match(name):
        raise PluginError(f"{what} {text!r}: {name!r} is not a Python name (a class or function)")
    if source.endswith(".py") or "/" in source or "\\" in source:
        path = Path(source).expanduser()
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        if not path.is_file():
            where = f" (relative to {base_dir})" if base_dir is not None else ""
            state = "is not a file" if path.exists() else "not found"
            raise PluginError(f"{what} {text!r}: {source}{where} {state}")
        try:
            digest = file_digest(path)
        except OSError as exc:
            raise PluginError(f"{what} {text!r}: cannot read {source}: {exc.strerror}") from None
        return Origin(source, name, str(path.resolve()), "", digest)
    if not _MODULE_RE.match(source):
        raise PluginError(f"{what} {text!r}: {source!r} is neither a .py file nor a module name")
    return _module_origin(source, name, source, what, text)


def _module_origin(module: str, name: str, source: str, what: str, text: str) -> Origin:
    spec = find_module(module, what, text)
    digest = ""
    if spec.origin and Path(spec.origin).is_file():
        digest = file_digest(Path(spec.origin))
    return Origin(source, name, "", module, digest)


def find_module(module: str, what: str = "variant", text: str = ""):
    """The spec of `module` (its file), found as `import` would find it but without running
    any of its packages' `__init__` (`importlib.util.find_spec` of a dotted name imports the
    packages above it: the user's code, which runs in the worker alone, run.worker)."""
    text = text or module
    path = None
    parts = module.split(".")
    for i in range(len(parts)):
        name = ".".join(parts[: i + 1])
        loaded = sys.modules.get(name)
        spec = getattr(loaded, "__spec__", None) if loaded is not None else _find(name, path)
        if spec is None and i < len(parts) - 1:
            raise PluginError(f"{what} {text!r}: cannot import {module}: No module named "
                              f"{name!r}")
        if spec is None:
            raise PluginError(f"{what} {text!r}: no module named {module!r} (is it installed?)")
        path = spec.submodule_search_locations
        if path is None and i < len(parts) - 1:
            raise PluginError(f"{what} {text!r}: cannot import {module}: {name!r} is not a "
                              "package")
    return spec


def _find(name: str, path):
    """The first spec the import system's finders give for `name`, as `import` asks them."""
    for finder in sys.meta_path:
        find = getattr(finder, "find_spec", None)
        if find is None:
            continue
        try:
            spec = find(name, path)
        except (ImportError, ValueError):
            continue
        if spec is not None:
            return spec
    return None


def entry_points() -> dict[str, object]:
    """The installed entry points of `ENTRY_POINT_GROUP`, by name (nothing is loaded)."""
    from importlib.metadata import entry_points as installed

    return {ep.name: ep for ep in installed(group=ENTRY_POINT_GROUP)}


def entry_point_origin(name: str) -> Origin:
    """The `Origin` of the installed entry point `name` (`package.module:attr` of some
    distribution)."""
    point = entry_points()[name]
    dist = getattr(point, "dist", None)
    shown = f"entry point {name}" + (f" ({dist.name} {dist.version})" if dist else "")
    module, _, attr = point.value.partition(":")
    attr = attr.strip() or name
    try:
        origin = _module_origin(module.strip(), attr.split(".")[0], shown, "variant", name)
    except PluginError as exc:
        raise PluginError(f"entry point {name} ({point.value}) fails to load: {exc}") from None
    return origin


_LOADED: dict[tuple[str, str, str], object] = {}


def load(origin: Origin, what: str = "variant") -> Callable[..., object]:
    """NAME from its file or module (imported once per process and file version)."""
    if origin.source.startswith(CALLABLE_PREFIX):
        return _CALLABLES[origin.source]
    key = (origin.path, origin.module, origin.digest)
    if key not in _LOADED:
        _LOADED[key] = _import(origin, what)
    module = _LOADED[key]
    factory = getattr(module, origin.name, None)
    if factory is None:
        defined = sorted(
            n for n, v in vars(module).items()
            if not n.startswith("_") and (inspect.isclass(v) or inspect.isfunction(v))
            and getattr(v, "__module__", None) == module.__name__
        )
        listing = ", ".join(defined) or "no classes or functions"
        raise PluginError(f"{origin.source} defines no {origin.name!r} (it defines: {listing})")
    if not callable(factory):
        raise PluginError(f"{origin.reference} is a {type(factory).__name__}, not a class or "
                          "function")
    return factory


def _import(origin: Origin, what: str):
    if not origin.path:
        try:
            return importlib.import_module(origin.module)
        except Exception as exc:  # the user's module: any exception means it cannot be imported
            raise PluginError(f"{what} {origin.reference}: importing {origin.module} failed: "
                              f"{first_line(exc, with_type=True)}") from None
    path = Path(origin.path)
    try:
        current = file_digest(path)
    except OSError as exc:
        raise PluginError(f"cannot read {origin.source}: {exc.strerror}") from None
    if current != origin.digest:
        raise PluginError(f"{origin.source} changed while mnv2prof ran (its hash was "
                          f"{origin.digest}, now {current}): run again")
    # A unique module name per file version, registered in sys.modules: the exporter reads the
    # module's source, and Ray pickles its classes by module name.
    module_name = f"mnv2prof_user_{path.stem.replace('-', '_')}_{origin.digest}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise PluginError(f"{origin.source} cannot be imported as a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    if str(path.parent) not in sys.path:  # its neighbours import as `python FILE.py` finds them
        sys.path.insert(0, str(path.parent))
    try:
        spec.loader.exec_module(module)
    except SyntaxError as exc:
        del sys.modules[module_name]
        raise PluginError(f"{origin.source}, line {exc.lineno}: SyntaxError: {exc.msg}") from None
    except (Exception, SystemExit) as exc:  # the user's code ran: what it raises is its failure
        del sys.modules[module_name]
        raise PluginError(f"{origin.source} fails to import: "
                          f"{first_line(exc, with_type=True)}") from None
    return module


def accepted_keywords(factory: Callable[..., object], values: Mapping[str, object]) -> dict:
    """The entries of `values` that `factory`'s signature accepts (all of them when it takes
    **kwargs)."""
    if inspect.isclass(factory) and _inherits_module_init(factory):
        return {}  # nn.Module's own __init__ takes *args, **kwargs and refuses them all
    try:
        parameters = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):  # a builtin without a signature: call it with nothing
        return {}
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return dict(values)
    names = {p.name for p in parameters
             if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)}
    return {k: v for k, v in values.items() if k in names}


def _inherits_module_init(cls) -> bool:
    from torch import nn

    return issubclass(cls, nn.Module) and cls.__init__ is nn.Module.__init__


def call_factory(origin: Origin, values: Mapping[str, object], what: str = "variant"):
    """`NAME(**accepted)`: the module it returns, checked to be an `nn.Module`."""
    from torch import nn

    factory = load(origin, what)
    kwargs = accepted_keywords(factory, values)
    shown = f"{origin.name}({', '.join(f'{k}={v}' for k, v in kwargs.items())})"
    try:
        module = factory(**kwargs)
    except Exception as exc:  # the user's factory: whatever it raises is its message
        raise PluginError(f"{shown} from {origin.source} raised "
                          f"{first_line(exc, with_type=True)}") from None
    except (SystemExit, KeyboardInterrupt) as exc:  # never the end of the caller's process
        raise _ended(exc, f"{shown} from {origin.source}") from None
    if not isinstance(module, nn.Module):
        raise PluginError(f"{shown} from {origin.source} returned {type(module).__name__}, not a "
                          "torch.nn.Module")
    return module


def check_forward(module, input_shape: tuple[int, ...], name: str, source: str) -> None:
    """One forward pass on a seeded input of `input_shape`: a `PluginError` naming the shape when
    it fails or does not return one tensor (what export and every runtime need). `source`: the
    file or module, or a whole reference (its NAME is dropped)."""
    import torch

    from mnv2prof.models.inputs import example_input

    if source.endswith(f":{name}"):
        source = source[: -len(name) - 1]
    shape = "x".join(map(str, input_shape))
    x = example_input(input_shape, 0)
    try:
        with torch.inference_mode():
            out = module.eval()(x)
    except Exception as exc:  # the user's forward
        raise PluginError(f"{name} from {source} fails on a {shape} input: "
                          f"{first_line(exc, with_type=True)}") from None
    except (SystemExit, KeyboardInterrupt) as exc:
        raise _ended(exc, f"{name} from {source} on a {shape} input") from None
    if not isinstance(out, torch.Tensor):
        raise PluginError(f"{name} from {source} returns {type(out).__name__} on a {shape} input; "
                          "mnv2prof measures modules that return one tensor")


def checked_origin(spec, what: str = "variant") -> Origin:
    """The `Origin` of a user's block or model spec (its `source` reference), checked against the
    hash the spec recorded (a `PluginError` when the file changed since)."""
    origin = resolve(spec.source, what=what)
    if origin.digest != spec.source_hash:
        raise PluginError(
            f"{origin.source} changed since it was read (hash {spec.source_hash}, now "
            f"{origin.digest}): run again"
        )
    return origin


def _ended(exc: BaseException, who: str) -> Mnv2profError:
    """`SystemExit` or `KeyboardInterrupt` raised by the user's code, as one `PluginError`:
    it never ends the caller's process. A signal the caller received (the second Ctrl-C of
    interrupts.py) is `Interrupted`, not the user's code."""
    from mnv2prof import interrupts

    try:
        interrupts.check()
    except Interrupted as interrupted:
        return interrupted
    return PluginError(f"{who} raised {first_line(exc, with_type=True)}")


def shown(reference: str) -> str:
    """A reference as an error names it: a Python API callable by its module and name."""
    source, _, name = reference.rpartition(":")
    if source.startswith(CALLABLE_PREFIX):
        return f"{name} ({source[len(CALLABLE_PREFIX):].rpartition('@')[0]})"
    return reference


@contextlib.contextmanager
def guarded(reference: str, quiet: bool = True) -> Iterator[None]:
    """The user's code run in this process (a Python API callable: run.user_code keeps every
    other in the worker): its `SystemExit` or `KeyboardInterrupt` is one `PluginError` naming
    it, and with `quiet` what torch prints about it (an export's graph dumps on sys.stderr, its
    loggers) is kept from the caller, who never sees the tool print."""
    from mnv2prof.quiet import silenced

    try:
        if not quiet:
            yield
            return
        with silenced(("torch",)), contextlib.redirect_stderr(io.StringIO()):
            yield
    except (SystemExit, KeyboardInterrupt) as exc:
        raise _ended(exc, shown(reference)) from None
