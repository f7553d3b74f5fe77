"""The layers on disk: basic, templates, modules and custom, each read from its manifest.toml,
and the resolution of a module choice into the order its migrations apply."""

from __future__ import annotations

import enum
import tomllib
from dataclasses import dataclass, field
from functools import cache
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

from services.errors import InvalidInput


class LayerKind(enum.StrEnum):
    BASIC = "basic"
    TEMPLATE = "template"
    MODULE = "module"
    CUSTOM = "custom"


class UnknownModule(InvalidInput):
    pass


class MissingRequirement(InvalidInput):
    pass


class ModuleConflict(InvalidInput):
    pass


class ModuleCycle(InvalidInput):
    pass


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

    def resolve_modules(self, template: str, chosen: list[str] | tuple[str, ...]) -> list[str]:
        """Check a module choice and return it in dependency order (requirements first).

        Refuses unknown modules, a requirement that is not chosen (naming the chain), a conflict
        and a cycle, each with a message that says what to change."""
        self.template(template)
        selected = list(dict.fromkeys(chosen))
        for name in selected:
            if name not in self.modules:
                known = ", ".join(sorted(self.modules))
                raise UnknownModule(f"Unknown module {name!r}; the modules are {known}.", field="modules")
        for name in selected:
            self._check_requirements([name], set(selected))
        for index, name in enumerate(selected):
            for other in selected[index + 1 :]:
                if other in self.modules[name].conflicts or name in self.modules[other].conflicts:
                    raise ModuleConflict(
                        f"{name} conflicts with {other}: enable one of them, not both.", field="modules"
                    )
        try:
            return self.in_apply_order(selected)
        except CycleError as error:
            cycle = " → ".join(error.args[1])
            raise ModuleCycle(
                f"These modules require each other in a cycle: {cycle}.", field="modules"
            ) from None

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

    def _check_requirements(self, chain: list[str], selected: set[str]) -> None:
        for requirement in self.modules[chain[-1]].requires:
            if requirement in chain:
                continue  # a cycle; reported with its full path by the topological sort
            path = [*chain, requirement]
            if requirement not in self.modules:
                raise UnknownModule(
                    f"{' → '.join(path)}: {requirement!r} is not a module this installation has.",
                    field="modules",
                )
            if requirement not in selected:
                raise MissingRequirement(
                    f"{' → '.join(path)}: {chain[-1]} requires {requirement}, which is not selected.",
                    field="modules",
                )
            self._check_requirements(path, selected)


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
