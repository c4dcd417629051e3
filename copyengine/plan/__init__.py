"""Pure decisions of a copy (no I/O): folders and items."""

from .changes import (
    Change,
    Fate,
    classify_row,
    fingerprint,
    removal_fate,
)
from .folder_round import Create, FolderRound, Placed, Rename, TNode, plan_folder_round
from .folders import FolderPlan, Placement, TargetRef, folder_class, place, plan_folders, root_names
from .items import (
    Decision,
    Skip,
    TargetIndex,
    Verdict,
    batches,
    collapse_delta,
    decide,
    encoded_size,
    filter_item,
    surplus,
)

__all__ = [
    "Change",
    "Create",
    "Decision",
    "Fate",
    "FolderPlan",
    "FolderRound",
    "Placed",
    "Placement",
    "Rename",
    "Skip",
    "TNode",
    "TargetIndex",
    "TargetRef",
    "Verdict",
    "batches",
    "classify_row",
    "collapse_delta",
    "decide",
    "encoded_size",
    "filter_item",
    "fingerprint",
    "folder_class",
    "place",
    "plan_folder_round",
    "plan_folders",
    "removal_fate",
    "root_names",
    "surplus",
]
