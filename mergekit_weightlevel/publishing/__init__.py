"""After a merge: the model card (``write_card``), the pre-upload checks and ``publish``.

    from mergekit_weightlevel.publishing import write_card, check_folder, publish_folder

Nothing here runs during a merge: these steps read the folder a merge wrote.
"""

from mergekit_weightlevel.publishing.card import build_card, write_card
from mergekit_weightlevel.publishing.checks import FolderNotReadyError, check_folder
from mergekit_weightlevel.publishing.hub_upload import PublishError, publish_folder

__all__ = [
    "FolderNotReadyError",
    "PublishError",
    "build_card",
    "check_folder",
    "publish_folder",
    "write_card",
]
