"""sign: create signing certificates, store them in Barbican, and sign Glance images (RSA-PSS, ECC).

Library entry point: ``sign_image(...)`` returns a ``SignResult`` (``as_dict()`` serialises it).
"""

from sign.api import SignResult, sign_image

__all__ = ["SignResult", "sign_image"]
