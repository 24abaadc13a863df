"""The reference seam: every key id each service points at (see ``keytools.key_refs.model``)."""

from keytools.key_refs.model import (FIXED_KEY_ID, PAGE, READ_PROJECT, READ_SERVICE, READ_USER, KeyRef, KeySource,
                                     NotSeen, ReadPath, Survey, survey)

__all__ = ["FIXED_KEY_ID", "PAGE", "READ_PROJECT", "READ_SERVICE", "READ_USER", "KeyRef", "KeySource", "NotSeen",
           "ReadPath", "Survey", "survey"]
