"""DICOM plugin for series with irregular geometry, and the hidden module that registers it.

Examination reads the headers from Slicer's DICOM database (multi-frame objects from their files,
for their functional groups), analyses them with irregular_series and offers one loadable per stack
(the stacks of one multi-frame object together; see ``irregular_series.slicer.examine``). Loading
makes the stack's raw volume, puts it in the subject
hierarchy, then adds an acquisition transform or hardens it, as the settings panel says. When
several series are selected, each group of them that forms one stack is also offered assembled
into one volume, never selected by default (``irregular_series.slicer.assembly_offers``).
"""

import logging
import weakref

import slicer
from DICOMLib import DICOMLoadable, DICOMPlugin
from slicer.i18n import tr as _

from irregular_series.analysis import analyze_slices
from irregular_series.headers import HEADER_TAGS
from irregular_series.options import ConvertOptions
from irregular_series.slicer import assembling
from irregular_series.slicer import scene as irregularScene
from irregular_series.slicer import sequences as irregularSequences
from irregular_series.slicer.assembly_offers import assembly_offers
from irregular_series.slicer.database import database_headers
from irregular_series.slicer.progress import Cancelled, all_or_nothing, progress_of
from irregular_series.slicer.series_options import SeriesChoice, examine_headers

LOAD_MODE_SETTING = "DICOM/IrregularSeries/LoadMode"
"""What loading does to irregular stacks: "transform" (acquisition transform) or "harden"."""

SPACING_SETTING = "DICOM/IrregularSeries/Spacing"
"""Slice spacing policy for hardening at load: "auto", "nominal", "median" or "min"."""


class IrregularSeriesPluginClass(DICOMPlugin):
    """Loads every stack of a series at its DICOM geometry: localizers apart, gaps, variable
    spacing, tilt and stitched sections under an acquisition transform or hardened."""

    def __init__(self):
        super().__init__()
        self.loadType = _("Irregular Series")
        # Pre-cached by the DICOM database at import: everything the header scan reads.
        self.tags.update(HEADER_TAGS)
        # What each loadable loads: kept here, not on the loadable, whose attributes are the ones
        # Slicer defines (the browser and the subject hierarchy read those).
        self._examined = weakref.WeakKeyDictionary()
        # The "assembled from N series" loadables and what each joins.
        self._assemblies = weakref.WeakKeyDictionary()

    @staticmethod
    def settingsPanelEntry(panel, parent):
        import ctk
        import qt

        formLayout = qt.QFormLayout(parent)
        loadModeComboBox = ctk.ctkComboBox()
        loadModeComboBox.addItem(_("acquisition transform (keep slices as acquired)"), "transform")
        loadModeComboBox.addItem(_("harden at default spacing"), "harden")
        loadModeComboBox.toolTip = _(
            "What loading does to a stack with irregular geometry: keep its slices under a transform that puts "
            "each at its DICOM position, or resample it onto a regular grid (checked against every slice).")
        formLayout.addRow(_("Load irregular stacks with:"), loadModeComboBox)
        panel.registerProperty(LOAD_MODE_SETTING, loadModeComboBox, "currentUserDataAsString",
                               str(qt.SIGNAL("currentIndexChanged(int)")),
                               _("DICOM examination settings"), ctk.ctkSettingsPanel.OptionRequireRestart)
        spacingComboBox = ctk.ctkComboBox()
        for policy, label in (("auto", _("auto (nominal if the positions agree, else median)")),
                              ("nominal", _("nominal (SpacingBetweenSlices or SliceThickness)")),
                              ("median", _("median step")), ("min", _("smallest step"))):
            spacingComboBox.addItem(label, policy)
        spacingComboBox.toolTip = _("Slice spacing of hardened volumes.")
        formLayout.addRow(_("Default slice spacing:"), spacingComboBox)
        panel.registerProperty(SPACING_SETTING, spacingComboBox, "currentUserDataAsString",
                               str(qt.SIGNAL("currentIndexChanged(int)")),
                               _("DICOM examination settings"), ctk.ctkSettingsPanel.OptionRequireRestart)

    def examineForImport(self, fileLists):
        # Overridden because the base class returns [] before Slicer 5.12 (5.12's calls examineFiles).
        loadables = []
        for files in fileLists:
            cached = self.getCachedLoadables(files)
            if cached is None:
                cached = self.examineFiles(files)
                self.cacheLoadables(files, cached)
            loadables += cached
        if len(fileLists) > 1:
            loadables += self.examineAssemblies(fileLists)
        return loadables

    def examineAssemblies(self, fileLists):
        """One "assembled from N series" loadable (never selected) per group of the selected series
        that together form one stack, joined with the default options; cached like the per-series
        loadables, for the whole selection."""
        allFiles = [f for files in fileLists for f in files]
        loadables = self.getCachedLoadables(allFiles)
        if loadables is None:
            loadables = []
            for offer in assembly_offers(analyze_slices(*database_headers(slicer.dicomDatabase, allFiles)),
                                         self.defaultChoice().options):
                loadable = _loadable(offer)
                self._assemblies[loadable] = offer
                loadables.append(loadable)
            self.cacheLoadables(allFiles, loadables)
        return loadables

    def examineFiles(self, files):
        return self.examineFilesWithChoice(files)

    @staticmethod
    def defaultChoice():
        """How series without options of their own are loaded: as the settings panel says."""
        return SeriesChoice(slicer.util.settingsValue(LOAD_MODE_SETTING, "transform"),
                            ConvertOptions(spacing=slicer.util.settingsValue(SPACING_SETTING, "auto")))

    def examineFilesWithChoice(self, files, choice=None):
        """The loadables of ``files``: every series in them loaded as ``choice`` (a SeriesChoice)
        says when given, else as remembered for that series (module panel), else by default."""
        slices, excluded = database_headers(slicer.dicomDatabase, files)
        settings = slicer.app.settings() if choice is None else None
        loadables = []
        for series, examined in examine_headers(slices, excluded, self.defaultSeriesNodeName, settings,
                                                choice or self.defaultChoice()):
            stacks = {stack.id: stack for stack in series.stacks}
            for offer in examined.offers:
                loadable = _loadable(offer)
                self._examined[loadable] = (offer, [stacks[spec.stack_id] for spec in offer.parts], examined.choice.options)
                loadables.append(loadable)
        return loadables

    def load(self, loadable):
        """One volume per stack of the loadable (usually one, more with the split policies), or the
        assembled volume of several series; returns the first. A progress dialog shows reading and
        hardening; cancelled, nothing is loaded."""
        from IrregularSeries import ProgressDialog

        with ProgressDialog(_("Loading {name}").format(name=loadable.name)) as progress:
            try:
                return self.loadAll(loadable, progress)[0]
            except Cancelled:
                logging.info(f"Loading {loadable.name} was cancelled; nothing was loaded")
                return None

    def loadAll(self, loadable, progress=None):
        """Every volume node loading the loadable makes. ``progress`` as for
        ``irregular_series.slicer.scene.load_series``: when it asks to stop, or anything fails, no
        node made here stays in the scene."""
        scene = slicer.mrmlScene
        if loadable in self._assemblies:
            assembly = self._assemblies[loadable]
            name = assembly.node_name if loadable.name == assembly.name else loadable.name
            return self._shown(assembling.load_assembly(scene, assembly.candidate, assembly.options, name, progress))
        offer, stacks, options = self._examined[loadable]
        if offer.sequence is not None:
            return self._shown(self.loadSequence(loadable, offer, options, progress))
        report = progress_of(progress)
        volumeNodes = []
        with all_or_nothing(scene):
            for n, (spec, stack) in enumerate(zip(offer.parts, stacks)):
                share = report.part(n / len(stacks), (n + 1) / len(stacks))
                pixels = irregularScene.stack_pixels(stack, share.part(0.0, 0.4))
                # The browser's name says what was found; the node gets the short name unless renamed.
                name = spec.node_name if loadable.name == offer.name else loadable.name
                volumeNode = irregularScene.add_stack_volume(scene, stack, pixels, name)
                self.addSeriesInSubjectHierarchy(loadable, volumeNode)
                volumeNodes += irregularScene.regularize(scene, volumeNode, stack, spec, pixels, options,
                                                         share.part(0.4, 1.0))
        report.finished(_("Loaded"))
        return self._shown(volumeNodes)

    def loadSequence(self, loadable, offer, options, progress=None):
        """A volume series as one sequence with a browser: its proxy volume first (in the series'
        subject hierarchy item), then the volumes the split policies left apart."""
        label = self.defaultSeriesNodeName(offer.sequence.stacks[0].slices[0].series_instance_uid)
        name = f"{label} — {offer.sequence.title}" if loadable.name == offer.name else loadable.name
        loaded = irregularSequences.load_sequence(slicer.mrmlScene, offer.sequence, options, name, progress=progress)
        self.addSeriesInSubjectHierarchy(loadable, loaded.proxy)
        return [loaded.proxy, *loaded.apart]

    @staticmethod
    def _shown(volumeNodes):
        """``volumeNodes``, the first shown in the slice views."""
        selectionNode = slicer.app.applicationLogic().GetSelectionNode()
        selectionNode.SetActiveVolumeID(volumeNodes[0].GetID())
        slicer.app.applicationLogic().PropagateVolumeSelection()
        return volumeNodes


def dropBrowserExaminations():
    """Forget what the DICOM browser's instance of this plugin examined: it keeps the loadables of
    each file list for as long as the browser lives, and remembered options change them."""
    widget = getattr(slicer.modules, "DICOMWidget", None)
    browser = widget.browserWidget if widget is not None else None
    plugin = browser.pluginInstances.get("IrregularSeriesPlugin") if browser is not None else None
    if plugin is not None:
        plugin.loadableCache.clear()


def _loadable(offer):
    """A DICOMLoadable of an offer (of ``offers`` or ``assembly_offers``): what the browser shows."""
    loadable = DICOMLoadable()
    loadable.files = list(offer.files)
    loadable.name = offer.name
    loadable.tooltip = offer.tooltip
    loadable.warning = offer.warning
    loadable.selected = offer.selected
    loadable.confidence = offer.confidence
    return loadable


class IrregularSeriesPlugin:
    """Hidden module whose only job is to register the plugin with the DICOM module, at
    construction, so that its tags are pre-cached and its settings panel entry is created."""

    def __init__(self, parent):
        parent.title = "Irregular Series DICOM Plugin"
        parent.categories = ["Developer Tools.DICOM Plugins"]
        parent.contributors = ["IrregularSeries authors"]
        parent.helpText = """
Plugin to the DICOM module: loads series with irregular geometry (localizers mixed in, gaps,
variable spacing, gantry tilt, stitched sections, several stacks) at their DICOM geometry.
No module interface here; see the Irregular Series module.
"""
        parent.acknowledgementText = """
Builds on the DICOM plugin architecture and acquisition transform of 3D Slicer's DICOMLib.
"""
        parent.hidden = True
        try:
            slicer.modules.dicomPlugins
        except AttributeError:
            slicer.modules.dicomPlugins = {}
        slicer.modules.dicomPlugins["IrregularSeriesPlugin"] = IrregularSeriesPluginClass
