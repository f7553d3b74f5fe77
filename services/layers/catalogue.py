"""The layers on disk: basic, templates, modules and custom, each read from its manifest.toml,
and the resolution of a module choice into the order its migrations apply."""

from __future__ import annotations

import enum
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from graphlib import CycleError, TopologicalSorter
from itertools import pairwise
from pathlib import Path

from services.errors import InvalidInput


class LayerKind(enum.StrEnum):
    BASIC = "basic"
    TEMPLATE = "template"
    MODULE = "module"
    CUSTOM = "custom"


def one_per_line(problems: Iterable[str]) -> str:
    """Several problems as one message, a line each: the API gives the message as it is, and the
    pages list its lines."""
    return "\n".join(problems)


class ModuleProblems(InvalidInput):
    """Everything wrong with a choice of modules, found in one pass: each problem a sentence that
    names the modules by their titles and says what to do."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__(one_per_line(problems), field="modules")
        self.problems = tuple(problems)


@dataclass(frozen=True)
class Layer:
    kind: LayerKind
    name: str
    path: Path
    title: str = ""
    version: str = "0"
    description: str = ""
    requires: tuple[str, ...] = ()
    conflicts: tuple[str, ...] = ()
    default_modules: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        """How history and the UI name the layer: basic, templates/x, modules/x, custom/x."""
        if self.kind is LayerKind.BASIC:
            return "basic"
        return (
            f"{self.kind.value}s/{self.name}" if self.kind is not LayerKind.CUSTOM else f"custom/{self.name}"
        )

    @property
    def version_table(self) -> str:
        """The table in the tenant store that records this layer's applied revision. Templates and
        modules have one each: a shared store holds several templates side by side."""
        if self.kind in (LayerKind.MODULE, LayerKind.TEMPLATE):
            return f"layer_version_{self.kind.value}_{self.name}"
        return f"layer_version_{self.kind.value}"

    @property
    def versions_dir(self) -> Path:
        return self.path / "versions"


def layer_key_of(version_table: str, slug: str) -> str | None:
    """The key of the layer whose version table this is (named without its `layer_version_`
    prefix, as snapshots name them) in the store of tenant `slug`; None for no layer's."""
    if version_table in (LayerKind.BASIC.value, LayerKind.CUSTOM.value):
        return "basic" if version_table == LayerKind.BASIC.value else f"custom/{slug}"
    kind, _, name = version_table.partition("_")
    return f"{kind}s/{name}" if kind in (LayerKind.TEMPLATE.value, LayerKind.MODULE.value) and name else None


@dataclass(frozen=True)
class Catalogue:
    basic: Layer
    templates: dict[str, Layer]
    modules: dict[str, Layer]
    root: Path = field(compare=False)

    def template(self, name: str) -> Layer:
        if name not in self.templates:
            known = ", ".join(sorted(self.templates))
            raise InvalidInput(f"Unknown template {name!r}; choose one of {known}.", field="template")
        return self.templates[name]

    def named(self, key: str) -> Layer | None:
        """The layer a key names (basic, templates/x, modules/x, custom/slug), if there is one."""
        kind, _, name = key.partition("/")
        if key == "basic":
            return self.basic
        if kind == "templates":
            return self.templates.get(name)
        if kind == "modules":
            return self.modules.get(name)
        return self.custom(name) if kind == "custom" else None

    def custom(self, slug: str) -> Layer | None:
        """The tenant's own layer, when developers wrote one for it."""
        path = self.root / "custom" / slug
        if not (path / "versions").is_dir():
            return None
        return Layer(LayerKind.CUSTOM, slug, path, title=f"Custom changes for {slug}")

    def layers_for(self, template: str, modules: list[str], slug: str | None = None) -> list[Layer]:
        """Every layer of a tenant, in the order they apply: basic, template, modules, custom."""
        layers = [self.basic, self.template(template), *(self.modules[name] for name in modules)]
        custom = self.custom(slug) if slug else None
        return [*layers, custom] if custom else layers

    def title_of(self, module: str) -> str:
        """How people know a module: its title (a name that is no module, as it was given)."""
        layer = self.modules.get(module)
        return layer.title if layer else module

    def titles(self, modules: Sequence[str]) -> str:
        """Modules' titles joined for a sentence: Events; Events and Finance; …"""
        return _joined([self.title_of(module) for module in modules])

    def conflict(self, one: str, other: str) -> bool:
        """Whether two modules cannot be enabled together (either one's manifest says so)."""
        first, second = self.modules.get(one), self.modules.get(other)
        return bool(first and other in first.conflicts) or bool(second and one in second.conflicts)

    def conflict_problem(self, one: str, other: str) -> str:
        """What to do about two conflicting modules chosen together."""
        return f"{self.title_of(one)} and {self.title_of(other)} cannot be enabled together: choose one."

    def check_known(self, names: Iterable[str]) -> None:
        """Refuses names that are no module, all of them at once (ModuleProblems)."""
        if problem := self._unknown(names):
            raise ModuleProblems([problem])

    def resolve_modules(self, template: str, chosen: list[str] | tuple[str, ...]) -> list[str]:
        """Check a module choice and return it in dependency order (requirements first). Every
        problem of the choice is refused at once (ModuleProblems, see `module_problems`)."""
        self.template(template)
        if problems := self.module_problems(chosen):
            raise ModuleProblems(problems)
        return self.in_apply_order(chosen)

    def module_problems(self, chosen: Sequence[str]) -> list[str]:
        """Everything wrong with a choice of modules, found in one pass, a sentence each: the
        names that are no module; for each module, the requirements it brings that are not chosen;
        each pair that conflicts; requirements that wait for each other in a cycle."""
        selected = list(dict.fromkeys(chosen))
        known = [name for name in selected if name in self.modules]
        unknown = self._unknown(selected)
        problems = [unknown] if unknown else []
        for name in known:
            problems.extend(self._missing_requirements(name, set(known)))
        problems.extend(
            self.conflict_problem(name, other)
            for index, name in enumerate(known)
            for other in known[index + 1 :]
            if self.conflict(name, other)
        )
        if cycle := self._cycle(known):
            needs = [
                f"{self.title_of(needing)} needs {self.title_of(needed)}"
                for needing, needed in pairwise(cycle)
            ]
            problems.append(
                f"{_clauses(needs)}, so none of them can be enabled first: leave them out "
                "(their manifests need mending)."
            )
        return problems

    def in_apply_order(self, names: list[str] | tuple[str, ...]) -> list[str]:
        """Known modules in the order their migrations apply: requirements first, requirements
        outside `names` taken as present. No conflict is checked (a tenant's kept modules sit
        beside its enabled ones); a cycle raises graphlib's CycleError."""
        chosen = set(names)
        graph = TopologicalSorter({name: set(self.modules[name].requires) & chosen for name in chosen})
        graph.prepare()
        ordered: list[str] = []
        while graph.is_active():
            ready = sorted(graph.get_ready())
            ordered.extend(ready)
            graph.done(*ready)
        return ordered

    def _unknown(self, names: Iterable[str]) -> str | None:
        """The sentence naming, as they were given, the names that are no module; None if none."""
        unknown = [repr(name) for name in dict.fromkeys(names) if name not in self.modules]
        if not unknown:
            return None
        modules = _joined(sorted(self.modules)) or "none"
        if len(unknown) == 1:
            return f"There is no module {unknown[0]}: leave it out; the modules are {modules}."
        return f"There are no modules {_joined(unknown)}: leave them out; the modules are {modules}."

    def _missing_requirements(self, name: str, chosen: set[str]) -> list[str]:
        """What choosing `name` leaves out: the requirements it brings that are not chosen (and
        theirs, as the chosen ones' are reported for them), in one sentence; a requirement this
        installation does not have, in another."""
        needs: dict[str, list[str]] = {}
        absent: list[str] = []
        seen, waiting = {name}, [name]
        while waiting:
            needing = waiting.pop(0)
            for requirement in self.modules[needing].requires:
                if requirement in chosen or requirement in seen:
                    continue
                seen.add(requirement)
                if requirement not in self.modules:
                    absent.append(
                        f"{self.title_of(needing)} needs {requirement!r}, which this installation "
                        f"does not have: untick {self.title_of(name)}."
                    )
                    continue
                needs.setdefault(needing, []).append(requirement)
                waiting.append(requirement)
        if not needs:
            return absent
        clauses = [
            f"{self.title_of(needing)} needs {self.titles(needed)}" for needing, needed in needs.items()
        ]
        missing = [requirement for needed in needs.values() for requirement in needed]
        return [
            f"{_clauses(clauses)}: tick {self.titles(missing)} too, or untick {self.title_of(name)}.",
            *absent,
        ]

    def _cycle(self, names: Sequence[str]) -> list[str] | None:
        """Modules among `names` and everything they need that require each other in a circle:
        each needs the next, the first (the earliest of `names` in it) repeated last. None when
        there is none."""
        graph: dict[str, list[str]] = {}
        waiting = list(names)
        while waiting:
            name = waiting.pop(0)
            if name not in graph:
                graph[name] = [needed for needed in self.modules[name].requires if needed in self.modules]
                waiting.extend(graph[name])
        try:
            TopologicalSorter(graph).prepare()
        except CycleError as error:
            # graphlib gives each module before the one that needs it
            circle = list(reversed(error.args[1][1:]))
            start = circle.index(next((name for name in names if name in circle), circle[0]))
            circle = circle[start:] + circle[:start]
            return [*circle, circle[0]]
        return None


def _joined(words: Sequence[str]) -> str:
    """Words joined for a sentence: Events; Events and Finance; Documents, Events and Finance."""
    return f"{', '.join(words[:-1])} and {words[-1]}" if len(words) > 1 else "".join(words)


def _clauses(clauses: Sequence[str]) -> str:
    """Clauses joined for a sentence: A needs B; A needs B, and B needs C; …"""
    return clauses[0] if len(clauses) == 1 else f"{', '.join(clauses[:-1])}, and {clauses[-1]}"


def _read_layer(kind: LayerKind, path: Path) -> Layer:
    manifest = tomllib.loads((path / "manifest.toml").read_text())
    return Layer(
        kind=kind,
        name=manifest.get("name", path.name),
        path=path,
        title=manifest.get("title", path.name.replace("_", " ").capitalize()),
        version=str(manifest.get("version", "0")),
        description=manifest.get("description", ""),
        requires=tuple(manifest.get("requires", ())),
        conflicts=tuple(manifest.get("conflicts", ())),
        default_modules=tuple(manifest.get("default_modules", ())),
    )


def _read_kind(root: Path, kind: LayerKind) -> dict[str, Layer]:
    folder = root / f"{kind.value}s"
    if not folder.is_dir():
        return {}
    return {
        path.name: _read_layer(kind, path)
        for path in sorted(folder.iterdir())
        if (path / "manifest.toml").is_file()
    }


@cache
def load_catalogue(root: Path) -> Catalogue:
    """Read every manifest under `root` (the layers/ folder). Cached: layers change with releases."""
    return Catalogue(
        basic=_read_layer(LayerKind.BASIC, root / "basic"),
        templates=_read_kind(root, LayerKind.TEMPLATE),
        modules=_read_kind(root, LayerKind.MODULE),
        root=root,
    )
