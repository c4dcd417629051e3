"""Is the copy true? ``judge`` (pure) decides from what was listed; ``check_pair`` lists a
pair's mailboxes (primary and archive) through ``copyengine.survey`` and judges them, for
``copyengine verify``; ``sign_off`` turns the same check into the cutover's sign-off, which
``wiring`` hands to the job (the pipeline never imports this package)."""

from .check import PairCheck, check_pair, verify_pair, verify_pairs
from .judge import KINDS, MAX_LISTED, FolderCheck, SourceFolder, TargetFolder, Verdict, judge
from .signoff import pair_entry, sign_off

__all__ = [
    "KINDS",
    "MAX_LISTED",
    "FolderCheck",
    "PairCheck",
    "SourceFolder",
    "TargetFolder",
    "Verdict",
    "check_pair",
    "judge",
    "pair_entry",
    "sign_off",
    "verify_pair",
    "verify_pairs",
]
