"""Applications on exported models: the web demo (`unimm.apps.demo`, needs the ``app``
extra)."""
