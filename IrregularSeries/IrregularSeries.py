"""Irregular Series: see what is irregular about a loaded DICOM stack and make it an exact regular volume.

The work is done by ``irregular_series`` (analysis, resampling, verification) and its scene
logic ``irregular_series.slicer.scene``; this file is the thin Slicer layer: module description,
parameter node, GUI, a logic that delegates to the scene logic, and a self-test.
"""

import contextlib
import dataclasses
import json
import logging
import os
import tempfile
from typing import Annotated

import qt
import slicer
import vtk
from slicer import vtkMRMLScalarVolumeNode
from slicer.i18n import tr as _
from slicer.parameterNodeWrapper import Choice, WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

from irregular_series.analysis import analyze_slices
from irregular_series.content_check import content_summary_text
from irregular_series.options import ConvertOptions
from irregular_series.policies import (
    GapPolicy,
    Interpolation,
    OverlapPolicy,
    SectionPolicy,
    SpacingRule,
    StackSplit,
    TiltPolicy,
)
from irregular_series.report import stack_line
from irregular_series.slicer import assembling, series_options
from irregular_series.slicer import mapback as irregularMapBack
from irregular_series.slicer import scene as irregularScene
from irregular_series.slicer import sequences as irregularSequences
from irregular_series.slicer.database import database_headers
from irregular_series.slicer.examine import slicer_series_name, spacing_presets
from irregular_series.slicer.progress import Cancelled, all_or_nothing, progress_of

SPACING_CHART_REFERENCE = "IrregularSeriesSpacingChart"
"""Volume node reference to the plot chart of its slice spacing (made once, then reused)."""


#
# IrregularSeries
#


class IrregularSeries(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("Irregular Series")
        self.parent.categories = [_("Converters")]
        self.parent.dependencies = ["DICOM"]
        self.parent.contributors = ["IrregularSeries authors"]
        self.parent.helpText = _("""
Shows what is irregular about a DICOM stack loaded by the Irregular Series DICOM plugin (localizers,
gaps, variable spacing, gantry tilt, stitched sections) and the spacing of its slices, and turns it
into a regular volume at the slice spacing you choose (for example exactly 0.6 mm). Every result is
checked: each input slice must land where its DICOM header says, or nothing is made.
""")
        self.parent.acknowledgementText = _("""
Uses the DICOM plugin architecture and the acquisition-transform approach of 3D Slicer's DICOMLib.
""")


#
# IrregularSeriesParameterNode
#


@parameterNodeWrapper
class IrregularSeriesParameterNode:
    """
    inputVolume - a volume loaded by the Irregular Series DICOM plugin.
    spacing - slice spacing policy; "custom" uses customSpacing (mm).
    gaps, sections, tilt, interpolation - the policies of ``irregular-series convert``.
    outputVolume - receives the hardened volume (a new one is made when empty).
    overlap - where assembled series overlap, which supplies the slices (``--overlap``).
    allowOtherFrames - assemble series whose frames of reference differ or are missing.
    """

    inputVolume: vtkMRMLScalarVolumeNode
    # The choices and defaults are the library's (policies.py, ConvertOptions): one definition.
    spacing: Annotated[str, Choice([r.value for r in SpacingRule] + ["custom"])] = ConvertOptions().spacing.value
    customSpacing: Annotated[float, WithinRange(0.01, 100.0)] = 0.6
    gaps: Annotated[str, Choice([p.value for p in GapPolicy])] = ConvertOptions().gaps.value
    sections: Annotated[str, Choice([p.value for p in SectionPolicy])] = ConvertOptions().sections.value
    tilt: Annotated[str, Choice([p.value for p in TiltPolicy])] = ConvertOptions().tilt.value
    interpolation: Annotated[str, Choice([p.value for p in Interpolation])] = ConvertOptions().interpolation.value
    outputVolume: vtkMRMLScalarVolumeNode
    overlap: Annotated[str, Choice([p.value for p in OverlapPolicy])] = ConvertOptions().overlap.value
    allowOtherFrames: bool = False

    def spacingChoice(self):
        return self.customSpacing if self.spacing == "custom" else self.spacing


#
# IrregularSeriesWidget
#


class IrregularSeriesWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._plotViewNode = None

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/IrregularSeries.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = IrregularSeriesLogic()

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.ui.applyTransformButton.connect("clicked(bool)", self.onApplyTransformButton)
        self.ui.hardenButton.connect("clicked(bool)", self.onHardenButton)
        self.ui.exportDicomButton.connect("clicked(bool)", self.onExportDicomButton)
        self.seriesOptions = SeriesOptionsSection(self.ui, self.logic)
        self.mapBack = MapBackSection(self.ui, self.logic)
        # Only volumes the plugin loaded: their stacks can be rebuilt.
        self.ui.assembleVolumesSelector.addAttribute("vtkMRMLScalarVolumeNode", irregularScene.STACK_ATTRIBUTE)
        self.ui.assembleVolumesSelector.connect("checkedNodesChanged()", self._updateAssembleGui)
        self.ui.assembleButton.connect("clicked(bool)", self.onAssembleButton)
        self.initializeParameterNode()

    def cleanup(self) -> None:
        self.removeObservers()
        self.logic.cleanup()

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        self.setParameterNode(None)

    def onSceneStartClose(self, caller, event) -> None:
        self.setParameterNode(None)
        self._plotViewNode = None

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())
        if not self._parameterNode.inputVolume:
            for node in slicer.util.getNodesByClass("vtkMRMLScalarVolumeNode"):
                if node.GetAttribute(irregularScene.STACK_ATTRIBUTE):
                    self._parameterNode.inputVolume = node
                    break

    def setParameterNode(self, inputParameterNode) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._updateGui)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            # .ui widgets carry the Qt dynamic property SlicerParameterName
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._updateGui)
            self._updateGui()

    def _updateGui(self, caller=None, event=None) -> None:
        volumeNode = self._parameterNode.inputVolume if self._parameterNode else None
        loadedByUs = bool(volumeNode and volumeNode.GetAttribute(irregularScene.STACK_ATTRIBUTE))
        self.ui.customSpacingSpinBox.enabled = bool(self._parameterNode and self._parameterNode.spacing == "custom")
        # A hardened volume no longer has one slice per image: no acquisition transform for it.
        hardened = bool(volumeNode and volumeNode.GetAttribute(irregularScene.SPACING_ATTRIBUTE))
        self.ui.applyTransformButton.enabled = loadedByUs and not hardened
        self.ui.hardenButton.enabled = loadedByUs
        self.ui.exportDicomButton.enabled = loadedByUs and hardened
        self._updateAssembleGui()
        if not volumeNode:
            self.ui.summaryLabel.text = _("Select a volume loaded by the Irregular Series DICOM plugin.")
            return
        assembled = bool(volumeNode.GetAttribute(assembling.ASSEMBLY_ATTRIBUTE))
        if not loadedByUs and not assembled:
            self.ui.summaryLabel.text = _("This volume was not loaded by the Irregular Series DICOM plugin.")
            return
        with slicer.util.tryWithErrorDisplay(_("Failed to read the stack of this volume."), waitCursor=True):
            self.ui.summaryLabel.text = self.logic.summary(volumeNode)
            if not assembled:  # an assembled volume has no one stack to chart
                self._showChart(self.logic.spacingChart(volumeNode))

    def _updateAssembleGui(self) -> None:
        p = self._parameterNode
        if not p:
            return
        with slicer.util.tryWithErrorDisplay(_("Failed to read the stacks of the checked volumes."), waitCursor=True):
            assembly = self.logic.examineAssembly(list(self.ui.assembleVolumesSelector.checkedNodes()), p.spacingChoice(),
                                                  allowOtherFrames=p.allowOtherFrames, overlap=p.overlap, gaps=p.gaps,
                                                  interpolation=p.interpolation)
            self.ui.assembleSummaryLabel.text = "\n".join(assembly.lines) if assembly.candidate else assembly.refusal
            self.ui.assembleButton.enabled = assembly.candidate is not None

    def _showChart(self, chartNode) -> None:
        if self._plotViewNode is None:
            self._plotViewNode = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLPlotViewNode", "IrregularSeries plot view")
            self.ui.spacingPlotWidget.setMRMLPlotViewNode(self._plotViewNode)
        self._plotViewNode.SetPlotChartNodeID(chartNode.GetID())

    def onApplyTransformButton(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Failed to add the acquisition transform."), waitCursor=True):
            if not self.logic.applyAcquisitionTransform(self._parameterNode.inputVolume):
                slicer.util.infoDisplay(_("Every slice is already at its DICOM position: no transform needed."))

    def onHardenButton(self) -> None:
        p = self._parameterNode
        with slicer.util.tryWithErrorDisplay(_("Hardening failed; nothing was changed."), waitCursor=True), \
                ProgressDialog(_("Hardening {name}").format(name=p.inputVolume.GetName())) as progress:
            try:
                nodes = self.logic.harden(p.inputVolume, p.spacingChoice(), interpolation=p.interpolation, gaps=p.gaps,
                                          sections=p.sections, tilt=p.tilt, outputVolume=p.outputVolume,
                                          progress=progress)
            except Cancelled:
                return  # nothing was changed
            p.outputVolume = nodes[0]
            slicer.util.setSliceViewerLayers(background=nodes[0], fit=True)

    def onAssembleButton(self) -> None:
        p = self._parameterNode
        with slicer.util.tryWithErrorDisplay(_("Assembling failed; nothing was made."), waitCursor=True), \
                ProgressDialog(_("Assembling")) as progress:
            try:
                nodes = self.logic.assemble(list(self.ui.assembleVolumesSelector.checkedNodes()), p.spacingChoice(),
                                            allowOtherFrames=p.allowOtherFrames, overlap=p.overlap, gaps=p.gaps,
                                            interpolation=p.interpolation, progress=progress)
            except Cancelled:
                return  # nothing was made
            p.inputVolume = nodes[0]  # its summary: what was joined and decided
            slicer.util.setSliceViewerLayers(background=nodes[0], fit=True)

    def onExportDicomButton(self) -> None:
        folder = qt.QFileDialog.getExistingDirectory(slicer.util.mainWindow(), _("Folder for the DICOM series"))
        if not folder:
            return
        with slicer.util.tryWithErrorDisplay(_("Export to DICOM failed; nothing was written."), waitCursor=True):
            series = self.logic.exportDicom(self._parameterNode.inputVolume, folder)
            slicer.util.infoDisplay(_("Wrote {count} files to {folder} and added the series to the DICOM database.").format(
                count=len(series.files), folder=series.folder))


class ProgressDialog(contextlib.AbstractContextManager):
    """Slicer's progress dialog while a long operation runs: called as the operation's progress
    callback (``irregular_series.slicer.progress``), it shows the fraction done and what is being
    done, and answers whether Cancel was pressed. Closed at the end of the ``with`` block."""

    def __init__(self, labelText) -> None:
        self.labelText = labelText
        # Open until the block ends: nested steps may report the end more than once.
        self.dialog = slicer.util.createProgressDialog(labelText=labelText, maximum=100, windowTitle=_("Irregular Series"),
                                                       autoClose=False, autoReset=False)
        slicer.app.processEvents()

    def __call__(self, fraction, message) -> bool:
        self.dialog.labelText = f"{self.labelText}\n{message}"
        self.dialog.value = round(100 * fraction)
        slicer.app.processEvents()
        return self.dialog.wasCanceled

    def __exit__(self, *exc) -> None:
        self.dialog.close()


class MapBackSection:
    """The "Map back to the acquisition" section: a segmentation or labelmap drawn on a hardened
    volume, mapped onto the raw volume's slices (``irregular_series.slicer.mapback``)."""

    def __init__(self, ui, logic) -> None:
        self.ui = ui
        self.logic = logic
        ui.mapBackSourceSelector.connect("currentNodeChanged(vtkMRMLNode*)", self.updateButton)
        ui.mapBackRawSelector.connect("currentNodeChanged(vtkMRMLNode*)", self.updateButton)
        ui.mapBackButton.connect("clicked(bool)", self.onMapBackButton)

    def updateButton(self, *args) -> None:
        raw = self.ui.mapBackRawSelector.currentNode()
        self.ui.mapBackButton.enabled = bool(self.ui.mapBackSourceSelector.currentNode() and raw
                                             and raw.GetAttribute(irregularScene.STACK_ATTRIBUTE)
                                             and not raw.GetAttribute(irregularScene.SPACING_ATTRIBUTE))

    def onMapBackButton(self) -> None:
        source, raw = self.ui.mapBackSourceSelector.currentNode(), self.ui.mapBackRawSelector.currentNode()
        with slicer.util.tryWithErrorDisplay(_("Mapping back failed; nothing was added."), waitCursor=True), \
                ProgressDialog(_("Mapping {source} onto {raw}").format(source=source.GetName(), raw=raw.GetName())) \
                as progress:
            try:
                node = self.logic.mapToAcquisition(source, raw, progress=progress)
            except Cancelled:
                return
            slicer.util.setSliceViewerLayers(background=raw, label=node)
            self.ui.mapBackResultLabel.text = _("{name}: one label per pixel of the {count} acquired slices.").format(
                name=node.GetName(), count=node.GetImageData().GetDimensions()[2])


@dataclasses.dataclass
class SeriesEntry:
    """A series the "Load with options" section lists: as analysed by default, the headers it was
    analysed from (of its files, which may hold other series), and where its files are."""

    series: object
    label: str
    slices: list
    excluded: list
    files: list
    fromDatabase: bool

    def seriesSlices(self):
        return [s for s in self.slices if s.series_instance_uid == self.series.series_instance_uid]


class SeriesOptionsSection:
    """The "Load with options" section: lists the series of the DICOM browser's selection or of a
    folder, shows what examining one under the chosen options gives, loads it so, and remembers
    or forgets the choice for that series (``irregular_series.slicer.series_options``)."""

    POLICIES = {"Gaps": GapPolicy, "Sections": SectionPolicy, "Tilt": TiltPolicy, "Interpolation": Interpolation}
    """The section's policy combo boxes (``seriesOptions<key>ComboBox``) and the policy each offers."""

    def __init__(self, ui, logic) -> None:
        self.ui = ui
        self.logic = logic
        self.settings = slicer.app.settings()
        self._series = []  # SeriesEntry per series, in list order
        for mode, words in series_options.LOAD_MODE_WORDS.items():
            ui.seriesOptionsLoadModeComboBox.addItem(words, mode)
        for rule in SpacingRule:
            ui.seriesOptionsSpacingComboBox.addItem(f"{rule.value}: {rule.help}", rule.value)
        ui.seriesOptionsSpacingComboBox.addItem(_("custom"), "custom")
        for key, policy in self.POLICIES.items():
            comboBox = getattr(ui, f"seriesOptions{key}ComboBox")
            for member in policy:
                comboBox.addItem(f"{member.value}: {member.help}", member.value)
        self.keepTogetherCheckBoxes = {}
        keepLayout = qt.QHBoxLayout(ui.seriesOptionsKeepTogetherWidget)
        keepLayout.setContentsMargins(0, 0, 0, 0)
        for split in StackSplit:
            checkBox = qt.QCheckBox(split.value)
            checkBox.toolTip = split.help
            checkBox.connect("toggled(bool)", self.showFindings)
            keepLayout.addWidget(checkBox)
            self.keepTogetherCheckBoxes[split] = checkBox
        ui.seriesOptionsBrowserButton.connect("clicked(bool)", self.listBrowserSelection)
        ui.seriesOptionsFolderButton.connect("clicked(bool)", self.onFolderButton)
        ui.seriesOptionsListWidget.connect("currentRowChanged(int)", self.onSeriesChanged)
        ui.seriesOptionsLoadButton.connect("clicked(bool)", self.onLoadButton)
        ui.seriesOptionsForgetButton.connect("clicked(bool)", self.onForgetButton)
        for key in ("LoadMode", "Spacing", *self.POLICIES):
            getattr(ui, f"seriesOptions{key}ComboBox").connect("currentIndexChanged(int)", self.showFindings)
        ui.seriesOptionsCustomSpacingSpinBox.connect("valueChanged(double)", self.showFindings)
        ui.seriesOptionsLocalizersCheckBox.connect("toggled(bool)", self.showFindings)

    def listBrowserSelection(self) -> None:
        """The series selected in the DICOM module's browser, read from Slicer's DICOM database."""
        import IrregularSeriesPlugin

        if not hasattr(slicer.modules, "DICOMWidget"):
            slicer.modules.dicom.widgetRepresentation()  # makes the DICOM module's widget and browser
        plugin = IrregularSeriesPlugin.IrregularSeriesPluginClass()
        found = []
        with slicer.util.tryWithErrorDisplay(_("Failed to read the selected series."), waitCursor=True):
            for files in slicer.modules.DICOMWidget.browserWidget.fileLists:
                slices, excluded = database_headers(slicer.dicomDatabase, files)
                for series in analyze_slices(slices, excluded).series:
                    found.append(SeriesEntry(series, plugin.defaultSeriesNodeName(series.series_instance_uid),
                                             slices, excluded, files, True))
        self._setSeries(found, _("Select series in the DICOM module's browser first."))

    def onFolderButton(self) -> None:
        folder = qt.QFileDialog.getExistingDirectory(slicer.util.mainWindow(), _("Folder of DICOM files"))
        if folder:
            self.listFolder(folder)

    def listFolder(self, folder) -> None:
        """The series in ``folder`` (searched recursively)."""
        with slicer.util.tryWithErrorDisplay(_("Failed to read the folder."), waitCursor=True):
            slices, excluded = irregularScene.read_files([folder])
            found = [SeriesEntry(series, slicer_series_name(series), slices, excluded, _seriesFiles(series), False)
                     for series in analyze_slices(slices, excluded).series]
            self._setSeries(found, _("No DICOM images found in {folder}.").format(folder=folder))

    def _setSeries(self, found, none) -> None:
        self._series = found
        self.ui.seriesOptionsListWidget.clear()
        for entry in found:
            self.ui.seriesOptionsListWidget.addItem(
                _("{label} ({count} stacks)").format(label=entry.label, count=len(entry.series.stacks)))
        self.ui.seriesOptionsFindingsLabel.text = "" if found else none
        self.ui.seriesOptionsListWidget.setCurrentRow(0 if found else -1)
        self.onSeriesChanged(self.ui.seriesOptionsListWidget.currentRow)

    def _current(self):
        row = self.ui.seriesOptionsListWidget.currentRow
        return self._series[row] if 0 <= row < len(self._series) else None

    def onSeriesChanged(self, row=None) -> None:
        """Show the series' remembered choice (else the defaults) in the controls."""
        current = self._current()
        self.ui.seriesOptionsLoadButton.enabled = current is not None
        self.ui.seriesOptionsForgetButton.enabled = False
        self.ui.seriesOptionsRememberedLabel.text = ""
        if current is None:
            return
        recalled = series_options.recall(self.settings, current.series.series_instance_uid, self.defaults())
        self.setChoice(recalled.choice or self.defaults())
        self.ui.seriesOptionsRememberCheckBox.checked = recalled.choice is not None
        self.ui.seriesOptionsForgetButton.enabled = recalled.choice is not None or bool(recalled.problem)
        self.ui.seriesOptionsRememberedLabel.text = recalled.problem or (
            _("Remembered for this series: {options}").format(options="; ".join(recalled.choice.words()))
            if recalled.choice else _("Nothing remembered for this series: the DICOM browser loads it with the defaults."))
        self.showFindings()

    @staticmethod
    def defaults():
        import IrregularSeriesPlugin

        return IrregularSeriesPlugin.IrregularSeriesPluginClass.defaultChoice()

    def setChoice(self, choice) -> None:
        ui = self.ui
        spacing = choice.options.spacing
        ui.seriesOptionsLoadModeComboBox.setCurrentIndex(ui.seriesOptionsLoadModeComboBox.findData(choice.load_mode))
        custom = not isinstance(spacing, SpacingRule)
        spacingComboBox = ui.seriesOptionsSpacingComboBox
        spacingComboBox.setCurrentIndex(spacingComboBox.findData("custom" if custom else str(spacing)))
        if custom:
            ui.seriesOptionsCustomSpacingSpinBox.value = spacing
        for key in self.POLICIES:
            comboBox = getattr(ui, f"seriesOptions{key}ComboBox")
            comboBox.setCurrentIndex(comboBox.findData(str(getattr(choice.options, key.lower()))))
        ui.seriesOptionsLocalizersCheckBox.checked = choice.options.include_localizers
        for split, checkBox in self.keepTogetherCheckBoxes.items():
            checkBox.checked = split in choice.options.keep_together

    def choice(self):
        """The choice the controls show, over the defaults (``ValueError`` for an invalid one)."""
        ui = self.ui
        spacing = ui.seriesOptionsSpacingComboBox.currentData
        chosen = {key.lower(): getattr(ui, f"seriesOptions{key}ComboBox").currentData for key in self.POLICIES}
        options = dataclasses.replace(
            self.defaults().options, spacing=ui.seriesOptionsCustomSpacingSpinBox.value if spacing == "custom" else spacing,
            include_localizers=ui.seriesOptionsLocalizersCheckBox.checked,
            keep_together=[split for split, checkBox in self.keepTogetherCheckBoxes.items() if checkBox.checked], **chosen)
        return series_options.SeriesChoice(ui.seriesOptionsLoadModeComboBox.currentData, options)

    def showFindings(self, *args) -> None:
        """What examining the series under the chosen options offers: each loadable's name and reasons."""
        current = self._current()
        self.ui.seriesOptionsCustomSpacingSpinBox.enabled = self.ui.seriesOptionsSpacingComboBox.currentData == "custom"
        if current is None:
            return
        try:
            ((_series, examined),) = series_options.examine_headers(
                current.seriesSlices(), current.excluded, lambda uid: current.label, None, self.choice())
        except ValueError as error:
            self.ui.seriesOptionsFindingsLabel.text = str(error)
            return
        self.ui.seriesOptionsFindingsLabel.text = "\n\n".join(
            ("" if offer.selected else _("(not loaded by default) ")) + f"{offer.name}\n{offer.tooltip}"
            + (f"\n{offer.warning}" if offer.warning else "") for offer in examined.offers)

    def onLoadButton(self) -> None:
        current = self._current()
        with slicer.util.tryWithErrorDisplay(_("Loading failed."), waitCursor=True), \
                ProgressDialog(_("Loading {label}").format(label=current.label)) as progress:
            try:
                self.load(current, self.choice(), remember=self.ui.seriesOptionsRememberCheckBox.checked,
                          progress=progress)
            except Cancelled:
                pass  # nothing was loaded

    def load(self, current, choice, remember, progress=None):
        """Load the series as ``choice`` says, remembering it for the series first if asked."""
        if remember:
            self.logic.rememberOptions(current.series.series_instance_uid, choice)
        nodes = self.logic.loadWithChoice(current.files, choice, fromDatabase=current.fromDatabase, progress=progress)
        if nodes:
            slicer.util.setSliceViewerLayers(background=nodes[0], fit=True)
        self.onSeriesChanged()
        return nodes

    def onForgetButton(self) -> None:
        current = self._current()
        if current is not None:
            self.logic.forgetOptions(current.series.series_instance_uid)
            self.onSeriesChanged()


#
# IrregularSeriesLogic
#


class IrregularSeriesLogic(ScriptedLoadableModuleLogic):
    """Console entry points; every method works on ``slicer.mrmlScene`` through
    ``irregular_series.slicer.scene``. Example::

        logic = slicer.util.getModuleLogic("IrregularSeries")
        nodes = logic.loadSeries(["/data/series"], spacing=0.6)
        hardened = logic.harden(volumeNode, spacing=0.6)
        series = logic.exportDicom(hardened[0], "/data/export")
        assembled = logic.assemble([station1, station2], spacing="auto", overlap="middle")
        labels = logic.mapToAcquisition(segmentationNode, rawVolumeNode)

    The long ones (loadSeries, harden, mapToAcquisition) take ``progress``, a callback
    ``progress(fraction, message)`` that returns True to stop: they then raise ``Cancelled``
    (``irregular_series.slicer.progress``) and leave the scene as it was.
    """

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)
        # Rebuilt from the instances a volume remembers, found through the DICOM database;
        # forgotten when the scene closes.
        self._stacks = irregularScene.StackCache(slicer.mrmlScene, locate=_fileForInstance)

    def cleanup(self) -> None:
        """Stop observing the scene (the module widget calls this when the module is unloaded)."""
        self._stacks.close()

    def getParameterNode(self):
        return IrregularSeriesParameterNode(super().getParameterNode())

    def stack(self, volumeNode):
        """The analysed stack a volume was loaded from (rebuilt once per volume and scene)."""
        return self._stacks.stack(volumeNode)

    def loadSeries(self, files, spacing=0.6, progress=None, **policies):
        """Load the series in ``files`` (files or folders); ``spacing`` None keeps irregular stacks
        under an acquisition transform, else they are hardened (mm or "auto"/"nominal"/...).
        ``policies`` are further ``ConvertOptions`` fields: interpolation, gaps, sections, tilt."""
        loadMode = "transform" if spacing is None else "harden"
        options = ConvertOptions(spacing="auto" if spacing is None else spacing, **policies)
        return irregularScene.load_series(slicer.mrmlScene, files, options, load_mode=loadMode, progress=progress)

    def loadWithChoice(self, files, choice, fromDatabase=False, progress=None):
        """Load the series in ``files`` as ``choice`` (a ``series_options.SeriesChoice``) says:
        files of Slicer's DICOM database through the DICOM plugin, as the browser loads them (into
        the patient and study of the subject hierarchy), else files or folders on disk. Returns
        the volume nodes."""
        if not fromDatabase:
            return irregularScene.load_series(slicer.mrmlScene, files, choice.options, load_mode=choice.load_mode,
                                              progress=progress)
        import IrregularSeriesPlugin

        plugin = IrregularSeriesPlugin.IrregularSeriesPluginClass()
        loadables = [loadable for loadable in plugin.examineFilesWithChoice(files, choice) if loadable.selected]
        report = progress_of(progress)
        nodes = []
        with all_or_nothing(slicer.mrmlScene):
            for n, loadable in enumerate(loadables):
                nodes += plugin.loadAll(loadable, report.part(n / len(loadables), (n + 1) / len(loadables)))
        report.finished(_("Loaded"))
        return nodes

    def rememberOptions(self, seriesInstanceUID, choice):
        """Remember ``choice`` for the series: the DICOM plugin then loads it so."""
        import IrregularSeriesPlugin

        series_options.remember(slicer.app.settings(), seriesInstanceUID, choice)
        IrregularSeriesPlugin.dropBrowserExaminations()

    def forgetOptions(self, seriesInstanceUID):
        """Forget the series' remembered options: the DICOM plugin loads it with the defaults again."""
        import IrregularSeriesPlugin

        series_options.forget(slicer.app.settings(), seriesInstanceUID)
        IrregularSeriesPlugin.dropBrowserExaminations()

    def harden(self, volumeNode, spacing=0.6, outputVolume=None, progress=None, **policies):
        """Hardened copies of ``volumeNode`` (one, or one per part with the split policies); the
        first goes into ``outputVolume`` when given. ``policies`` are further ``ConvertOptions``
        fields: interpolation, gaps, sections, tilt. A sequence loaded by the plugin (its sequence
        node, or its proxy volume) is hardened whole, into a new sequence with its own browser:
        the list is then its proxy volume, then any volumes the split policies left apart."""
        options = ConvertOptions(spacing=spacing, **policies)
        if irregularSequences.sequence_of(slicer.mrmlScene, volumeNode) is not None:
            loaded = irregularSequences.harden_sequence(slicer.mrmlScene, volumeNode, self.stack, options, progress)
            return [loaded.proxy, *loaded.apart]
        return irregularScene.harden(slicer.mrmlScene, volumeNode, self.stack(volumeNode), None, options,
                                     into=outputVolume, progress=progress)

    def mapToAcquisition(self, segmentationNode, rawVolumeNode, progress=None):
        """A new labelmap on the raw volume's grid: every pixel of every acquired slice takes the
        label of ``segmentationNode`` (a segmentation or a labelmap, e.g. drawn on a hardened
        volume) nearest to its DICOM position; shown under the raw volume's acquisition transform."""
        return irregularMapBack.map_to_acquisition(slicer.mrmlScene, segmentationNode, rawVolumeNode,
                                                   self.stack(rawVolumeNode), progress=progress)

    def exportDicom(self, volumeNode, folder, importIntoDatabase=True):
        """A hardened volume as a new DICOM series in ``folder/<volume name>/``, written by the same
        code as ``irregular-series convert --format dicom``, then added to the DICOM database (same
        patient and study as its source). Returns the written series (folder, UIDs, files)."""
        if irregularSequences.sequence_of(slicer.mrmlScene, volumeNode) is not None:
            raise ValueError(_("{name} shows a sequence: its volumes are not exported to DICOM one by one here; "
                               "convert the series with irregular-series convert --4d instead").format(
                                   name=volumeNode.GetName()))
        series = irregularScene.export_dicom(volumeNode, self.stack(volumeNode), folder)
        if importIntoDatabase and getattr(slicer, "dicomDatabase", None) is not None:
            from DICOMLib import DICOMUtils

            if not DICOMUtils.importDicom(str(series.folder)):
                raise RuntimeError(f"the series was written to {series.folder} but could not be added to the DICOM database")
        return series

    def examineAssembly(self, volumeNodes, spacing="auto", allowOtherFrames=False, **policies):
        """Whether volumes loaded separately form one stack, and why (``.lines``) or why not
        (``.refusal``); ``policies`` as for ``assemble``."""
        return assembling.examine_volumes(volumeNodes, ConvertOptions(spacing=spacing, **policies),
                                          allow_other_frames=allowOtherFrames, stack_of=self.stack)

    def assemble(self, volumeNodes, spacing="auto", allowOtherFrames=False, progress=None, **policies):
        """One volume from the series of volumes loaded separately (stations, parts, one series per
        slice), joined as ``irregular-series convert --assemble`` does: a list of one node (one per
        part when the gap policy splits). ``allowOtherFrames`` lets series whose frames of reference
        differ be joined; ``policies`` are further ``ConvertOptions`` fields: overlap, gaps,
        interpolation, in_plane_spacing_mm. Raises ``ValueError`` saying why when they do not
        form one stack; ``progress`` as for ``loadSeries``."""
        return assembling.assemble_volumes(slicer.mrmlScene, volumeNodes, ConvertOptions(spacing=spacing, **policies),
                                           allow_other_frames=allowOtherFrames, stack_of=self.stack, progress=progress)

    def applyAcquisitionTransform(self, volumeNode):
        """The acquisition transform of a raw volume, or None when its grid already fits."""
        return irregularScene.create_acquisition_transform(slicer.mrmlScene, volumeNode, self.stack(volumeNode))

    def spacingChart(self, volumeNode):
        chartNode = volumeNode.GetNodeReference(SPACING_CHART_REFERENCE)
        if chartNode is None:
            chartNode = irregularScene.spacing_plot(slicer.mrmlScene, self.stack(volumeNode), name=volumeNode.GetName())
            volumeNode.SetNodeReferenceID(SPACING_CHART_REFERENCE, chartNode.GetID())
        return chartNode

    def summary(self, volumeNode) -> str:
        heading = assembling.assembly_heading(volumeNode)
        if heading:
            lines = [heading]
        else:
            stack = self.stack(volumeNode)
            lines = [stack_line(stack)] + [i.message for i in stack.geometry.irregularities]
            lines.append(_("Spacing presets: {presets}").format(presets=spacing_presets(stack)))
            sequence = volumeNode.GetAttribute(irregularSequences.SEQUENCE_ATTRIBUTE)
            if sequence:
                record = json.loads(sequence)
                lines[:0] = [_("Sequence of {count} volumes along {axis}; below, the one shown. Harden hardens them all.").format(
                    count=len(record["axis"]["values"]), axis=record["axis"]["name"])] + record["reasons"]
        decisions = volumeNode.GetAttribute(irregularScene.DECISIONS_ATTRIBUTE)
        if decisions:
            lines += [_("Hardened:")] + json.loads(decisions)
            verified = volumeNode.GetAttribute(irregularScene.VERIFICATION_ATTRIBUTE)
            lines.append(_("Worst slice position error: {error} mm").format(error=verified))
            content = volumeNode.GetAttribute(irregularScene.CONTENT_ATTRIBUTE)
            if content:
                lines.append(content_summary_text(json.loads(content)))
        return "\n".join(lines)


def _seriesFiles(series):
    """The files of a series' stacks, each once."""
    return list(dict.fromkeys(s.path for stack in series.stacks for s in stack.slices))


def _fileForInstance(sopInstanceUID):
    """The file Slicer's DICOM database holds for an instance now ("" without a database). The
    database follows files moved within it, so a saved scene reopens wherever they went."""
    database = getattr(slicer, "dicomDatabase", None)
    return database.fileForInstance(sopInstanceUID) if database is not None and database.isOpen else ""


#
# IrregularSeriesTest
#


def runSelfTest() -> int:
    """Run IrregularSeriesTest; 0 when it passes, 1 (after printing why) when it fails. For a
    one-step run from the command line (README): ``slicer.util.exit(IrregularSeries.runSelfTest())``."""
    import traceback

    try:
        IrregularSeriesTest().runTest()
    except Exception:
        traceback.print_exc()
        return 1
    return 0



class IrregularSeriesTest(ScriptedLoadableModuleTest):
    """Runs in Slicer only: the real DICOM database, plugin and GUI-less logic."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_PluginWinsAndLoadsTheDemo()
        self.setUp()
        self.test_LogicLoadsAndHardens()
        self.setUp()
        self.test_PanelLoadsWithOptionsRememberedPerSeries()
        self.setUp()
        self.test_MapBackOntoTheAcquisition()
        self.setUp()
        self.test_ProgressAndCancel()
        self.setUp()
        self.test_SeveralSeriesAssembled()
        self.setUp()
        self.test_TimeSeriesLoadsAsASequenceAndHardensWhole()

    def _withSetting(self, key, value):
        settings = qt.QSettings()
        previous = settings.value(key)
        settings.setValue(key, value)
        return previous

    def test_PluginWinsAndLoadsTheDemo(self):
        from DICOMLib import DICOMUtils

        import IrregularSeriesPlugin
        from irregular_series.testing.synthetic import micro_ct_demo_series, write_demo

        self.delayDisplay("Writing the stitched micro-CT demo series")
        previous = self._withSetting(IrregularSeriesPlugin.LOAD_MODE_SETTING, "transform")
        try:
            with tempfile.TemporaryDirectory() as folder:
                write_demo(os.path.join(folder, "dicom"))
                with DICOMUtils.TemporaryDICOMDatabase() as database:
                    DICOMUtils.importDicom(os.path.join(folder, "dicom"), database)
                    files = database.filesForSeries(micro_ct_demo_series().series_instance_uid)
                    self.assertEqual(len(files), 120)

                    self.delayDisplay("Examining with every plugin, as the DICOM browser does")
                    byPlugin, loadEnabled = DICOMUtils.getLoadablesFromFileLists([files])
                    DICOMUtils.selectHighestConfidenceLoadables(byPlugin)
                    ours = [p for p in byPlugin if type(p).__name__ == "IrregularSeriesPluginClass"]
                    self.assertEqual(len(ours), 1)
                    plugin = ours[0]
                    selected = [(p, loadable) for p, loadables in byPlugin.items() for loadable in loadables
                                if loadable.selected]
                    self.assertEqual([p for p, loadable in selected], [plugin])
                    volume = selected[0][1]
                    self.assertIn("3 sections stitched", volume.name)
                    self.assertIn("acquisition transform", volume.name)
                    self.assertGreater(volume.confidence, 0.5)
                    localizers = [loadable for loadable in byPlugin[plugin] if "localizer (excluded" in loadable.name]
                    self.assertEqual(len(localizers), 1)
                    self.assertFalse(localizers[0].selected)

                    self.delayDisplay("Loading")
                    node = plugin.load(volume)
                    self.assertEqual(len(node.GetAttribute("DICOM.instanceUIDs").split()), 119)
                    self.assertTrue(node.GetParentTransformNode().IsA("vtkMRMLGridTransformNode"))
                    shNode = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(slicer.mrmlScene)
                    self.assertTrue(shNode.GetItemUID(shNode.GetItemByDataNode(node), "DICOM"))

                    self.delayDisplay("Rebuilding the stack from its instances, found through the database")
                    logic = IrregularSeriesLogic()
                    instanceFiles = {database.fileForInstance(uid) for uid in node.GetAttribute("DICOM.instanceUIDs").split()}
                    self.assertEqual({s.path for s in logic.stack(node).slices}, instanceFiles)

                    self.delayDisplay("Hardening at 0.6 mm")
                    (hardened,) = logic.harden(node, spacing=0.6)
                    self.assertEqual(hardened.GetSpacing(), (0.1, 0.1, 0.6))
                    self.assertIsNone(hardened.GetParentTransformNode())
                    self.assertLessEqual(float(hardened.GetAttribute(irregularScene.VERIFICATION_ATTRIBUTE)), 0.01)

                    self.delayDisplay("Exporting to DICOM and adding it to the database")
                    series = logic.exportDicom(hardened, os.path.join(folder, "export"))
                    logic.cleanup()
                    exported = database.filesForSeries(series.series_instance_uid)
                    self.assertEqual(len(exported), len(series.files))
                    for tag in ("0010,0020", "0020,000D"):  # the same patient and study as the source
                        self.assertEqual(database.fileValue(exported[0], tag), database.fileValue(files[0], tag))
        finally:
            self._withSetting(IrregularSeriesPlugin.LOAD_MODE_SETTING, previous or "transform")
        self.delayDisplay("Test passed")

    def test_LogicLoadsAndHardens(self):
        from irregular_series.testing.synthetic import write_demo

        with tempfile.TemporaryDirectory() as folder:
            write_demo(folder)
            (node,) = IrregularSeriesLogic().loadSeries([folder], spacing=0.6)
            self.assertEqual(node.GetSpacing(), (0.1, 0.1, 0.6))
            chart = IrregularSeriesLogic().spacingChart(node)
            self.assertEqual(chart.GetNumberOfPlotSeriesNodes(), 2)
        logging.info("IrregularSeries logic test passed")
        self.delayDisplay("Test passed")

    def test_PanelLoadsWithOptionsRememberedPerSeries(self):
        from DICOMLib import DICOMUtils

        from irregular_series.testing.synthetic import micro_ct_demo_series, write_demo

        slicer.util.selectModule("IrregularSeries")
        section = slicer.modules.IrregularSeriesWidget.seriesOptions
        ui = section.ui
        uid = micro_ct_demo_series().series_instance_uid
        logic = IrregularSeriesLogic()
        logic.forgetOptions(uid)
        try:
            with tempfile.TemporaryDirectory() as folder:
                write_demo(os.path.join(folder, "dicom"))
                with DICOMUtils.TemporaryDICOMDatabase() as database:
                    DICOMUtils.importDicom(os.path.join(folder, "dicom"), database)
                    files = database.filesForSeries(uid)

                    self.delayDisplay("Listing the series selected in the DICOM browser")
                    slicer.modules.dicom.widgetRepresentation()
                    slicer.modules.DICOMWidget.browserWidget.onSeriesSelected([uid])
                    section.listBrowserSelection()
                    self.assertEqual(ui.seriesOptionsListWidget.count, 1)
                    self.assertIn("3 sections stitched", ui.seriesOptionsFindingsLabel.text)
                    self.assertIn("Nothing remembered", ui.seriesOptionsRememberedLabel.text)

                    self.delayDisplay("Loading with sections split at 0.6 mm, remembered for the series")
                    ui.seriesOptionsLoadModeComboBox.setCurrentIndex(ui.seriesOptionsLoadModeComboBox.findData("harden"))
                    ui.seriesOptionsSpacingComboBox.setCurrentIndex(ui.seriesOptionsSpacingComboBox.findData("custom"))
                    ui.seriesOptionsCustomSpacingSpinBox.value = 0.6
                    ui.seriesOptionsSectionsComboBox.setCurrentIndex(ui.seriesOptionsSectionsComboBox.findData("split"))
                    self.assertIn("harden at 0.6 mm", ui.seriesOptionsFindingsLabel.text)
                    ui.seriesOptionsRememberCheckBox.checked = True
                    ui.seriesOptionsLoadButton.click()
                    parts = [n for n in slicer.util.getNodesByClass("vtkMRMLScalarVolumeNode")
                             if n.GetAttribute(irregularScene.PART_ATTRIBUTE)]
                    self.assertEqual(len(parts), 3)
                    self.assertTrue(all(n.GetSpacing()[2] == 0.6 for n in parts))
                    self.assertIn("Sections: split", ui.seriesOptionsRememberedLabel.text)
                    self.assertTrue(ui.seriesOptionsForgetButton.enabled)

                    self.delayDisplay("The DICOM browser now loads the series with the remembered options")
                    slicer.mrmlScene.Clear()
                    byPlugin, _loadEnabled = DICOMUtils.getLoadablesFromFileLists([files])
                    plugin = next(p for p in byPlugin if type(p).__name__ == "IrregularSeriesPluginClass")
                    (volume,) = [loadable for loadable in byPlugin[plugin] if loadable.selected]
                    self.assertIn("(your options: Irregular stacks: harden; Slice spacing: 0.6 mm; Sections: split)",
                                  volume.name)
                    self.assertEqual(len(plugin.loadAll(volume)), 3)

                    self.delayDisplay("Forgetting them")
                    ui.seriesOptionsForgetButton.click()
                    self.assertIn("Nothing remembered", ui.seriesOptionsRememberedLabel.text)
                    byPlugin, _loadEnabled = DICOMUtils.getLoadablesFromFileLists([files])
                    plugin = next(p for p in byPlugin if type(p).__name__ == "IrregularSeriesPluginClass")
                    self.assertFalse(any("your options" in loadable.name for loadable in byPlugin[plugin]))
        finally:
            logic.forgetOptions(uid)
        self.delayDisplay("Test passed")

    def test_MapBackOntoTheAcquisition(self):
        import numpy as np

        from irregular_series.geometry import pixel_to_lps
        from irregular_series.testing.synthetic import write_demo

        with tempfile.TemporaryDirectory() as folder:
            write_demo(folder)
            logic = IrregularSeriesLogic()
            (raw,) = logic.loadSeries([folder], spacing=None)
            self.assertTrue(raw.GetParentTransformNode().GetAttribute(irregularScene.ACQUISITION_TRANSFORM_ATTRIBUTE))
            (hardened,) = logic.harden(raw, spacing=0.6)
            stack = logic.stack(raw)

            self.delayDisplay("Drawing a ball on the hardened volume")
            positions = []  # every raw pixel's DICOM position: (N, rows, columns, 3) LPS
            for toLps, s in zip(pixel_to_lps(stack.slices), stack.slices):
                j, i = np.mgrid[0:s.rows, 0:s.columns]
                positions.append(np.stack([i, j, np.zeros_like(i), np.ones_like(i)], axis=-1) @ toLps[:3].T)
            positions = np.array(positions)
            centre, radius = positions.reshape(-1, 3).mean(axis=0), 1.5
            ijkToRas = vtk.vtkMatrix4x4()
            hardened.GetIJKToRASMatrix(ijkToRas)
            labelmap = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "ball")
            labelmap.SetIJKToRASMatrix(ijkToRas)
            k, j, i = np.indices(slicer.util.arrayFromVolume(hardened).shape)
            ras = np.stack([i, j, k, np.ones_like(i)], axis=-1) @ slicer.util.arrayFromVTKMatrix(ijkToRas).T
            lps = ras[..., :3] * [-1, -1, 1]
            slicer.util.updateVolumeFromArray(labelmap, (np.linalg.norm(lps - centre, axis=-1) < radius).astype(np.uint8))
            labelmap.CreateDefaultDisplayNodes()

            self.delayDisplay("Mapping it back from the module panel")
            slicer.util.selectModule("IrregularSeries")
            ui = slicer.modules.IrregularSeriesWidget.ui
            ui.mapBackSourceSelector.setCurrentNode(labelmap)
            ui.mapBackRawSelector.setCurrentNode(raw)
            self.assertTrue(ui.mapBackButton.enabled)
            ui.mapBackButton.click()
            (result,) = [n for n in slicer.util.getNodesByClass("vtkMRMLLabelMapVolumeNode")
                         if n.GetAttribute(irregularMapBack.MAPPED_FROM_ATTRIBUTE) == "ball"]
            self.assertEqual(result.GetParentTransformNode(), raw.GetParentTransformNode())
            labels = slicer.util.arrayFromVolume(result)
            self.assertEqual(labels.shape, slicer.util.arrayFromVolume(raw).shape)
            # Every raw pixel clear of the ball's surface (by more than half a voxel diagonal) has
            # the label its own DICOM position says.
            distance = np.linalg.norm(positions - centre, axis=-1)
            clear = np.abs(distance - radius) > 0.5 * np.linalg.norm([0.1, 0.1, 0.6]) + 1e-6
            np.testing.assert_array_equal(labels[clear], (distance < radius)[clear])
            self.assertGreater(int(labels[clear].sum()), 100)

            self.delayDisplay("The same labels as a segmentation")
            segmentation = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode", "ball segments")
            slicer.modules.segmentations.logic().ImportLabelmapToSegmentationNode(labelmap, segmentation)
            fromSegments = logic.mapToAcquisition(segmentation, raw)
            np.testing.assert_array_equal(slicer.util.arrayFromVolume(fromSegments), labels)
            logic.cleanup()
        self.delayDisplay("Test passed")

    def test_ProgressAndCancel(self):
        from irregular_series.testing.synthetic import write_demo

        with tempfile.TemporaryDirectory() as folder:
            write_demo(folder)
            logic = IrregularSeriesLogic()
            reports = []
            (raw,) = logic.loadSeries([folder], spacing=None, progress=lambda f, m: reports.append(f))
            self.assertEqual(reports, sorted(reports))
            self.assertEqual(reports[-1], 1.0)

            self.delayDisplay("Cancelling a harden from its progress dialog")
            before = slicer.mrmlScene.GetNumberOfNodes()
            with ProgressDialog("Hardening") as dialog:
                dialog.dialog.cancel()
                with self.assertRaises(Cancelled):
                    logic.harden(raw, spacing=0.6, progress=dialog)
            self.assertEqual(slicer.mrmlScene.GetNumberOfNodes(), before)
            self.assertTrue(raw.GetParentTransformNode().GetAttribute(irregularScene.ACQUISITION_TRANSFORM_ATTRIBUTE))

            self.delayDisplay("Cancelling a load part-way")
            count = []
            with self.assertRaises(Cancelled):
                logic.loadSeries([folder], spacing=0.6, progress=lambda f, m: count.append(f) or len(count) == 3)
            self.assertEqual(slicer.mrmlScene.GetNumberOfNodes(), before)
            logic.cleanup()
        self.delayDisplay("Test passed")

    def test_SeveralSeriesAssembled(self):
        """Two stations (series 4 and 5, overlapping by 10 mm) selected together: the plugin offers
        them assembled, unselected; loading that gives the volume the module panel's logic makes
        from the two loaded separately."""
        import numpy as np
        from DICOMLib import DICOMUtils

        from irregular_series.testing.synthetic import SyntheticSeries, SyntheticSlice, uid, write_series

        stations = []
        with tempfile.TemporaryDirectory() as folder:
            for number, start in ((4, -25.0), (5, 12.5)):
                slices = [SyntheticSlice((-16.0, -16.0, start + 2.5 * k), instance_number=k + 1, slice_thickness_mm=2.5,
                                         spacing_between_slices_mm=2.5) for k in range(20)]
                series = SyntheticSeries(slices, series_instance_uid=uid("self-test station", number),
                                         study_instance_uid=uid("self-test study"),
                                         frame_of_reference_uid=uid("self-test frame"), series_number=number,
                                         series_description=f"station {number}")
                write_series(series, os.path.join(folder, f"station{number}"))
                stations.append(series.series_instance_uid)
            with DICOMUtils.TemporaryDICOMDatabase() as database:
                DICOMUtils.importDicom(folder, database)
                fileLists = [database.filesForSeries(seriesUID) for seriesUID in stations]

                self.delayDisplay("Examining the two series selected together")
                byPlugin, loadEnabled = DICOMUtils.getLoadablesFromFileLists(fileLists)
                DICOMUtils.selectHighestConfidenceLoadables(byPlugin)
                plugin = next(p for p in byPlugin if type(p).__name__ == "IrregularSeriesPluginClass")
                (assembled,) = [loadable for loadable in byPlugin[plugin] if loadable.name.startswith("assembled from")]
                self.assertEqual(assembled.name, "assembled from series 4 and 5 — 2 stations, overlap 10.0 mm, harden at 2.5 mm")
                self.assertFalse(assembled.selected)
                self.assertIn("They share one frame of reference", assembled.tooltip)

                self.delayDisplay("Loading the assembled volume")
                node = plugin.load(assembled)
                self.assertEqual(node.GetImageData().GetDimensions(), (32, 32, 35))
                self.assertEqual(node.GetSpacing(), (1.0, 1.0, 2.5))
                logic = IrregularSeriesLogic()
                self.assertIn("assembled from series 4 and 5: one volume from 2 series", logic.summary(node))

                self.delayDisplay("Assembling the two loaded separately, from the module logic")
                ours = [loadable for loadable in byPlugin[plugin] if not loadable.name.startswith("assembled from")]
                separate = [plugin.load(loadable) for loadable in ours]
                self.assertIn("form one axial stack", "\n".join(logic.examineAssembly(separate).lines))
                (again,) = logic.assemble(separate)
                logic.cleanup()
                np.testing.assert_array_equal(slicer.util.arrayFromVolume(again), slicer.util.arrayFromVolume(node))
        self.delayDisplay("Test passed")

    def test_TimeSeriesLoadsAsASequenceAndHardensWhole(self):
        from DICOMLib import DICOMUtils

        from irregular_series.testing.synthetic import time_series_demo_series, write_series

        demo = time_series_demo_series()
        with tempfile.TemporaryDirectory() as folder:
            write_series(demo, folder)
            with DICOMUtils.TemporaryDICOMDatabase() as database:
                DICOMUtils.importDicom(folder, database)
                files = database.filesForSeries(demo.series_instance_uid)
                self.assertEqual(len(files), 28)

                # A time point lost slices, which a regular-grid loader gets wrong: the sequence is
                # offered above MultiVolumeImporter and expected to be chosen.
                self.delayDisplay("Examining: the sequence is chosen, its volumes are offered unselected")
                byPlugin, _loadEnabled = DICOMUtils.getLoadablesFromFileLists([files])
                DICOMUtils.selectHighestConfidenceLoadables(byPlugin)
                plugin = next(p for p in byPlugin if type(p).__name__ == "IrregularSeriesPluginClass")
                ours = [loadable for loadable in byPlugin[plugin] if loadable.selected]
                self.assertEqual(len(ours), 1)
                sequenceLoadable = ours[0]
                self.assertIn("sequence of 3 time points (time 0–4 s)", sequenceLoadable.name)
                self.assertEqual(len(byPlugin[plugin]), 4)  # the sequence, then its 3 volumes one by one
                self.assertIn("8 of the 10 positions", sequenceLoadable.tooltip)

                self.delayDisplay("Loading one sequence of 3 volumes with a browser")
                proxy = plugin.load(sequenceLoadable)
                sequence = irregularSequences.sequence_of(slicer.mrmlScene, proxy)
                self.assertEqual(sequence.GetNumberOfDataNodes(), 3)
                self.assertEqual((sequence.GetIndexName(), sequence.GetIndexUnit()), ("time", "s"))
                browser = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLSequenceBrowserNode")
                browser.SetSelectedItemNumber(2)
                self.assertEqual(slicer.util.arrayFromVolume(proxy).shape, (10, 32, 32))
                self.assertTrue(json.loads(proxy.GetAttribute(irregularScene.CONTENT_ATTRIBUTE))["ok"])
                shNode = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(slicer.mrmlScene)
                self.assertTrue(shNode.GetItemUID(shNode.GetItemByDataNode(proxy), "DICOM"))

                self.delayDisplay("Hardening the whole sequence from the module panel at 1.5 mm")
                slicer.util.selectModule("IrregularSeries")
                widget = slicer.modules.IrregularSeriesWidget
                parameters = widget.logic.getParameterNode()
                parameters.inputVolume = proxy
                parameters.spacing = "custom"
                parameters.customSpacing = 1.5
                self.assertTrue(widget.ui.hardenButton.enabled)
                self.assertIn("Sequence of 3 volumes", widget.ui.summaryLabel.text)
                widget.ui.hardenButton.click()
                hardened = parameters.outputVolume
                hardenedSequence = irregularSequences.sequence_of(slicer.mrmlScene, hardened)
                self.assertIsNotNone(hardenedSequence)
                self.assertIsNot(hardenedSequence, sequence)
                self.assertEqual(hardenedSequence.GetNumberOfDataNodes(), 3)
                self.assertAlmostEqual(hardened.GetSpacing()[2], 1.5)
                self.assertEqual(sequence.GetNumberOfDataNodes(), 3)  # the loaded sequence is kept
        self.delayDisplay("Test passed")
