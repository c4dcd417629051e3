"""Pure decisions of a copy (no I/O): folders and items."""

from .changes import (
    Change,
    Fate,
    FolderChanges,
    classify_row,
    fingerprint,
    reconcile_folders,
    removal_fate,
)
from .folders import FolderPlan, Placement, TargetRef, folder_class, place, plan_folders, root_names
from .items import (
    Decision,
    Skip,
    TargetIndex,
    batches,
    collapse_delta,
    decide,
    encoded_size,
    filter_item,
    surplus,
)

__all__ = [
    "Change",
    "Decision",
    "Fate",
    "FolderChanges",
    "FolderPlan",
    "Placement",
    "Skip",
    "TargetIndex",
    "TargetRef",
    "batches",
    "classify_row",
    "collapse_delta",
    "decide",
    "encoded_size",
    "filter_item",
    "fingerprint",
    "folder_class",
    "place",
    "plan_folders",
    "reconcile_folders",
    "removal_fate",
    "root_names",
    "surplus",
]
