"""sakura-web: the translation workbench served at ``/`` and the jobs API under it."""
