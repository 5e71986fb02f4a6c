"""sakura-translate: the ``sakura translate`` command (files in, translated files out)."""
