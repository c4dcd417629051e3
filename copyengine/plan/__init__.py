"""Pure decisions of a copy (no I/O): folders and items."""

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
    "Decision",
    "FolderPlan",
    "Placement",
    "Skip",
    "TargetIndex",
    "TargetRef",
    "batches",
    "collapse_delta",
    "decide",
    "encoded_size",
    "filter_item",
    "folder_class",
    "place",
    "plan_folders",
    "root_names",
    "surplus",
]
