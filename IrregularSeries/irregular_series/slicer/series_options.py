"""Load options remembered for one series: what the DICOM plugin does with that series instead of
its settings-panel defaults, stored by SeriesInstanceUID in the application settings.

A ``SeriesChoice`` is a load mode and the ``ConvertOptions`` fields a user picks per series in the
module panel (``CHOSEN_FIELDS``). ``remember`` stores it as JSON under ``SETTINGS_PREFIX`` + the
SeriesInstanceUID; ``recall`` reads it back and validates it again, so a value this version does
not accept (edited by hand, or written by another version) gives a ``Recalled`` that says what is
wrong and holds no choice: the plugin then uses its defaults and says why, it never fails.
``examine_headers`` is what the plugin offers for the series of some headers: each analysed and
examined (``examine_series``) under its remembered choice (else the defaults), each loadable's
name saying so; ``examine_with`` examines one analysed series under a given choice.

``settings`` is anything with Qt's ``QSettings`` interface as PythonQt exposes it: ``value(key,
default)``, ``setValue(key, value)``, ``remove(key)``. In Slicer that is ``slicer.app.settings()``
(Slicer's own settings file); without Qt (scripts, tests) ``MemorySettings``.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, get_args

from ..analysis import analyze_slices
from ..model import Excluded, SeriesAnalysis, SliceHeader
from ..options import ConvertOptions
from ..policies import SpacingRule
from .examine import LoadMode, Offer, examine_series, offers, with_sequences
from .scene import panel_setting

SETTINGS_PREFIX = "IrregularSeries/SeriesOptions/"
"""Settings key of a series' remembered choice: this prefix, then its SeriesInstanceUID."""

RECORD_VERSION = 1
"""Version of the stored record; a record of another version is refused (and the defaults used)."""

CHOSEN_FIELDS = ("spacing", "gaps", "sections", "tilt", "interpolation", "include_localizers", "keep_together")
"""The ``ConvertOptions`` fields a series' choice sets; the others stay the plugin's."""

LOAD_MODE_WORDS: dict[str, str] = {"harden": "harden", "transform": "acquisition transform"}
"""The module panel's words for each load mode."""


class Settings(Protocol):
    """What ``QSettings`` offers and this module uses."""

    def value(self, key: str, default: Any = None) -> Any: ...

    def setValue(self, key: str, value: Any) -> None: ...  # noqa: N802 (Qt's name)

    def remove(self, key: str) -> None: ...


class MemorySettings:
    """Settings held in a dict, with ``QSettings``' interface: the backend where there is no Qt
    (scripts on the ``slicer-core`` wheel, tests). Nothing is written anywhere."""

    def __init__(self) -> None:
        self._values: dict[str, Any] = {}

    def value(self, key: str, default: Any = None) -> Any:
        return self._values.get(key, default)

    def setValue(self, key: str, value: Any) -> None:  # noqa: N802 (Qt's name)
        self._values[key] = value

    def remove(self, key: str) -> None:
        self._values.pop(key, None)


@dataclass(frozen=True)
class SeriesChoice:
    """How to load one series: the load mode for irregular stacks and the conversion options
    (``CHOSEN_FIELDS`` are the user's; the rest, e.g. tolerances, come from the defaults)."""

    load_mode: LoadMode = "harden"
    options: ConvertOptions = field(default_factory=ConvertOptions)

    def __post_init__(self) -> None:
        if self.load_mode not in get_args(LoadMode):
            raise ValueError(f"load mode must be one of {', '.join(get_args(LoadMode))}; got {self.load_mode!r}")
        if not isinstance(self.options, ConvertOptions):
            raise ValueError(f"options must be a ConvertOptions record; got {type(self.options).__name__}")

    def to_record(self) -> dict[str, Any]:
        """The JSON record ``remember`` stores."""
        chosen = self.options.to_dict()
        return {"version": RECORD_VERSION, "load_mode": self.load_mode, **{name: chosen[name] for name in CHOSEN_FIELDS}}

    @classmethod
    def from_record(cls, record: object, defaults: SeriesChoice) -> SeriesChoice:
        """The choice ``record`` holds over ``defaults``; ``ValueError`` saying what is wrong."""
        if not isinstance(record, dict):
            raise ValueError(f"the stored record is not a JSON object but {type(record).__name__}")
        if record.get("version") != RECORD_VERSION:
            raise ValueError(f"it was stored in format {record.get('version')!r}, this version reads {RECORD_VERSION}")
        unknown = sorted(set(record) - {"version", "load_mode", *CHOSEN_FIELDS})
        if unknown:
            raise ValueError(f"it holds options this version does not know: {', '.join(unknown)}")
        chosen = {name: record[name] for name in CHOSEN_FIELDS if name in record}
        return cls(record.get("load_mode", defaults.load_mode), dataclasses.replace(defaults.options, **chosen))

    def words(self) -> list[str]:
        """The choice in the module panel's words, what differs from the library's defaults (the
        spacing always, when stacks may be hardened): ["Slice spacing: 1 mm", "Gaps: split"]."""
        default = ConvertOptions()
        found = [f"Irregular stacks: {LOAD_MODE_WORDS[self.load_mode]}"]
        if self.load_mode == "harden":
            spacing = self.options.spacing
            found.append(panel_setting("spacing", str(spacing) if isinstance(spacing, SpacingRule) else f"{spacing:g} mm"))
        for name in ("gaps", "sections", "tilt", "interpolation"):
            if getattr(self.options, name) != getattr(default, name):
                found.append(panel_setting(name, str(getattr(self.options, name))))
        if self.options.include_localizers:
            found.append(panel_setting("include_localizers", None))
        if self.options.keep_together:
            found.append(panel_setting("keep_together", ", ".join(self.options.keep_together)))
        return found


@dataclass(frozen=True)
class Recalled:
    """What ``recall`` found for a series: its choice, or ``None`` with ``problem`` saying why a
    stored one was not used ("" when nothing was stored)."""

    choice: SeriesChoice | None
    problem: str = ""


def settings_key(series_instance_uid: str) -> str:
    return SETTINGS_PREFIX + series_instance_uid


def remember(settings: Settings, series_instance_uid: str, choice: SeriesChoice) -> None:
    """Store ``choice`` for the series; the plugin uses it whenever the series is examined next."""
    settings.setValue(settings_key(series_instance_uid), json.dumps(choice.to_record()))


def forget(settings: Settings, series_instance_uid: str) -> None:
    """Drop the series' choice: the plugin's defaults apply to it again."""
    settings.remove(settings_key(series_instance_uid))


def recall(settings: Settings, series_instance_uid: str, defaults: SeriesChoice) -> Recalled:
    """The series' stored choice over ``defaults``, validated; never raises for what is stored."""
    text = settings.value(settings_key(series_instance_uid), "")
    if not text:
        return Recalled(None)
    try:
        return Recalled(SeriesChoice.from_record(json.loads(str(text)), defaults))
    except ValueError as error:  # json.JSONDecodeError is a ValueError
        return Recalled(None, f"The options remembered for this series were not used ({error}); loading with the "
                              "defaults. Choose them again in the Irregular Series module, or forget them there.")


@dataclass(frozen=True)
class Examined:
    """What the plugin offers for one series, and the choice it was examined (and is loaded) with."""

    choice: SeriesChoice
    offers: list[Offer]
    remembered: Recalled


def examine_with(series: SeriesAnalysis, series_label: str, choice: SeriesChoice,
                 recalled: Recalled = Recalled(None)) -> Examined:
    """The offers for ``series`` loaded as ``choice`` says. When ``recalled`` holds that choice
    (it was remembered) every offer's name ends "(your options: ...)" and its tooltip says what
    they are; when it holds a problem, every offer's warning and tooltip give it."""
    found = with_sequences(series, series_label, offers(
        examine_series(series, series_label, load_mode=choice.load_mode, options=choice.options), series_label),
        choice.options)
    if recalled.choice is not None:
        words = "; ".join(choice.words())
        note = f"Loaded with the options remembered for this series: {words}. Change or forget them in the " \
            "Irregular Series module."
        found = [dataclasses.replace(o, name=f"{o.name} (your options: {words})", tooltip=f"{o.tooltip}\n\n{note}")
                 for o in found]
    elif recalled.problem:
        found = [dataclasses.replace(o, tooltip=f"{o.tooltip}\n\n{recalled.problem}",
                                     warning=" ".join(w for w in (o.warning, recalled.problem) if w)) for o in found]
    return Examined(choice, found, recalled)


def examine_headers(
    slices: Sequence[SliceHeader],
    excluded: Sequence[Excluded],
    series_label: Callable[[str], str],
    settings: Settings | None,
    defaults: SeriesChoice,
) -> list[tuple[SeriesAnalysis, Examined]]:
    """What the plugin offers for every series of these headers, each as analysed for its choice:
    the series' remembered choice (``recall``) when it has a usable one, else ``defaults`` (with
    ``settings`` ``None``: ``defaults`` for every series, a choice made in the module panel). A
    series whose choice keeps stacks together is grouped again without those splits.
    ``series_label(SeriesInstanceUID)`` names a series' loadables."""
    found = []
    for series in analyze_slices(slices, excluded, defaults.options.tolerances).series:
        uid = series.series_instance_uid
        recalled = recall(settings, uid, defaults) if settings is not None else Recalled(None)
        choice = recalled.choice or defaults
        if choice.options.keep_together:
            (series,) = analyze_slices([s for s in slices if s.series_instance_uid == uid], excluded,
                                       choice.options.tolerances, choice.options.keep_together).series
        found.append((series, examine_with(series, series_label(uid), choice, recalled)))
    return found
