"""verify: verify Glance image signatures exactly as Glance and Nova (cursive) do.

Library entry point: ``verify_image(...)`` returns a ``VerifyResult`` (``as_dict()`` serialises it).
"""

from verify.api import VerifyResult, verify_image

__all__ = ["VerifyResult", "verify_image"]
